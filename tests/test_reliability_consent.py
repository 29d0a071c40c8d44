"""Consent at scale: daily ticks over many users while opt-outs, unsubscribes and bounces arrive
between ticks. Proven in SQL over the ledger: nothing sent to an opted-out or suppressed address
after the change, no frequency cap exceeded, nothing sent inside the user's quiet hours (in the
user's own time zone). `make soak` runs 100k users x 30 ticks (CRMFLOW_CONSENT_USERS/_TICKS)."""

import os
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
from helpers_journeys import make_customer_tables
from helpers_reliability import AS_OF, journey_yaml

from connectors.channels.outbox import OutboxChannel
from crmflow.journeys.dispatch import dispatch
from crmflow.journeys.loader import parse_journey_text
from crmflow.journeys.policy_config import Policies

USERS = int(os.environ.get("CRMFLOW_CONSENT_USERS", "1500"))
TICKS = int(os.environ.get("CRMFLOW_CONSENT_TICKS", "10"))
ZONES = ["UTC", "Asia/Shanghai", "America/New_York", "Europe/Berlin", "Asia/Kolkata", "Pacific/Auckland", "bogus"]
CHANNELS = ("email", "sms", "push")


class CountingChannel(OutboxChannel):
    """The outbox channel minus the file: accepts everything (this test is about policy, not IO)."""

    def send_batch(self, messages):
        from connectors.channels.base import SendResult

        return [SendResult(m.message_key, "sent", f"sim:{m.message_key}") for m in messages]


def journeys():
    out = {}
    for i, channel in enumerate(CHANNELS):
        loaded = parse_journey_text(journey_yaml(f"rel_{channel}", channel, priority=100 + i),
                                    Path(f"rel_{channel}.yaml"))
        assert loaded.ok, loaded.error_text()
        out[loaded.journey.id] = loaded.journey
    return out


def create_population(con: duckdb.DuckDBPyConnection) -> None:
    make_customer_tables(con)
    zones = pa.array(ZONES)
    con.register("_zones", pa.table({"i": list(range(len(ZONES))), "tz": zones}))
    con.execute(f"""insert into customer_profile (user_id, email, phone, push_token, first_name, email_opt_in,
                    sms_opt_in, push_opt_in, locale, timezone, customer_type, order_count, revenue)
        select 'u' || lpad(g::varchar, 7, '0'), 'p' || g || '@example.org', '+4915' || lpad(g::varchar, 9, '0'),
               'tok-' || g, 'Ann', g % 10 <> 0, g % 7 <> 0, true, 'en-US', z.tz, 'individual', 0, 0
        from range({USERS}) t(g) join _zones z on z.i = g % {len(ZONES)}""")
    con.unregister("_zones")
    con.execute("create table consent_changes (user_id varchar, channel varchar, changed_at timestamptz)")


def plan_tick(con: duckdb.DuckDBPyConnection, tick: int, at) -> None:
    """What the journeys would plan this tick: ~1/3 of users get a message per channel."""
    con.execute("""insert into send_ledger (message_key, journey_id, step_id, enrolment_id, user_id, channel,
                    template, priority, send_after, state, planned_at, updated_at)
        select md5($tick || '|' || user_id || '|' || c.channel), 'rel_' || c.channel, 'hello_' || c.channel,
               'sim-' || $tick, user_id, c.channel, 'hello', 100, $at, 'planned', $at, $at
        from customer_profile, (select unnest(['email', 'sms', 'push']) as channel) c
        where hash(user_id, c.channel, $tick) % 3 = 0""", {"tick": tick, "at": at})


def consent_changes(con: duckdb.DuckDBPyConnection, tick: int, at) -> None:
    """Between ticks: 2 % opt out of a channel, 1 % unsubscribe (email), 1 % bounce/dead token."""
    params = {"tick": tick, "at": at}
    con.execute("""insert into consent_changes
        select user_id, c.channel, $at from customer_profile, (select unnest(['email', 'sms', 'push']) as channel) c
        where hash(user_id, c.channel, $tick, 'optout') % 150 = 0""", params)
    for channel, column in (("email", "email_opt_in"), ("sms", "sms_opt_in"), ("push", "push_opt_in")):
        con.execute(f"""update customer_profile p set {column} = false from consent_changes c
            where c.user_id = p.user_id and c.channel = '{channel}' and c.changed_at = $at""", {"at": at})
    con.execute("""insert into suppression_list
        select case when k = 0 then 'email' when k = 1 then 'sms' else 'push' end,
               case when k = 0 then lower(email) when k = 1 then phone else push_token end, user_id,
               case when k = 0 then 'unsubscribe' when k = 1 then 'undelivered' else 'dead_token' end,
               'sim', $at
        from (select *, hash(user_id, $tick, 'supp') % 300 as k from customer_profile)
        where k < 3 on conflict do nothing""", params)


def violations(con: duckdb.DuckDBPyConnection, policies: Policies) -> dict[str, int]:
    con.execute("""create or replace temp table _sent as
        select l.*, p.timezone, case l.channel when 'email' then lower(p.email) when 'sms' then p.phone
               else p.push_token end as address
        from send_ledger l join customer_profile p using (user_id) where l.state = 'sent'""")
    out = {}
    out["after_opt_out"] = con.execute("""select count(*) from _sent s join consent_changes c
        on c.user_id = s.user_id and c.channel = s.channel where s.sent_at >= c.changed_at""").fetchone()[0]
    out["after_suppression"] = con.execute("""select count(*) from _sent s join suppression_list x
        on x.channel in (s.channel, 'all') and (x.address = s.address or x.user_id = s.user_id)
        where s.sent_at >= x.suppressed_at""").fetchone()[0]
    zones = "(select name from pg_timezone_names())"
    out["quiet_hours"] = con.execute(f"""select count(*) from (
        select cast(timezone(case when timezone in {zones} then timezone else 'UTC' end, sent_at) as time) as t
        from _sent) where t >= time '21:00' or t < time '08:00'""").fetchone()[0]
    over = 0
    for cap in policies.frequency_caps:
        same_channel = "" if cap.channel == "all" else "and b.channel = a.channel"
        only = "" if cap.channel == "all" else f"where a.channel = '{cap.channel}'"
        over += con.execute(f"""select count(*) from (
            select a.message_key, count(*) as n from _sent a join _sent b
              on b.user_id = a.user_id {same_channel}
             and b.sent_at > a.sent_at - to_seconds({cap.window.total_seconds()}) and b.sent_at <= a.sent_at
            {only} group by a.message_key) where n > {cap.max}""").fetchone()[0]
    out["caps_exceeded"] = over
    return out


def test_consent_caps_quiet_hours_hold_over_daily_ticks(tmp_path: Path) -> None:
    policies = Policies.model_validate({"quiet_hours": {"start": "21:00", "end": "08:00"}, "frequency_caps": [
        {"channel": "email", "max": 3, "window": "7d"}, {"channel": "sms", "max": 2, "window": "7d"},
        {"channel": "push", "max": 1, "window": "1d"}, {"channel": "all", "max": 5, "window": "7d"}]})
    channels = {c: CountingChannel(c, tmp_path) for c in CHANNELS}
    jmap = journeys()
    started = time.perf_counter()
    with duckdb.connect(str(tmp_path / "wh.duckdb")) as con:
        con.execute("set TimeZone = 'UTC'")
        create_population(con)
        for tick in range(TICKS):
            # ticks at shifting UTC hours, so every zone sees day and night ticks
            at = AS_OF + timedelta(days=tick, hours=(tick * 7) % 24)
            plan_tick(con, tick, at)
            dispatch(con, at, channels, jmap, policies)
            consent_changes(con, tick, at + timedelta(hours=1))
        found = violations(con, policies)
        states = dict(con.execute("select state, count(*) from send_ledger group by 1").fetchall())
    assert found == {"after_opt_out": 0, "after_suppression": 0, "quiet_hours": 0, "caps_exceeded": 0}, found
    # the run exercised every policy
    assert states["sent"] > USERS and states["suppressed"] > 0 and states["capped"] > 0, states
    print(f"consent sim: {USERS} users x {TICKS} ticks in {time.perf_counter() - started:.1f}s: {states}")


def test_dispatch_runs_after_delivery_events_so_new_suppressions_apply() -> None:
    """Bounces and unsubscribes loaded in a run reach suppression_list before that run dispatches."""
    import dagster as dg

    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    assert dg.AssetKey("delivery_events") in graph.get(dg.AssetKey("journey_dispatch")).parent_keys
