"""Policies applied to every planned message before dispatch, set-based over send_ledger.

Order: missing profile/consent/suppression -> suppressed; missing address -> skipped; quiet hours in
the user's own zone -> deferred (send_after moves to the next allowed local time, never dropped);
frequency caps (global per channel, then per journey) -> capped, higher journey priority first.
Every decision is a journey_decisions row with a reason; the ledger row carries state and reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb

from crmflow.journeys.durations import format_duration, sql_interval
from crmflow.journeys.policy_config import Policies
from crmflow.journeys.schema import Journey
from crmflow.journeys.sql import TZ_TABLE, ensure_tz_table, run

ADDRESS_SQL = """case l.channel
    when 'email' then lower(trim(p.email))
    when 'sms' then p.phone
    when 'push' then p.push_token
    when 'webhook' then l.user_id end"""
CONSENT_SQL = """case l.channel
    when 'email' then coalesce(p.email_opt_in, false)
    when 'sms' then coalesce(p.sms_opt_in, false)
    when 'push' then coalesce(p.push_opt_in, false)
    else true end"""
# A message counts against a cap once it may have reached the user.
COUNTED_STATES = "('sending', 'sent', 'unknown')"


@dataclass
class PolicyReport:
    decisions: dict[str, int] = field(default_factory=dict)


def _record(con: duckdb.DuckDBPyConnection, as_of: datetime, report: PolicyReport) -> None:
    """Apply the decisions in temp table _decisions(message_key, decision, reason, send_after)."""
    params = {"as_of": as_of}
    run(con, """update send_ledger l set
            state = case d.decision when 'deferred' then l.state else d.decision end,
            send_after = coalesce(d.send_after, l.send_after),
            reason = d.reason, updated_at = $as_of
        from _decisions d where l.message_key = d.message_key""", params)
    run(con, """insert into journey_decisions
        select sha256(l.message_key || '|' || d.decision || '|' || cast($as_of as varchar)), l.journey_id, l.user_id,
               l.enrolment_id, l.message_key, l.step_id, d.decision, d.reason, $as_of
        from _decisions d join send_ledger l using (message_key) on conflict do nothing""", params)
    for decision, count in con.execute("select decision, count(*) from _decisions group by 1").fetchall():
        report.decisions[decision] = report.decisions.get(decision, 0) + int(count)


def apply_policies(con: duckdb.DuckDBPyConnection, as_of: datetime, policies: Policies,
                   journeys: Mapping[str, Journey]) -> PolicyReport:
    ensure_tz_table(con)
    report = PolicyReport()
    params: dict[str, Any] = {"as_of": as_of, "default_tz": policies.default_timezone}
    # 1. consent, suppression, address: for every planned row (consent can change while deferred).
    run(con, f"""create or replace temp table _planned as
        select l.message_key, l.user_id, l.channel, l.send_after, p.user_id is not null as has_profile,
               {ADDRESS_SQL} as address, {CONSENT_SQL} as consent, coalesce(vtz.name, $default_tz) as tz
        from send_ledger l left join customer_profile p on p.user_id = l.user_id
        left join {TZ_TABLE} vtz on vtz.name = p.timezone
        where l.state = 'planned'""", params)
    # Suppression hits by address and by user as two equi-joins (an OR in one join condition is a
    # nested loop: planned rows x suppression_list, quadratic as both grow).
    run(con, """create or replace temp table _decisions as
        with hits as (
            select pl.message_key, sl.reason from _planned pl join suppression_list sl
                on sl.address = pl.address and sl.channel in (pl.channel, 'all')
            union all
            select pl.message_key, sl.reason from _planned pl join suppression_list sl
                on sl.user_id = pl.user_id and sl.channel in (pl.channel, 'all')
        ),
        suppressed as (select message_key, min(reason) as reason from hits group by message_key)
        select message_key,
               case when not has_profile then 'skipped'
                    when not consent then 'suppressed'
                    when s.reason is not null then 'suppressed'
                    else 'skipped' end as decision,
               case when not has_profile then 'no_profile'
                    when not consent then 'no_consent:' || channel || '_opt_in'
                    when s.reason is not null then 'suppression_list:' || s.reason
                    else 'no_address:' || channel end as reason,
               cast(null as timestamptz) as send_after
        from _planned pl left join suppressed s using (message_key)
        where not has_profile or not consent or s.reason is not null
           or pl.address is null or trim(pl.address) = ''""", params)
    _record(con, as_of, report)
    _quiet_hours(con, as_of, policies, report, params)
    _caps(con, as_of, policies, journeys, report)
    return report


def _quiet_hours(con: duckdb.DuckDBPyConnection, as_of: datetime, policies: Policies, report: PolicyReport,
                 params: dict[str, Any]) -> None:
    quiet = policies.quiet_hours
    if not quiet.channels:
        return
    p = {**params, "qs": quiet.start.strftime("%H:%M:%S"), "qe": quiet.end.strftime("%H:%M:%S"),
         "channels": list(quiet.channels)}
    t = "cast(local_at as time)"
    if quiet.start > quiet.end:  # wraps midnight, e.g. 21:00-08:00
        in_quiet = f"({t} >= cast($qs as time) or {t} < cast($qe as time))"
        next_open = (f"case when {t} >= cast($qs as time) then cast(local_at as date) + 1 "
                     f"else cast(local_at as date) end + cast($qe as time)")
    else:
        in_quiet = f"({t} >= cast($qs as time) and {t} < cast($qe as time))"
        next_open = "cast(local_at as date) + cast($qe as time)"
    run(con, f"""create or replace temp table _decisions as
        with due as (
            select pl.message_key, pl.tz, greatest(pl.send_after, $as_of) as eff,
                   cast(timezone(pl.tz, greatest(pl.send_after, $as_of)) as timestamp) as local_at
            from _planned pl join send_ledger l using (message_key)
            where l.state = 'planned' and pl.channel in (select unnest($channels))
        )
        select message_key, 'deferred' as decision,
               'quiet_hours:' || strftime(local_at, '%H:%M') || ' local (' || tz || ')' as reason,
               timezone(tz, {next_open}) as send_after
        from due where {in_quiet}""", p)
    # Deferring is idempotent: a row already moved to the window's end is not in quiet hours.
    _record(con, as_of, report)


def _caps(con: duckdb.DuckDBPyConnection, as_of: datetime, policies: Policies, journeys: Mapping[str, Journey],
          report: PolicyReport) -> None:
    params = {"as_of": as_of}
    for cap in policies.frequency_caps:
        channel_filter = "" if cap.channel == "all" else "and l.channel = $channel"
        partition = "l.user_id" if cap.channel == "all" else "l.user_id, l.channel"
        p = {**params, "channel": cap.channel, "max": cap.max,
             "reason": f"cap:{cap.channel}:{cap.max}/{format_duration(cap.window)}"}
        _apply_cap(con, as_of, report, p, channel_filter, partition, sql_interval(cap.window))
    for journey in journeys.values():
        if journey.frequency_cap is None:
            continue
        cap = journey.frequency_cap
        p = {**params, "jid": journey.id, "max": cap.max,
             "reason": f"journey_cap:{journey.id}:{cap.max}/{format_duration(cap.window)}"}
        _apply_cap(con, as_of, report, p, "and l.journey_id = $jid", "l.user_id", sql_interval(cap.window))


def _apply_cap(con: duckdb.DuckDBPyConnection, as_of: datetime, report: PolicyReport, p: dict[str, Any],
               row_filter: str, partition: str, window: str) -> None:
    sent_filter = row_filter.replace("l.", "s.")
    sent_partition = partition.replace("l.", "s.")
    run(con, f"""create or replace temp table _decisions as
        with due as (
            select l.message_key, l.user_id, l.channel,
                   row_number() over (partition by {partition}
                                      order by l.priority desc, l.send_after, l.planned_at, l.message_key) as rank
            from send_ledger l
            where l.state = 'planned' and l.send_after <= $as_of {row_filter}
        ),
        already as (
            select {sent_partition}, count(*) as n from send_ledger s
            where s.state in {COUNTED_STATES} and coalesce(s.sent_at, s.updated_at) > $as_of - {window}
              {sent_filter}
            group by all
        )
        select d.message_key, 'capped' as decision, $reason as reason, cast(null as timestamptz) as send_after
        from due d left join already a on a.user_id = d.user_id
            {"and a.channel = d.channel" if "channel" in partition else ""}
        where coalesce(a.n, 0) + d.rank > $max""", p)
    _record(con, as_of, report)

