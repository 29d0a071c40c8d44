"""Policies and dispatch: consent, suppression, missing address, quiet hours in the user's zone,
frequency caps by priority, crash between claim and record, the dispatch lock."""

import json
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from helpers_journeys import EMAIL_TEMPLATE, journey_from_yaml, make_customer_tables, profile, ts

from connectors.channels.outbox import OutboxChannel
from crmflow.journeys.dispatch import DispatchLockedError, dispatch, dispatch_lock
from crmflow.journeys.engine import run_tick
from crmflow.journeys.policy_config import ChannelCap, Policies

AS_OF = ts("2026-03-01T12:00")


def journey(jid: str, priority: int = 100, channel: str = "email"):
    templates = EMAIL_TEMPLATE if channel == "email" else """
  hello:
    channel: sms
    locales:
      en-US: {text: "Hi {{ first_name }}"}
"""
    return journey_from_yaml(f"""
id: {jid}
name: {jid}
owner: qa
priority: {priority}
trigger: {{type: segment, family: lifecycle, segment: new}}
templates:{templates}
steps:
  - {{id: s1, type: send, channel: {channel}, template: hello}}
""")


def setup(con, users):
    make_customer_tables(con, customer_profile=users, customer_segment_history=[
        {"user_id": u["user_id"], "segment_family": "lifecycle", "segment": "new",
         "valid_from": ts("2026-03-01T10:00"), "valid_to": None} for u in users])


def outbox(tmp_path: Path) -> dict[str, OutboxChannel]:
    return {c: OutboxChannel(c, tmp_path) for c in ("email", "sms", "push", "webhook")}


def sent_lines(tmp_path: Path, channel: str = "email") -> list[dict]:
    path = tmp_path / f"{channel}.jsonl"
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def states(con) -> dict[str, tuple]:
    return {u: (s, r) for u, s, r in con.execute("select user_id, state, reason from send_ledger").fetchall()}


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    yield con
    con.close()


def test_consent_suppression_and_missing_address(con, tmp_path: Path) -> None:
    setup(con, [profile("ok"), profile("optout", email_opt_in=False), profile("noaddr", email=None),
                profile("supp", email="Supp@Example.com")])
    con.execute("insert into suppression_list values ('email', 'supp@example.com', null, 'bounce', 'sendgrid', ?)",
                [AS_OF])
    j = journey("j")
    run_tick(con, j, AS_OF)
    report = dispatch(con, AS_OF, outbox(tmp_path), {"j": j}, Policies(quiet_hours={"channels": []}))
    assert states(con) == {
        "ok": ("sent", None),
        "optout": ("suppressed", "no_consent:email_opt_in"),
        "noaddr": ("skipped", "no_address:email"),
        "supp": ("suppressed", "suppression_list:bounce"),
    }
    assert [m["to"] for m in sent_lines(tmp_path)] == ["ok@example.com"]
    assert report.policy.decisions == {"suppressed": 2, "skipped": 1}
    decisions = con.execute("select decision, reason from journey_decisions where message_key is not null "
                            "order by all").fetchall()
    assert ("suppressed", "no_consent:email_opt_in") in decisions
    content_ref = con.execute("select content_ref from send_ledger where user_id = 'ok'").fetchone()[0]
    assert content_ref.startswith("sha256:") and sent_lines(tmp_path)[0]["metadata"]["content_ref"] == content_ref


def test_quiet_hours_defer_in_user_timezone(con, tmp_path: Path) -> None:
    # 12:00 UTC = 20:00 Shanghai (allowed), 21:00 Tokyo (quiet), 07:00 New York (quiet)
    setup(con, [profile("sh", timezone="Asia/Shanghai"), profile("tk", timezone="Asia/Tokyo"),
                profile("ny", timezone="America/New_York")])
    j = journey("j")
    run_tick(con, j, AS_OF)
    dispatch(con, AS_OF, outbox(tmp_path), {"j": j}, Policies())
    rows = {u: (s, a) for u, s, a in con.execute("select user_id, state, send_after from send_ledger").fetchall()}
    assert rows["sh"][0] == "sent"
    assert rows["tk"] == ("planned", ts("2026-03-01T23:00"))  # 08:00 Tokyo next day
    assert rows["ny"] == ("planned", ts("2026-03-01T13:00"))  # 08:00 New York same day
    # a rerun at the same time defers nothing again and sends nothing
    dispatch(con, AS_OF, outbox(tmp_path), {"j": j}, Policies())
    assert len(sent_lines(tmp_path)) == 1
    assert con.execute("select count(*) from journey_decisions where decision = 'deferred'").fetchone()[0] == 2
    dispatch(con, ts("2026-03-01T13:00"), outbox(tmp_path), {"j": j}, Policies())
    assert {m["user_id"] for m in sent_lines(tmp_path)} == {"sh", "ny"}


def test_frequency_cap_priority_wins(con, tmp_path: Path) -> None:
    setup(con, [profile("u1")])
    low, high = journey("low", priority=10), journey("high", priority=900)
    run_tick(con, low, AS_OF)
    run_tick(con, high, AS_OF)
    policies = Policies(quiet_hours={"channels": []},
                        frequency_caps=[ChannelCap(channel="email", max=1, window=timedelta(days=7))])
    dispatch(con, AS_OF, outbox(tmp_path), {"low": low, "high": high}, policies)
    rows = dict(con.execute("select journey_id, state from send_ledger").fetchall())
    assert rows == {"high": "sent", "low": "capped"}
    assert [m["journey_id"] for m in sent_lines(tmp_path)] == ["high"]


def test_crash_between_claim_and_record_never_sends_twice(con, tmp_path: Path) -> None:
    setup(con, [profile("u1"), profile("u2")])
    j = journey("j")
    run_tick(con, j, AS_OF)
    policies = Policies(quiet_hours={"channels": []})

    class CrashAfterSend(OutboxChannel):
        def send_batch(self, messages):
            super().send_batch(messages)  # the provider accepted them...
            raise KeyboardInterrupt("process killed before the results were recorded")

    channels = outbox(tmp_path)
    channels["email"] = CrashAfterSend("email", tmp_path)
    with pytest.raises(KeyboardInterrupt):
        dispatch(con, AS_OF, channels, {"j": j}, policies)
    assert {s for s, _ in states(con).values()} == {"sending"}
    report = dispatch(con, AS_OF + timedelta(hours=1), outbox(tmp_path), {"j": j}, policies)
    assert len(report.reconciled_unknown) == 2 and report.sent == 0
    assert {s for s, _ in states(con).values()} == {"unknown"}
    assert len(sent_lines(tmp_path)) == 2  # once each, never again
    dispatch(con, AS_OF + timedelta(hours=2), outbox(tmp_path), {"j": j}, policies)
    assert len(sent_lines(tmp_path)) == 2


class CrashBeforeSend(OutboxChannel):
    def send_batch(self, messages):
        raise KeyboardInterrupt("process killed after the claim, before anything reached the provider")


def test_claim_then_crash_before_send_and_at_least_once_requeues(con, tmp_path: Path) -> None:
    setup(con, [profile("u1")])
    j = journey("j", channel="sms")
    run_tick(con, j, AS_OF)
    policies = Policies(quiet_hours={"channels": []}, dispatch={"delivery": {"sms": "at_least_once"}})
    with pytest.raises(KeyboardInterrupt):  # claimed... then the process dies
        dispatch(con, AS_OF, {"sms": CrashBeforeSend("sms", tmp_path)}, {"j": j}, policies)
    assert con.execute("select state, attempts from send_ledger").fetchone() == ("sending", 1)
    report = dispatch(con, AS_OF, outbox(tmp_path), {"j": j}, policies)
    assert report.requeued == 1 and report.sent == 1
    assert len(sent_lines(tmp_path, "sms")) == 1
    assert con.execute("select state, attempts from send_ledger").fetchone() == ("sent", 2)


def test_ledger_key_is_unique_in_the_database(con) -> None:
    setup(con, [profile("u1")])
    run_tick(con, journey("j"), AS_OF)
    with pytest.raises(duckdb.ConstraintException):
        con.execute("insert into send_ledger select * from send_ledger")


def test_dispatch_lock_excludes_a_second_dispatcher(tmp_path: Path) -> None:
    lock = tmp_path / "wh.duckdb.dispatch.lock"
    with dispatch_lock(lock):
        with pytest.raises(DispatchLockedError):
            with dispatch_lock(lock):
                pass
    with dispatch_lock(lock):  # released
        pass


def test_render_uses_locale_with_fallback(con, tmp_path: Path) -> None:
    setup(con, [profile("zh", locale="zh-CN", first_name="李"), profile("fr", locale="fr-FR")])
    j = journey("j")
    run_tick(con, j, AS_OF)
    report = dispatch(con, AS_OF, outbox(tmp_path), {"j": j}, Policies(quiet_hours={"channels": []}))
    by_user = {m["user_id"]: m for m in sent_lines(tmp_path)}
    assert by_user["zh"]["subject"] == "你好 李" and by_user["zh"]["locale"] == "zh-CN"
    assert by_user["fr"]["subject"] == "Hi Ann" and by_user["fr"]["locale"] == "en-US"
    assert report.sent == 2 and report.failed == 0
    refs = dict(con.execute("select user_id, content_ref from send_ledger").fetchall())
    assert {u: m["metadata"]["content_ref"] for u, m in by_user.items()} == refs
