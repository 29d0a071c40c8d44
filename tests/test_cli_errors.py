"""Every user mistake at the command line is one line on stderr naming the value and what is allowed,
exit 2, no traceback (docs/operations.md, "Errors"); --debug / CRMFLOW_DEBUG=1 shows the traceback.
Read-only commands never create a warehouse; an unknown user is an error; `--version` works; a run
step that fails inside Dagster is reported by its error's first line, not its traceback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from typer.testing import CliRunner

from orchestration.cli import app
from orchestration.progress import console_logger, first_error_line

CRMFLOW = Path(sys.executable).parent / "crmflow"
AS_OF = "2026-11-22T06:00:00Z"


def cli(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.stdout, result.stderr


def one_error_line(args: list[str], *fragments: str) -> str:
    """Run; assert exit 2 and a single `crmflow: error:` line on stderr holding every fragment."""
    code, _, err = cli(args)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("crmflow: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small existing warehouse with one known person (u1) and the CLI pointed at it."""
    path = tmp_path / "wh.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create table raw_registrations (user_id varchar, email varchar)")
        con.execute("insert into raw_registrations values ('u1', 'u1@example.com')")
    monkeypatch.setenv("CRMFLOW_WAREHOUSE", str(path))
    monkeypatch.setenv("CRMFLOW_EXPORT_DIR", str(tmp_path / "exports"))
    monkeypatch.setenv("CRMFLOW_OUTBOX_DIR", str(tmp_path / "outbox"))
    return path


@pytest.fixture
def not_a_folder(tmp_path: Path) -> Path:
    """A regular file: any path below it cannot be written, even by root."""
    file = tmp_path / "plain.txt"
    file.write_text("x", encoding="utf-8")
    return file


def test_bad_as_of_names_the_value_and_the_accepted_forms(warehouse: Path) -> None:
    one_error_line(["report", "--as-of", "yesterday"], "--as-of 'yesterday'", "ISO-8601", "2026-11-22T06:00:00Z")


def test_bad_as_of_on_every_command_that_takes_one(warehouse: Path) -> None:
    for args in (["run"], ["journeys", "preview", "welcome_series"], ["privacy", "export", "u1"],
                 ["privacy", "erase", "u1", "--yes"]):
        one_error_line([*args, "--as-of", "2026-02-30"], "'2026-02-30'", "ISO-8601")


def test_unknown_time_zone_names_the_setting_and_an_example(warehouse: Path, monkeypatch) -> None:
    monkeypatch.setenv("CRMFLOW_TIMEZONE", "Mars/Olympus")
    one_error_line(["ledger", "status"], "CRMFLOW_TIMEZONE='Mars/Olympus'", "IANA", "Europe/Berlin")


def test_unwritable_report_out_names_the_path(warehouse: Path, not_a_folder: Path) -> None:
    out = not_a_folder / "reports" / "r.html"
    one_error_line(["report", "--out", str(out), "--as-of", AS_OF], f"--out {out}", f"{not_a_folder} is a file")
    assert not_a_folder.read_text(encoding="utf-8") == "x"


def test_unwritable_export_out_and_generate_out(warehouse: Path, not_a_folder: Path) -> None:
    one_error_line(["privacy", "export", "u1", "--out", str(not_a_folder / "u1.json")], "--out", str(not_a_folder))
    one_error_line(["generate", "--users", "5", "--out", str(not_a_folder)], "--out", "is a file, not a folder")


def test_unknown_env_names_it_and_the_known_ones(monkeypatch) -> None:
    one_error_line(["channels", "list", "--env", "mars"], "--env 'mars'", "known: dev, prod, staging")
    monkeypatch.setenv("CRMFLOW_ENV", "prdo")
    one_error_line(["channels", "check"], "CRMFLOW_ENV 'prdo'", "known: dev, prod, staging")


def test_port_in_use_names_the_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        one_error_line(["webhooks", "serve", "--port", str(port), "--landing-dir", str(tmp_path / "landing")],
                       f"--port {port} on 127.0.0.1 is in use")
    one_error_line(["webhooks", "serve", "--port", "70000"], "'--port'", "65535", "'70000'")


def test_negative_users_names_the_option_and_value(tmp_path: Path) -> None:
    one_error_line(["generate", "--users", "-5", "--out", str(tmp_path / "l")], "'--users'", "'-5'", "1")
    one_error_line(["demo", "--users", "-5"], "'--users'", "'-5'")
    one_error_line(["generate", "--end", "2026-13-01", "--out", str(tmp_path / "l")], "--end '2026-13-01'", "YYYY-MM-DD")
    assert not (tmp_path / "l").exists()


@pytest.mark.parametrize("args", [["journeys", "preview", "welcome_series"], ["ledger", "status"],
                                  ["report", "--as-of", AS_OF], ["privacy", "export", "u1"],
                                  ["privacy", "erase", "u1", "--yes"]],
                         ids=["preview", "ledger", "report", "export", "erase"])
def test_no_warehouse_yet_is_one_line_and_creates_nothing(args, tmp_path: Path, monkeypatch) -> None:
    missing = tmp_path / "var" / "nowhere" / "warehouse.duckdb"
    monkeypatch.setenv("CRMFLOW_WAREHOUSE", str(missing))
    monkeypatch.setenv("CRMFLOW_EXPORT_DIR", str(tmp_path / "exports"))
    one_error_line(args, f"no warehouse at {missing}: run `crmflow run` first")
    assert not (tmp_path / "var").exists() and not (tmp_path / "exports").exists()


def test_export_of_an_unknown_user_is_an_error(warehouse: Path) -> None:
    one_error_line(["privacy", "export", "no_such_user"], "unknown user_id 'no_such_user'")
    code, out, _ = cli(["privacy", "export", "u1", "--as-of", AS_OF])
    assert code == 0 and '"u1@example.com"' in out


def test_erase_of_an_unknown_user_is_an_error_and_records_nothing(warehouse: Path) -> None:
    one_error_line(["privacy", "erase", "u01", "--yes", "--as-of", AS_OF], "unknown user_id 'u01'")
    with duckdb.connect(str(warehouse)) as con:
        assert con.execute("select count(*) from privacy_erasures").fetchone()[0] == 0
        assert con.execute("select count(*) from suppression_list").fetchone()[0] == 0
    code, out, err = cli(["privacy", "erase", "u1", "--yes", "--as-of", AS_OF])
    assert code == 0, err
    again = cli(["privacy", "erase", "u1", "--yes", "--as-of", AS_OF])  # idempotent: erased, so known
    assert again[0] == 0 and json.loads(again[1])["pseudonym"] == json.loads(out)["pseudonym"]


def test_unknown_command_and_option_are_one_line() -> None:
    one_error_line(["nosuch"], "No such command 'nosuch'")
    one_error_line(["run", "--log-level", "LOUD"], "--log-level 'LOUD'", "DEBUG, INFO")


def test_version_prints_the_package_version() -> None:
    code, out, _ = cli(["--version"])
    assert code == 0 and out.strip() == f"crmflow {version('crmflow')}"


def test_debug_shows_the_traceback(warehouse: Path, monkeypatch) -> None:
    result = CliRunner().invoke(app, ["--debug", "report", "--as-of", "yesterday"])
    assert result.exit_code == 1 and type(result.exception).__name__ == "CrmflowUserError"
    monkeypatch.setenv("CRMFLOW_DEBUG", "1")
    result = CliRunner().invoke(app, ["report", "--as-of", "yesterday"])
    assert result.exit_code == 1 and "'yesterday'" in str(result.exception)


def test_the_installed_script_prints_one_line_without_traceback(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "CRMFLOW_WAREHOUSE": str(tmp_path / "none.duckdb")}
    done = subprocess.run([str(CRMFLOW), "ledger", "status"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == f"crmflow: error: no warehouse at {tmp_path / 'none.duckdb'}: run `crmflow run` first " \
                          "(or set CRMFLOW_WAREHOUSE)\n"
    debug = subprocess.run([str(CRMFLOW), "--debug", "ledger", "status"], capture_output=True, text=True,
                           env=env, timeout=120)
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert not (tmp_path / "none.duckdb").exists()


@dg.asset
def failing_step() -> None:
    raise ValueError("orders.csv: amount 'abc' is not a number\nsecond line of detail")


def _run_failing_job(tracebacks: bool) -> dg.ExecuteInProcessResult:
    defs = dg.Definitions(assets=[failing_step], loggers={"console": console_logger})
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(raise_on_error=False, run_config={
        "loggers": {"console": {"config": {"log_level": "INFO", "tracebacks": tracebacks}}}})


def test_failed_step_is_its_first_error_line_unless_debug(capfd) -> None:
    result = _run_failing_job(tracebacks=False)
    brief = capfd.readouterr().err
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert first_error_line(failure.event_specific_data.error) == \
        "ValueError: orders.csv: amount 'abc' is not a number"
    assert "failing_step - STEP_FAILURE" in brief and "amount 'abc' is not a number" in brief
    assert "Traceback" not in brief and 'File "' not in brief and "second line of detail" not in brief
    _run_failing_job(tracebacks=True)
    full = capfd.readouterr().err
    assert 'File "' in full and len(full.splitlines()) > len(brief.splitlines()) + 10
