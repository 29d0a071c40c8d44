"""How the CLI treats a user's mistake: the checks a command makes before it touches anything, and
`CrmflowGroup`, the root command group, which turns a mistake into one line on stderr and a
non-zero exit.

Convention (docs/operations.md, "Errors"): `crmflow: error: <message>` on stderr, exit 2, no
traceback; `--debug` or CRMFLOW_DEBUG=1 shows it. Exit 1 is kept for work that ran and failed (a
failed run step, a channel check that failed). Anything not listed here as a user mistake is a bug
and keeps its traceback.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
from typer import Abort, BadParameter
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError  # typer vendors click
from typer.core import TyperGroup

from connectors.channels.config import ChannelsConfigError
from connectors.channels.fcm_auth import ServiceAccountFileError
from connectors.delivery.signatures import SignatureKeyError
from crmflow.errors import CrmflowUserError
from crmflow.tags import TagsConfigError
from crmflow.warehouse import WarehouseConfigError, WarehouseConnectionError, WarehouseTarget, open_warehouse
from crmflow.warehouse.migrations import MIGRATIONS, applied_versions
from crmflow.yaml_config import ConfigFileError

EXIT_USER_ERROR = 2
# Config loaders already raise one message naming file, line, field and reason.
# A warehouse that cannot be reached or named is one line naming host, port and database (no password).
USER_ERRORS = (CrmflowUserError, ConfigFileError, ChannelsConfigError, TagsConfigError, ServiceAccountFileError,
               SignatureKeyError, WarehouseConfigError, WarehouseConnectionError)
_debug = {"on": False}


def enable_debug() -> None:
    _debug["on"] = True


def debug_enabled() -> bool:
    return _debug["on"] or os.environ.get("CRMFLOW_DEBUG", "").lower() in {"1", "true", "yes"}


def existing_warehouse(target: WarehouseTarget) -> WarehouseTarget:
    """The warehouse of a command that needs a previous run. A DuckDB file must exist (it is never
    created, nor its folder); a PostgreSQL server must answer and have every migration applied."""
    if target.kind == "duckdb":
        if not Path(target.path).is_file():
            raise CrmflowUserError(f"no warehouse at {target.path}: run `crmflow run` first (or set CRMFLOW_WAREHOUSE)")
        return target
    with open_warehouse(target) as warehouse:  # unreachable: WarehouseConnectionError, one line
        missing = sorted({m.version for m in MIGRATIONS} - set(applied_versions(warehouse)))
    if missing:
        raise CrmflowUserError(f"the warehouse {target.redacted()} lacks crmflow's tables (migrations "
                               f"{', '.join(map(str, missing))} not applied): run `crmflow run` first")
    return target


def writable_file(path: Path, what: str) -> Path:
    """`path` can be written once its missing folders are made; checked without creating anything."""
    if path.is_dir():
        raise CrmflowUserError(f"cannot write {what} {path}: it is a folder, give a file name")
    _check_creatable(path.parent, what, path)
    if path.exists() and not os.access(path, os.W_OK):
        raise CrmflowUserError(f"cannot write {what} {path}: the file is not writable")
    return path


def writable_folder(path: Path, what: str) -> Path:
    if path.exists() and not path.is_dir():
        raise CrmflowUserError(f"cannot write {what} {path}: it is a file, not a folder")
    _check_creatable(path, what, path)
    return path


def _check_creatable(folder: Path, what: str, target: Path) -> None:
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise CrmflowUserError(f"cannot write {what} {target}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CrmflowUserError(f"cannot write {what} {target}: {existing} is not writable")


def listen_error(exc: OSError, host: str, port: int) -> CrmflowUserError:
    """A failed bind as one line (port taken, not allowed, unknown host)."""
    if exc.errno == errno.EADDRINUSE:
        return CrmflowUserError(f"--port {port} on {host} is in use: stop the other process or choose "
                                "another --port (0 picks a free one)")
    if isinstance(exc, socket.gaierror):
        return CrmflowUserError(f"--host {host!r} is not an address of this machine: use e.g. 127.0.0.1 or 0.0.0.0")
    return CrmflowUserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


class CrmflowGroup(TyperGroup):
    """The root command group: runs the command line and turns a user mistake into one line on
    stderr and exit 2 (whoever calls it: the `crmflow` script, `python -m`, typer's CliRunner)."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        sys.exit(self._exit_code(args, prog_name, complete_var, **extra))

    def _exit_code(self, args: Sequence[str] | None, prog_name: str | None, complete_var: str | None,
                   **extra: Any) -> int:
        _debug["on"] = False
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError as exc:
            exc.show()  # `crmflow` or `crmflow journeys` alone: the help text, as before
            return EXIT_USER_ERROR
        except UsageError as exc:  # unknown command/option, typer's range and type checks
            hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
            return _user_error(exc.format_message() + _rejected_value(exc) + hint)
        except ClickException as exc:
            return _user_error(exc.format_message())
        except Abort:
            typer.echo("crmflow: aborted", err=True)
            return 1
        except USER_ERRORS as exc:
            if debug_enabled():
                raise
            return _user_error(str(exc))
        except OSError as exc:  # an output path or port the user gave (ENOSPC, EACCES, ENOTDIR...)
            if debug_enabled():
                raise
            where = f": {exc.filename}" if exc.filename else ""
            return _user_error(f"{exc.strerror or exc}{where}")
        return result if isinstance(result, int) else 0


def _rejected_value(exc: UsageError) -> str:
    """typer checks ranges with pydantic, whose message leaves out the value: add it."""
    errors = getattr(exc.__cause__, "errors", None) if isinstance(exc, BadParameter) else None
    if not callable(errors):
        return ""
    first = (errors() or [{}])[0]
    return f", got {first['input']!r}" if "input" in first else ""


def _user_error(message: str) -> int:
    typer.echo(f"crmflow: error: {message}", err=True)
    return EXIT_USER_ERROR
