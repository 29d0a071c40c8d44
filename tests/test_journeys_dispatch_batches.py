"""Dispatch stages the due messages (profiles, recommendations) once per run; each batch then only
claims, reads its staged rows, sends and records. These tests fail if a batch goes back to
customer_profile / customer_recommendations (a re-scan per batch: cost that grows with the audience)
or if the number of statements per batch starts to grow."""

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
from helpers_journeys import journey_from_yaml, make_customer_tables, profile, ts

from connectors.channels.base import SendResult
from connectors.channels.outbox import OutboxChannel
from crmflow.journeys.dispatch import dispatch
from crmflow.journeys.engine import run_tick
from crmflow.journeys.policy_config import Policies

AS_OF = ts("2026-03-01T12:00")
USERS = [f"u{i}" for i in range(7)]
SUBJECT = "Hi {{ first_name }} from {{ city }}"
BODY = "{% if recommendations %}Try {{ recommendations[0].sku }}{% else %}Welcome{% endif %}"
JOURNEY = f"""
{{id: recs, name: recs, owner: qa, trigger: {{type: segment, family: lifecycle, segment: new}},
  templates: {{hello: {{channel: email, locales: {{en-US: {{subject: "{SUBJECT}", body: "{BODY}"}}}}}}}},
  steps: [{{id: s1, type: send, channel: email, template: hello}}]}}
"""


def world(con: duckdb.DuckDBPyConnection) -> Any:
    make_customer_tables(
        con,
        customer_profile=[profile(u, first_name=f"N{u}", city=f"C{u}") for u in USERS],
        customer_segment_history=[{"user_id": u, "segment_family": "lifecycle", "segment": "new",
                                   "valid_from": ts("2026-03-01T10:00"), "valid_to": None} for u in USERS])
    con.execute("create table customer_recommendations (user_id varchar, rank integer, sku varchar, "
                "score double, reason varchar)")
    con.executemany("insert into customer_recommendations values (?, ?, ?, 0.5, 'co_purchase')",
                    [(u, r, f"SKU-{u}-{r}") for u in USERS[::2] for r in (2, 1)])
    journey = journey_from_yaml(JOURNEY, name="recs")
    run_tick(con, journey, AS_OF)
    return journey


def policies(batch_size: int) -> Policies:
    return Policies(quiet_hours={"channels": []}, dispatch={"batch_size": batch_size})


def expected_lines() -> dict[str, tuple[str, str]]:
    return {u: (f"Hi N{u} from C{u}", f"Try SKU-{u}-1" if i % 2 == 0 else "Welcome") for i, u in enumerate(USERS)}


def sent(tmp_path: Path) -> dict[str, tuple[str, str]]:
    lines = [json.loads(x) for x in (tmp_path / "email.jsonl").read_text(encoding="utf-8").splitlines()]
    return {m["user_id"]: (m["subject"], m["body"]) for m in lines}


class HidingChannel(OutboxChannel):
    """After the first batch is sent, the customer tables disappear: later batches must not need them."""

    def __init__(self, path: Path, con: duckdb.DuckDBPyConnection):
        super().__init__("email", path)
        self.con = con
        self.batches = 0

    def send_batch(self, messages):
        self.batches += 1
        if self.batches == 1:
            self.con.execute("alter table customer_profile rename to customer_profile_gone")
            self.con.execute("alter table customer_recommendations rename to customer_recommendations_gone")
        return super().send_batch(messages)


def test_batches_render_from_the_staged_rows_not_the_customer_tables(tmp_path: Path) -> None:
    con = duckdb.connect()
    journey = world(con)
    channel = HidingChannel(tmp_path, con)
    report = dispatch(con, AS_OF, {"email": channel}, {"recs": journey}, policies(batch_size=3))
    assert channel.batches == 3  # 7 messages in batches of 3
    assert report.sent == 7 and report.failed == 0
    assert sent(tmp_path) == expected_lines()
    assert con.execute("select count(*) from send_ledger where state = 'sent'").fetchone()[0] == 7


class CountingConnection:
    """Passes everything to a DuckDB connection and logs the SQL it is asked to run."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self._con = con
        self.log: list[str] = []

    def execute(self, sql: str, *args: Any) -> Any:
        self.log.append(sql)
        return self._con.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        self.log.append(sql)
        return self._con.executemany(sql, *args)

    def sql(self, sql: str, **kwargs: Any) -> Any:  # the warehouse interface reads Arrow through it
        self.log.append(sql)
        return self._con.sql(sql, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


class MarkingChannel(OutboxChannel):
    def __init__(self, path: Path, log: list[str]):
        super().__init__("email", path)
        self.log = log

    def send_batch(self, messages):
        self.log.append("-- batch sent")
        return super().send_batch(messages)


@pytest.mark.parametrize("batch_size", [1, 2])
def test_each_batch_runs_the_same_few_statements_on_the_ledger_only(tmp_path: Path, batch_size: int) -> None:
    con = duckdb.connect()
    journey = world(con)
    counting = CountingConnection(con)
    out = tmp_path / str(batch_size)
    report = dispatch(counting, AS_OF, {"email": MarkingChannel(out, counting.log)}, {"recs": journey},  # type: ignore[arg-type]
                      policies(batch_size))
    assert report.sent == 7 and sent(out) == expected_lines()
    marks = [i for i, sql in enumerate(counting.log) if sql == "-- batch sent"]
    assert len(marks) == -(-7 // batch_size)
    # Between two sends: record the previous batch (one transaction: stage the results as a temp
    # table, one UPDATE of the ledger, drop), claim the next one (one UPDATE of the ledger), read its
    # staged rows and staged recommendations, and mark it requested just before its requests (one
    # UPDATE). Nothing else, whatever the batch size (at most 10 statements; how many the warehouse
    # needs to stage an Arrow table is the backend's business).
    between = [counting.log[a + 1:b] for a, b in zip(marks, marks[1:], strict=False)]
    counts = {len(stmts) for stmts in between}
    assert len(counts) == 1 and counts.pop() <= 10, between[0]
    for stmts in between:
        assert [s.split()[0] for s in stmts if "send_ledger" in s] == ["update", "update", "update"], stmts
        text = " ".join(stmts).lower()
        assert "customer_profile" not in text and "customer_recommendations" not in text, stmts


class DeadAddressChannel(OutboxChannel):
    """u1's address is dead (after two attempts); everyone else is accepted."""

    def send_batch(self, messages):
        results = super().send_batch(messages)
        return [SendResult(message_key=r.message_key, status="failed", error="bounced", attempts=2, address_dead=True)
                if m.user_id == "u1" else r for m, r in zip(messages, results, strict=True)]


def test_record_writes_sent_failed_and_render_errors_in_one_pass(tmp_path: Path) -> None:
    con = duckdb.connect()
    journey = world(con)
    broken = journey_from_yaml(JOURNEY.replace("{% if recommendations %}", "{% if true %}"), name="recs")
    report = dispatch(con, AS_OF, {"email": DeadAddressChannel("email", tmp_path)}, {"recs": broken}, policies(3))
    rows = {u: r for u, *r in con.execute("""select user_id, state, reason, error, attempts, sent_at,
                                              content_ref is not null from send_ledger""").fetchall()}
    # users without recommendations (odd index) cannot render recommendations[0]
    for u in USERS[1::2]:
        state, reason, error, attempts, sent_at, has_ref = rows[u]
        assert (state, reason, attempts, sent_at, has_ref) == ("failed", "render_failed", 1, None, False)
        assert error.startswith("render error:")
    assert rows["u0"][0] == "sent" and rows["u0"][3:] == [1, AS_OF, True]
    assert report.sent == 4 and report.failed == 3
    dead = con.execute("select channel, address, user_id, reason from suppression_list").fetchall()
    assert dead == []  # u1 never reached the provider: it failed to render
    con2 = duckdb.connect()
    world(con2)
    dispatch(con2, AS_OF, {"email": DeadAddressChannel("email", tmp_path / "2")}, {"recs": journey}, policies(3))
    assert con2.execute("select state, error, attempts, sent_at from send_ledger where user_id = 'u1'").fetchone() \
        == ("failed", "bounced", 2, None)
    assert con2.execute("select channel, address, user_id, reason from suppression_list").fetchall() == [
        ("email", "u1@example.com", "u1", "bounce")]
