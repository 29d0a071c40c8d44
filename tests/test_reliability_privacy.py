"""Privacy: `crmflow privacy export` returns everything held about a person (tables discovered by
their user_id column, stitched anonymous events, quarantined lines that mention them, operator tasks
with their nested context and the outcomes' notes, export files, outbox messages);
`crmflow privacy erase` removes or pseudonymises it everywhere, suppresses them, keeps revenue and
registration counts unchanged, and survives a re-delivery of their rows at ingestion."""

import json
from datetime import timedelta
from pathlib import Path

import pytest
from helpers_ingest import AS_OF, event, order, registration, write_jsonl
from helpers_journeys import make_customer_tables, profile
from helpers_reliability import scan_text_columns
from typer.testing import CliRunner

from connectors.channels.base import OutboundMessage
from connectors.channels.outbox import OutboxChannel
from connectors.sources.files import ingest_source
from crmflow.privacy import erase_person, export_person
from crmflow.tasks.outcomes import OUTCOMES_DDL
from crmflow.tasks.schema import ensure_task_tables
from crmflow.warehouse import connect

TARGET = "u1"
EMAIL, PHONE, NAME, TOKEN = "zelda.q@example.net", "+4915199990001", "Zelda", "tok-zelda-1"
COMPANY, NOTE = "Zeldacorp GmbH", "Zelda moved to Hamburg"
OTHER = "u10"  # shares a prefix with the target: must never be matched
# Everything that identifies or describes the target; none of it may survive an erasure.
NEEDLES = [EMAIL, PHONE, NAME, TOKEN, "anon-z", COMPANY, NOTE]


def land(landing: Path, batch: str, *, newer: bool = False) -> None:
    stamp = "2026-06-01T00:00:00Z" if newer else "2026-01-01T09:00:00Z"
    write_jsonl(landing / "registrations" / f"reg_{batch}.jsonl", [
        registration(TARGET, email=EMAIL, phone=PHONE, first_name=NAME, push_token=TOKEN, updated_at=stamp),
        registration(OTHER, email="other@example.com", first_name="Otto"),
    ])
    write_jsonl(landing / "orders" / f"orders_{batch}.jsonl", [
        order(f"o-{batch}-1", user_id=TARGET, amount="40.00"), order(f"o-{batch}-2", user_id=OTHER, amount="15.50"),
    ])
    write_jsonl(landing / "events" / f"events_{batch}.jsonl", [
        event(f"m-{batch}-anon", user_id=None, anonymous_id="anon-z", event="Product Viewed"),
        event(f"m-{batch}-id", type="identify", event=None, user_id=TARGET, anonymous_id="anon-z",
              properties={"email": EMAIL, "plan": "gold"}),
        event(f"m-{batch}-other", user_id=OTHER, anonymous_id="anon-o"),
        # a broken line that mentions the target: quarantined with its raw content
        f'{{"message_id": "m-{batch}-bad", "type": "track", "user_id": "{TARGET}", "email": "{EMAIL}"',
    ])


def ingest_all(con, landing: Path, at) -> None:
    for source in ("registrations", "orders", "events"):
        stats = ingest_source(con, source, landing, loaded_at=at)
        assert stats.balanced, stats


@pytest.fixture
def world(tmp_path: Path):
    landing, exports = tmp_path / "landing", tmp_path / "exports"
    with connect(tmp_path / "wh.duckdb") as con:
        land(landing, "a")
        ingest_all(con, landing, AS_OF)
        # marts, journeys and model outputs as the pipeline would leave them (no dbt needed here)
        make_customer_tables(
            con, customer_profile=[profile(TARGET, email=EMAIL, phone=PHONE, first_name=NAME, push_token=TOKEN,
                                           revenue=40), profile(OTHER, revenue=15.5)],
            customer_tags=[{"user_id": TARGET, "tag": "vip", "tag_source": "rule", "added_at": AS_OF}],
            events_stitched=[{"message_id": "m-a-anon", "user_id": TARGET, "anonymous_id": "anon-z",
                              "event_type": "track", "event_name": "Product Viewed", "event_at": AS_OF,
                              "properties": "{}", "context": "{}"}])
        con.execute("create table customer_churn_scores (user_id varchar, churn_probability double)")
        con.execute(f"insert into customer_churn_scores values ('{TARGET}', 0.7), ('{OTHER}', 0.1)")
        con.execute("""insert into send_ledger (message_key, journey_id, step_id, enrolment_id, user_id, channel,
                       variant, template, priority, content_ref, send_after, state, reason, attempts,
                       provider_message_id, error, planned_at, sent_at, updated_at)
                       values ('k1', 'j', 's', 'e1', ?, 'email', null, 't', 1, null, ?,
                       'sent', null, 1, 'sg1', null, ?, ?, ?)""", [TARGET, AS_OF, AS_OF, AS_OF, AS_OF])
        con.execute("""insert into delivery_events (event_id, channel, provider, message_key, event, address,
                       occurred_at, _loaded_at, user_id) values ('ev1', 'email', 'sendgrid', 'k1', 'open', ?, ?, ?, ?)""",
                    [EMAIL, AS_OF, AS_OF, TARGET])
        (exports / "banners").mkdir(parents=True)
        (exports / "banners" / "banner_assignments.jsonl").write_text(
            json.dumps({"user_id": TARGET, "slot": "home", "text": f"Hi {NAME}"}) + "\n"
            + json.dumps({"user_id": OTHER, "slot": "home", "text": "Hi Otto"}) + "\n", encoding="utf-8")
        (exports / "tasks").mkdir()
        (exports / "tasks" / "operator_tasks.csv").write_text(
            f"task_id,user_id,note\nt1,{TARGET},call {NAME}\nt2,{OTHER},call Otto\n", encoding="utf-8")
    with connect(tmp_path / "wh.duckdb") as con:
        add_tasks_and_outcomes(con)
    add_outbox(tmp_path / "outbox")
    return tmp_path, landing, exports


def add_tasks_and_outcomes(con) -> None:
    """operator_tasks (real DDL; the context nests the profile and the note) and task_outcomes (no
    user_id; the operator's free-text notes), plus a quarantined outcome line about the target's task."""
    ensure_task_tables(con)
    con.execute(OUTCOMES_DDL)
    for task, user, name, company, note in (("task_z", TARGET, NAME, COMPANY, f"call {NAME}"),
                                            ("task_o", OTHER, "Otto", "Ottoworks", "call Otto")):
        context = {"profile": {"first_name": name, "company_name": company, "revenue": 40},
                   "lifecycle_stage": "silent", "note": note, "last_orders": [{"order_id": "o-a-1"}],
                   "talking_points": ["ask how it is going"]}
        con.execute("""insert into operator_tasks values (?, ?, 'op1', 'churn', 'churn', 'recall', 'silent', 10,
                       ?, ?, ?, ?, 'done', ?, null, null, null, ?, ?)""",
                    [task, user, AS_OF, AS_OF, AS_OF, AS_OF + timedelta(days=7), AS_OF, note, json.dumps(context)])
    con.execute("""insert into task_outcomes values ('task_z', 'op1', 'done', ?, 300, ?, 'f.csv', 2, ?),
                   ('task_o', 'op1', 'done', ?, 120, 'Otto was happy', 'f.csv', 3, ?)""",
                [AS_OF, NOTE, AS_OF, AS_OF, AS_OF])
    con.execute("""insert into quarantine_task_outcomes values ('f.csv', 4, ?, 'bad_outcome', 'outcome', ?)""",
                [f"task_z,maybe,2026-11-20T10:00:00Z,30,op1,{NOTE}", AS_OF])


def add_outbox(outbox: Path) -> None:
    """Two channels' outbox files as the offline provider writes them: address and rendered text."""
    email, sms = OutboxChannel("email", outbox), OutboxChannel("sms", outbox)
    email.send_batch([
        OutboundMessage("k1", "email", TARGET, EMAIL, "j", "s", subject=f"Hi {NAME}", body=f"Welcome {NAME}",
                        html=f"<p>Welcome {NAME}</p>", metadata={"first_name": NAME}),
        OutboundMessage("k2", "email", OTHER, "other@example.com", "j", "s", subject="Hi Otto", body="Welcome Otto"),
    ])
    sms.send_batch([OutboundMessage("k3", "sms", TARGET, PHONE, "j", "s2", body=f"Hi {NAME}"),
                    OutboundMessage("k4", "sms", OTHER, "+4915100000000", "j", "s2", body="Hi Otto")])


def test_export_returns_every_table_that_holds_the_person(world) -> None:
    root, _, exports = world
    with connect(root / "wh.duckdb") as con:
        data = export_person(con, TARGET, AS_OF, exports, root / "outbox")
    tables = data["tables"]
    assert {"raw_registrations", "raw_orders", "raw_events", "quarantine_events", "customer_profile",
            "customer_tags", "events_stitched", "send_ledger", "delivery_events",
            "customer_churn_scores", "operator_tasks", "task_outcomes",
            "quarantine_task_outcomes"} <= set(tables), sorted(tables)
    # task outcomes have no user_id: they are found through the person's tasks, notes included
    assert [r["notes"] for r in tables["task_outcomes"]] == [NOTE]
    assert json.loads(tables["operator_tasks"][0]["context"])["profile"]["company_name"] == COMPANY
    # the outbox messages sent to them, with address and rendered text
    outbox = {Path(p).name: rows for p, rows in data["outbox"].items()}
    assert {n: [r["message_key"] for r in rows] for n, rows in outbox.items()} == {"email.jsonl": ["k1"],
                                                                                  "sms.jsonl": ["k3"]}
    assert outbox["email.jsonl"][0]["to"] == EMAIL and outbox["sms.jsonl"][0]["body"] == f"Hi {NAME}"
    # the anonymous event before identification is theirs too (stitched by anonymous_id)
    assert {r["message_id"] for r in tables["raw_events"]} == {"m-a-anon", "m-a-id"}
    assert "anon-z" in data["identifiers"]["anonymous_ids"] and EMAIL in data["identifiers"]["emails"]
    dumped = json.dumps(data, default=str)
    assert OTHER not in dumped.replace(f'"{TARGET}"', "") and "Otto" not in dumped and "Ottoworks" not in dumped
    assert {Path(p).name for p in data["export_files"]} == {"banner_assignments.jsonl", "operator_tasks.csv"}


def test_erase_removes_personal_data_keeps_aggregates_and_survives_redelivery(world) -> None:
    root, landing, exports = world
    with connect(root / "wh.duckdb") as con:
        revenue = con.execute("select sum(amount), count(*) from raw_orders").fetchone()
        registrations = con.execute("select count(*) from raw_registrations").fetchone()[0]
        report = erase_person(con, TARGET, AS_OF + timedelta(hours=1), exports, root / "outbox")
        assert report.rows_deleted == {"quarantine_events": 1, "quarantine_task_outcomes": 1}
        assert report.rows_pseudonymised["raw_registrations"] == 1
        assert report.rows_pseudonymised["operator_tasks"] == report.rows_pseudonymised["task_outcomes"] == 1
        assert {Path(p).name: n for p, n in report.outbox_files.items()} == {"email.jsonl": 1, "sms.jsonl": 1}
        assert scan_text_columns(con, NEEDLES, [TARGET], skip=("suppression_list",)) == []
        # the other person's task, context and notes are untouched; the erased outcome still counts
        assert con.execute("select count(*), count(notes) from task_outcomes").fetchone() == (2, 1)
        assert con.execute("select context->>'$.profile.first_name' from operator_tasks where user_id = ?",
                           [OTHER]).fetchone() == ("Otto",)
        # aggregates: orders kept under the pseudonym, same revenue and counts
        assert con.execute("select sum(amount), count(*) from raw_orders").fetchone() == revenue
        assert con.execute("select count(*) from raw_registrations").fetchone()[0] == registrations
        assert con.execute("select count(*) from raw_orders where user_id = ?", [report.pseudonym]).fetchone()[0] == 1
        suppressed = set(con.execute("select channel, address, reason from suppression_list").fetchall())
        assert {("all", TARGET, "erased"), ("all", report.pseudonym, "erased"), ("email", EMAIL, "erased"),
                ("sms", PHONE, "erased"), ("push", TOKEN, "erased")} <= suppressed
        # the other customer is untouched
        assert con.execute("select email from raw_registrations where user_id = ?", [OTHER]).fetchone() == (
            "other@example.com",)
        # the same rows delivered again (and a newer version) are anonymised at ingestion
        land(landing, "b", newer=True)
        ingest_all(con, landing, AS_OF + timedelta(days=1))
        assert scan_text_columns(con, [EMAIL, PHONE, NAME, TOKEN], [TARGET],
                                 skip=("suppression_list", "quarantine_events")) == []
        assert con.execute("select count(*) from raw_orders where user_id = ?", [report.pseudonym]).fetchone()[0] == 2
        assert con.execute("select count(*) from raw_registrations where user_id = ?",
                           [report.pseudonym]).fetchone()[0] == 1
        # erasing again is idempotent and keeps the same pseudonym
        again = erase_person(con, TARGET, AS_OF + timedelta(days=2), exports)
        assert again.pseudonym == report.pseudonym
    files = [p for d in (exports, root / "outbox") for p in d.rglob("*") if p.is_file()]
    assert len(files) == 4
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert not [n for n in NEEDLES if n in text], path
        assert f",{TARGET}," not in text and f'"{TARGET}"' not in text, path
        assert "Otto" in text  # only the person's rows left the files
    # the outbox keeps one (redacted) line per message sent: the provider's count does not change
    email_lines = [json.loads(line) for line in (root / "outbox" / "email.jsonl").read_text().splitlines()]
    assert [(m["message_key"], m["user_id"]) for m in email_lines] == [("k1", report.pseudonym), ("k2", OTHER)]
    assert "to" not in email_lines[0] and email_lines[1]["to"] == "other@example.com"


def test_cli_export_and_erase(world, monkeypatch) -> None:
    from orchestration.cli import app

    root, _, exports = world
    monkeypatch.setenv("CRMFLOW_WAREHOUSE", str(root / "wh.duckdb"))
    monkeypatch.setenv("CRMFLOW_EXPORT_DIR", str(exports))
    monkeypatch.setenv("CRMFLOW_OUTBOX_DIR", str(root / "outbox"))
    runner = CliRunner()
    exported = runner.invoke(app, ["privacy", "export", TARGET, "--as-of", "2026-11-22T06:00:00Z"])
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.output)["tables"]["raw_registrations"][0]["email"] == EMAIL
    assert len(json.loads(exported.output)["outbox"]) == 2
    refused = runner.invoke(app, ["privacy", "erase", TARGET])
    assert refused.exit_code == 2
    erased = runner.invoke(app, ["privacy", "erase", TARGET, "--yes", "--as-of", "2026-11-22T07:00:00Z"])
    assert erased.exit_code == 0, erased.output
    assert json.loads(erased.output)["pseudonym"].startswith("erased-")
    after = runner.invoke(app, ["privacy", "export", TARGET])
    assert json.loads(after.output)["tables"].keys() <= {"suppression_list"}
    assert json.loads(after.output)["outbox"] == {} and EMAIL not in (root / "outbox" / "email.jsonl").read_text()
