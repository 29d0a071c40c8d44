"""A Dagster logger that prints one line per finished step, for the CLI.

Long runs need progress without the firehose of DEBUG events: this logger ignores everything but
step starts, successes and failures, and prints each finished step with its elapsed time.
"""

import logging
import sys
import time

import dagster as dg

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
