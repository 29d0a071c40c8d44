"""Privacy export and erasure give the same answers on DuckDB and on PostgreSQL: the same crafted
warehouse (raw rows with JSON properties, a quarantined line, a mart, the ledger, delivery events, an
earlier suppression, an operator task with its outcome), the same export files and outbox."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from helpers_postgres import postgres_url, postgres_warehouse  # noqa: F401 - fixtures
from helpers_reliability import table_rows

from crmflow.privacy import erase_person, export_person
from crmflow.warehouse import apply_migrations, open_warehouse

AS_OF = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
TARGET, OTHER = "u1", "u10"  # u10 shares a prefix with the target: never matched
EMAIL, PHONE, NAME = "zelda.q@example.net", "+4915199990001", "Zelda"
TS = pa.timestamp("us", tz="UTC")
CHECKED = ("raw_registrations", "raw_events", "quarantine_events", "customer_profile", "delivery_events",
           "suppression_list", "operator_tasks", "task_outcomes", "privacy_erasures")


def rows(**columns: list[Any]) -> pa.Table:
    return pa.table({k: pa.array(v, TS) if k.endswith("_at") else v for k, v in columns.items()})


def build(wh) -> None:
    apply_migrations(wh)
    lineage = {"_source_file": ["f", "f"], "_source_line": [1, 2], "_loaded_at": [AS_OF, AS_OF]}
    wh.write_arrow(rows(user_id=[TARGET, OTHER], registered_at=[AS_OF] * 2, updated_at=[AS_OF] * 2,
                        email=[EMAIL, "o@example.com"], phone=[PHONE, None], first_name=[NAME, "Otto"],
                        customer_type=["b2c"] * 2, email_opt_in=[True] * 2, sms_opt_in=[True] * 2,
                        push_opt_in=[False] * 2, **lineage), "raw_registrations")
    wh.write_arrow(rows(message_id=["m1", "m2"], type=["identify", "track"], event=[None, "Viewed"],
                        user_id=[TARGET, None], anonymous_id=["anon-z", "anon-z"], event_at=[AS_OF] * 2,
                        properties=[json.dumps({"email": EMAIL, "plan": "gold"}), json.dumps({"sku": "A"})],
                        context=["{}", "{}"], **lineage), "raw_events")
    wh.write_arrow(rows(source_file=["f", "f"], line_number=[3, 4], raw_content=[f'{{"user_id": "{TARGET}"', "u10,x"],
                        reason=["bad_json"] * 2, field=[None, None], quarantined_at=[AS_OF] * 2),
                   "quarantine_events")
    wh.write_arrow(rows(user_id=[TARGET, OTHER], email=[EMAIL, "o@example.com"], first_name=[NAME, "Otto"],
                        revenue=[40.0, 15.5]), "customer_profile", mode="replace")
    wh.write_arrow(rows(event_id=["ev1"], channel=["email"], provider=["sendgrid"], event=["open"], address=[EMAIL],
                        occurred_at=[AS_OF], _loaded_at=[AS_OF], user_id=[TARGET]), "delivery_events")
    wh.write_arrow(rows(channel=["email"], address=[EMAIL], user_id=[TARGET], reason=["bounce"], source=["sendgrid"],
                        suppressed_at=[AS_OF]), "suppression_list")
    context = json.dumps({"profile": {"first_name": NAME}, "note": "call", "lifecycle_stage": "silent"})
    wh.write_arrow(rows(task_id=["t1", "t2"], user_id=[TARGET, OTHER], rule=["churn"] * 2, policy=["churn"] * 2,
                        source=["recall"] * 2, priority=[1.0, 2.0], created_at=[AS_OF] * 2, due_at=[AS_OF] * 2,
                        expires_at=[AS_OF] * 2, status=["done"] * 2, status_updated_at=[AS_OF] * 2,
                        note=[f"call {NAME}", "call Otto"], context=[context, "{}"]), "operator_tasks")
    wh.write_arrow(rows(task_id=["t1", "t2"], notes=[f"{NAME} moved", "fine"]), "task_outcomes", mode="replace")


def files(root: Path) -> tuple[Path, Path]:
    exports, outbox = root / "exports", root / "outbox"
    exports.mkdir(parents=True)
    outbox.mkdir()
    (exports / "tasks.csv").write_text(f"task_id,user_id,note\nt1,{TARGET},call {NAME}\nt2,{OTHER},x\n")
    (exports / "banners.jsonl").write_text(json.dumps({"user_id": TARGET, "text": NAME}) + "\n"
                                           + json.dumps({"user_id": OTHER, "text": "Otto"}) + "\n")
    pq.write_table(pa.table({"user_id": [TARGET, OTHER], "score": [0.5, 0.1]}), exports / "scores.parquet")
    (outbox / "email.jsonl").write_text(
        json.dumps({"message_key": "k1", "user_id": OTHER, "to": EMAIL, "body": f"Hi {NAME}"}) + "\n"
        + json.dumps({"message_key": "k2", "user_id": OTHER, "to": "o@example.com", "body": "Hi"}) + "\n")
    return exports, outbox


def normal(value: Any, pseudonym: str) -> Any:
    """JSON text as parsed JSON (jsonb reorders keys), the random pseudonym as a placeholder."""
    if isinstance(value, str):
        value = value.replace(pseudonym, "<pseudonym>")
        if value[:1] in "{[":
            try:
                return json.dumps(json.loads(value), sort_keys=True)
            except ValueError:
                return value
    return value


def run_on(wh, root: Path) -> dict[str, Any]:
    build(wh)
    exports, outbox = files(root)
    exported = export_person(wh, TARGET, AS_OF, exports, outbox)
    report = erase_person(wh, TARGET, AS_OF + timedelta(hours=1), exports, outbox)
    again = erase_person(wh, TARGET, AS_OF + timedelta(hours=2), exports, outbox)
    p = report.pseudonym
    return {
        "identifiers": exported["identifiers"],
        "exported": {t: sorted(json.dumps({k: normal(v, p) for k, v in r.items()}, default=str) for r in rs)
                     for t, rs in exported["tables"].items()},
        "export_files": {Path(f).name: rs for f, rs in exported["export_files"].items()},
        "outbox": {Path(f).name: rs for f, rs in exported["outbox"].items()},
        "report": (report.rows_pseudonymised, report.rows_deleted, report.suppressed,
                   {Path(f).name: n for f, n in report.export_files.items()},
                   {Path(f).name: n for f, n in report.outbox_files.items()}, again.pseudonym == p),
        "tables": {t: [tuple(normal(v, p) for v in row) for row in table_rows(wh, t)] for t in CHECKED},
        "files": {f.name: f.read_bytes().replace(p.encode(), b"<pseudonym>")
                  for d in (exports, outbox) for f in sorted(d.iterdir())},
    }


def test_privacy_export_and_erase_are_the_same_on_duckdb_and_postgres(tmp_path, postgres_warehouse):  # noqa: F811
    with open_warehouse(tmp_path / "duck" / "w.duckdb") as duck:
        on_duckdb = run_on(duck, tmp_path / "duck")
    on_postgres = run_on(postgres_warehouse, tmp_path / "pg")
    exported = on_duckdb["exported"]
    assert {"raw_registrations", "raw_events", "quarantine_events", "customer_profile", "delivery_events",
            "operator_tasks", "task_outcomes"} <= set(exported), sorted(exported)
    assert len(exported["raw_events"]) == 2  # the anonymous event before identification too
    assert len(exported["quarantine_events"]) == 1  # the line naming u1, not the one naming u10
    assert on_duckdb["export_files"].keys() == {"tasks.csv", "banners.jsonl", "scores.parquet"}
    pseudonymised, deleted, suppressed, export_files, outbox_files, same_pseudonym = on_duckdb["report"]
    assert deleted == {"quarantine_events": 1} and outbox_files == {"email.jsonl": 1} and same_pseudonym
    assert pseudonymised["task_outcomes"] == 1 and export_files == dict.fromkeys(on_duckdb["export_files"], 1)
    tables = on_duckdb["tables"]
    text = json.dumps(tables, default=str) + b"".join(on_duckdb["files"].values()).decode("utf-8", "replace")
    assert EMAIL not in text.replace(f'"email", "{EMAIL}"', "") and NAME not in text  # only suppressions keep it
    for key, value in on_duckdb.items():
        assert on_postgres[key] == value, key
