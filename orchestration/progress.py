"""Dagster loggers for the CLI: one line per finished step, and the console logger whose errors can
be one line.

Long runs need progress without the firehose of DEBUG events: the progress logger ignores everything
but step starts, successes and failures, and prints each finished step with its elapsed time. A
failed step is reported by Dagster's console logger with its whole traceback (often 100 lines of
framework frames); the CLI turns that off unless --debug (`tracebacks: false`).
"""

import contextlib
import io
import logging
import re
import sys
import time
from collections.abc import Iterator

import dagster as dg
from dagster._utils.error import SerializableErrorInfo

_STEP_EVENTS = {"STEP_START", "STEP_SUCCESS", "STEP_FAILURE"}
# dagster-dbt's own INFO lines (the dbt command, the manifest copy): not a step's result
_FRAMEWORK_NOTES = ("A dbt subsetted execution", "Copying `", "Running dbt command", "Finished dbt command",
                    "Forwarding interrupt", "dbt process terminated")


class _StepProgressHandler(logging.Handler):
    """One line per finished step. With `notes`, the line ends with the step's own last INFO message
    (its counts: "events: 3 new file(s), 416 rows read, ...") and each WARNING is a line of its own."""

    def __init__(self, stream=None, notes: bool = False):
        super().__init__(level=logging.DEBUG)
        self.stream = stream or sys.stdout
        self.notes = notes
        self.started: dict[str, float] = {}
        self.last_note: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        if event is None:
            self._note(meta, record)
            return
        if event.event_type_value not in _STEP_EVENTS:
            return
        step = event.step_key or "?"
        if event.event_type_value == "STEP_START":
            self.started[step] = time.perf_counter()
            return
        elapsed = time.perf_counter() - self.started.pop(step, time.perf_counter())
        mark = "ok  " if event.event_type_value == "STEP_SUCCESS" else "FAIL"
        note = self.last_note.pop(step, "")
        line = f"  {mark} {step:<32} {elapsed:6.1f}s" + (f"  {note}" if note else "")
        self.stream.write(line + "\n")
        self.stream.flush()

    def _note(self, meta, record: logging.LogRecord) -> None:
        step, message = meta.get("step_key"), str(meta.get("orig_message") or "").strip()
        if not self.notes or not step or not message or message.startswith(_FRAMEWORK_NOTES):
            return
        first = message.splitlines()[0].strip()
        if record.levelno >= logging.WARNING:
            self.stream.write(f"  warn {step}: {first}\n")
            self.stream.flush()
        elif record.levelno >= logging.INFO:
            self.last_note[step] = first.removeprefix(f"{step}: ")


@dg.logger(
    config_schema={"notes": dg.Field(bool, is_required=False, default_value=False,
                                     description="Append each step's last INFO message; warnings as lines.")},
    description="One line per finished step with its elapsed time (used by the crmflow CLI).",
)
def step_progress_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = logging.Logger("crmflow.progress", level=logging.DEBUG)
    logger.addHandler(_StepProgressHandler(notes=init_context.logger_config["notes"]))
    return logger


# The CLI's quiet mode for dbt's own output (set by `crmflow run` without --verbose, in its process
# only: runs the daemon or the UI start keep dbt's full log in their compute logs).
_QUIET_DBT = {"on": False}
_DBT_KEEP = re.compile(r"^(\d+ of \d+ (WARN|ERROR|FAIL)\b|Done\. |Failure in |Warning in |Database Error|"
                       r"Compilation Error|Runtime Error|Parsing Error|Encountered an error)")


def set_quiet_dbt(quiet: bool) -> None:
    _QUIET_DBT["on"] = quiet


class _DbtLineFilter(io.TextIOBase):
    """Keeps dbt's warnings and errors; drops node lines. The one-line `Done. PASS=.. WARN=..` total
    is kept in `done` for the step's own line (crmflow_dbt_assets logs it as its note)."""

    def __init__(self, target):
        self.target, self.pending, self.done = target, "", ""

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            line = line.strip()
            if line.startswith("Done. "):
                self.done = "dbt " + line.removeprefix("Done. ")
            elif _DBT_KEEP.match(line):
                self.target.write(f"       dbt: {line}\n")
        return len(text)

    def flush(self) -> None:
        self.target.flush()


@contextlib.contextmanager
def dbt_console() -> Iterator[_DbtLineFilter | None]:
    """dbt's lines as dagster-dbt prints them; in the CLI's quiet mode, only warnings and errors (the
    filter it yields holds dbt's `Done.` total; None when not quiet)."""
    if not _QUIET_DBT["on"]:
        yield None
        return
    kept = _DbtLineFilter(sys.stdout)
    with contextlib.redirect_stdout(kept):
        yield kept


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
