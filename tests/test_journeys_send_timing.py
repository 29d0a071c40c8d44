"""When messages go out: a wait counted from the previous message's actual send (`from:
previous_send`), and the outbox lines' planned_at / sent_at. Ticks and dispatches run at explicit
as-of times; quiet hours defer the first message, as in the issue."""

import json
from pathlib import Path

import duckdb
import pytest
from helpers_journeys import EMAIL_TEMPLATE, journey_from_yaml, make_customer_tables, profile, ts

from connectors.channels.base import OutboundMessage
from connectors.channels.outbox import OutboxChannel
from crmflow.journeys.dispatch import dispatch
from crmflow.journeys.engine import run_tick
from crmflow.journeys.loader import parse_journey_text
from crmflow.journeys.policy_config import Policies

QUIET = Policies(quiet_hours={"start": "21:00", "end": "08:00", "channels": ["email"]}, frequency_caps=[])


def two_mails(jid: str, wait_from: str = "") -> object:
    return journey_from_yaml(f"""
id: {jid}
name: Two mails
owner: qa
trigger: {{type: segment, family: lifecycle, segment: new}}
templates:{EMAIL_TEMPLATE}steps:
  - {{id: first, type: send, channel: email, template: hello}}
  - {{id: pause, type: wait, duration: 2h{wait_from}}}
  - {{id: second, type: send, channel: email, template: hello}}
""")


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    make_customer_tables(con, customer_profile=[profile("u1")], customer_segment_history=[
        {"user_id": "u1", "segment_family": "lifecycle", "segment": "new", "valid_from": ts("2026-03-01T20:00"),
         "valid_to": None}])
    yield con
    con.close()


def outbox(path: Path) -> dict[str, OutboxChannel]:
    return {c: OutboxChannel(c, path) for c in ("email", "sms", "push", "webhook")}


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in (path / "email.jsonl").read_text(encoding="utf-8").splitlines()]


def step_of(con, jid: str) -> str | None:
    return con.execute("select current_step from journey_enrolments where journey_id = ?", [jid]).fetchone()[0]


def run(con, journeys, tmp_path: Path, tick_at: str | None = None, dispatch_at: str | None = None) -> None:
    for j in journeys:
        if tick_at:
            run_tick(con, j, ts(tick_at))
    if dispatch_at:
        dispatch(con, ts(dispatch_at), outbox(tmp_path), {j.id: j for j in journeys}, QUIET)


def test_wait_from_previous_send_spaces_a_deferred_message(con, tmp_path: Path) -> None:
    spaced, planned = two_mails("spaced", ", from: previous_send"), two_mails("planned")
    both = [spaced, planned]
    run(con, both, tmp_path, "2026-03-01T20:30", "2026-03-01T21:00")  # first mail deferred to 08:00
    assert con.execute("select count(*) from send_ledger where state = 'planned' and send_after = ?",
                       [ts("2026-03-02T08:00")]).fetchone()[0] == 2
    run(con, both, tmp_path, "2026-03-02T07:00")
    # counted from planning, the 2 h are over and the second mail is planned behind the deferred first;
    # counted from the send, the wait has not started: the first mail is still planned
    assert (step_of(con, "planned"), step_of(con, "spaced")) == (None, "pause")
    run(con, both, tmp_path, "2026-03-02T07:30", "2026-03-02T08:00")
    sent = [(m["journey_id"], m["step_id"], m["sent_at"]) for m in lines(tmp_path)]
    # the bug of the issue: both mails of `planned` arrive in the same minute
    assert sorted(sent) == [("planned", "first", "2026-03-02T08:00:00Z"), ("planned", "second", "2026-03-02T08:00:00Z"),
                            ("spaced", "first", "2026-03-02T08:00:00Z")]
    run(con, both, tmp_path, "2026-03-02T09:59", "2026-03-02T09:59")
    assert step_of(con, "spaced") == "pause"  # 1 h 59 min after the send
    run(con, both, tmp_path, "2026-03-02T10:00", "2026-03-02T10:00")
    second = [m for m in lines(tmp_path) if m["journey_id"] == "spaced" and m["step_id"] == "second"]
    assert [(m["planned_at"], m["sent_at"]) for m in second] == [("2026-03-02T10:00:00Z", "2026-03-02T10:00:00Z")]
    assert con.execute("select status from journey_enrolments where journey_id = 'spaced'").fetchone()[0] == "completed"


def test_outbox_lines_carry_planned_at_and_sent_at(con, tmp_path: Path) -> None:
    j = two_mails("j")
    run(con, [j], tmp_path, "2026-03-01T20:30", "2026-03-01T21:00")
    assert not (tmp_path / "email.jsonl").exists()  # quiet hours: nothing sent yet
    run(con, [j], tmp_path, None, "2026-03-02T08:15")
    (line,) = lines(tmp_path)
    assert (line["step_id"], line["planned_at"], line["sent_at"]) == ("first", "2026-03-01T20:30:00Z",
                                                                     "2026-03-02T08:15:00Z")
    ledger = con.execute("select planned_at, sent_at from send_ledger where step_id = 'first'").fetchone()
    assert ledger == (ts("2026-03-01T20:30"), ts("2026-03-02T08:15"))  # the line says what the ledger says


def test_outbox_writes_utc_whatever_the_offset(tmp_path: Path) -> None:
    from datetime import timedelta, timezone

    plus_two = timezone(timedelta(hours=2))
    message = OutboundMessage("k", "email", "u", "u@example.com", "j", "s",
                              planned_at=ts("2026-03-01T10:00:00.250000+02:00").astimezone(plus_two),
                              sent_at=None)
    OutboxChannel("email", tmp_path).send_batch([message])
    (line,) = lines(tmp_path)
    assert (line["planned_at"], line["sent_at"]) == ("2026-03-01T08:00:00.250000Z", None)


def test_previous_message_never_sent_counts_from_its_decision(con, tmp_path: Path) -> None:
    j = two_mails("bounced", ", from: previous_send")
    # a bounced address stops the mails, not the journey (no unsubscribe exit)
    con.execute("insert into suppression_list values ('email', 'u1@example.com', 'u1', 'bounce', 'sendgrid', ?)",
                [ts("2026-02-01")])
    run_tick(con, j, ts("2026-03-01T20:30"))
    # a dispatch an hour later suppresses the first mail: that is when its fate is settled
    dispatch(con, ts("2026-03-01T21:30"), outbox(tmp_path), {"bounced": j},
             Policies(quiet_hours={"channels": []}, frequency_caps=[]))
    assert con.execute("select state, reason from send_ledger").fetchone() == ("suppressed", "suppression_list:bounce")
    run_tick(con, j, ts("2026-03-01T23:00"))  # 2 h 30 after planning, 1 h 30 after the decision
    assert step_of(con, "bounced") == "pause"
    run_tick(con, j, ts("2026-03-01T23:30"))
    assert step_of(con, "bounced") is None


def test_wait_without_a_previous_message_counts_from_the_step(con) -> None:
    j = journey_from_yaml(f"""
id: wait_first
name: Wait first
owner: qa
trigger: {{type: segment, family: lifecycle, segment: new}}
templates:{EMAIL_TEMPLATE}steps:
  - {{id: pause, type: wait, duration: 2h, from: previous_send}}
  - {{id: mail, type: send, channel: email, template: hello}}
""")
    run_tick(con, j, ts("2026-03-01T20:30"))
    run_tick(con, j, ts("2026-03-01T22:29"))
    assert step_of(con, "wait_first") == "pause"
    run_tick(con, j, ts("2026-03-01T22:30"))
    assert con.execute("select count(*) from send_ledger where journey_id = 'wait_first'").fetchone()[0] == 1


@pytest.mark.parametrize(("steps", "field", "message"), [
    ("  - {id: pause, type: wait, until: {start: '09:00', end: '10:00'}, from: previous_send}\n",
     "steps[0].wait", "'from: previous_send' needs a duration"),
    ("  - {id: pause, type: wait, duration: 1d, from: previous_send}\n  - {id: t, type: add_tag, tag: x}\n",
     "steps[0].from", "'from: previous_send' needs a send step in this journey"),
    ("  - {id: pause, type: wait, duration: 1d, from: planned}\n",
     "steps[0].from", "Input should be 'step_entered' or 'previous_send'"),
])
def test_invalid_wait_from_names_the_line(steps: str, field: str, message: str, tmp_path: Path) -> None:
    text = f"id: bad\nname: b\nowner: qa\ntrigger: {{type: segment, family: lifecycle, segment: new}}\nsteps:\n{steps}"
    loaded = parse_journey_text(text, tmp_path / "bad.yaml")
    (error,) = loaded.errors
    assert (error.line, error.field) == (6, field) and message in error.message, str(error)
