"""Dagster loggers for the CLI: one line per finished step, and the console logger whose errors can
be one line.

Long runs need progress without the firehose of DEBUG events: the progress logger ignores everything
but step starts, successes and failures, and prints each finished step with its elapsed time. A
failed step is reported by Dagster's console logger with its whole traceback (often 100 lines of
framework frames); the CLI turns that off unless --debug (`tracebacks: false`).
"""

import logging
import sys
import time

import dagster as dg
from dagster._utils.error import SerializableErrorInfo

_STEP_EVENTS = {"STEP_START", "STEP_SUCCESS", "STEP_FAILURE"}


class _StepProgressHandler(logging.Handler):
    def __init__(self, stream=None):
        super().__init__(level=logging.DEBUG)
        self.stream = stream or sys.stdout
        self.started: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        if event is None or event.event_type_value not in _STEP_EVENTS:
            return
        step = event.step_key or "?"
        if event.event_type_value == "STEP_START":
            self.started[step] = time.perf_counter()
            return
        elapsed = time.perf_counter() - self.started.pop(step, time.perf_counter())
        mark = "ok  " if event.event_type_value == "STEP_SUCCESS" else "FAIL"
        self.stream.write(f"  {mark} {step:<40} {elapsed:7.1f}s\n")
        self.stream.flush()


@dg.logger(description="One line per finished step with its elapsed time (used by the crmflow CLI).")
def step_progress_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = logging.Logger("crmflow.progress", level=logging.DEBUG)
    logger.addHandler(_StepProgressHandler())
    return logger


def first_error_line(error: SerializableErrorInfo) -> str:
    """The innermost cause's first line (Dagster wraps the asset's error in its own)."""
    while error.cause is not None:
        error = error.cause
    lines = [line for line in error.message.strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else error.cls_name or "error"


class _OneLineErrors(logging.Filter):
    """Cut the traceback Dagster appends to an event's message down to the error's first line."""

    def filter(self, record: logging.LogRecord) -> bool:
        event = (getattr(record, "dagster_meta", None) or {}).get("dagster_event")
        error = getattr(getattr(event, "event_specific_data", None), "error", None)
        if isinstance(error, SerializableErrorInfo) and isinstance(record.msg, str) and "\n\n" in record.msg:
            head = record.msg.split("\n\n", 1)[0]
            record.msg = f"{head} {first_error_line(error)}"
        return True


@dg.logger(
    config_schema={
        "log_level": dg.Field(str, is_required=False, default_value="INFO"),
        "name": dg.Field(str, is_required=False, default_value="dagster"),
        "tracebacks": dg.Field(bool, is_required=False, default_value=True,
                               description="False: an error event shows its first line, not its traceback."),
    },
    description="Dagster's colored console logger; with tracebacks: false, errors are one line.",
)
def console_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = dg.colored_console_logger.logger_fn(init_context)
    if not init_context.logger_config["tracebacks"]:
        logger.addFilter(_OneLineErrors())
    return logger
