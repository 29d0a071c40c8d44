"""Policies applied to every planned message before dispatch, set-based over send_ledger.

Order: missing profile/consent/suppression -> suppressed; missing address -> skipped; quiet hours in
the user's own zone -> deferred (send_after moves to the next allowed local time, never dropped);
frequency caps (global per channel, then per journey) -> capped, higher journey priority first.
Every decision is a journey_decisions row with a reason; the ledger row carries state and reason.
Portable SQL on the warehouse interface (DuckDB and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crmflow.journeys.durations import format_duration, sql_interval
from crmflow.journeys.policy_config import Policies
from crmflow.journeys.schema import Journey
from crmflow.journeys.sql import TZ_TABLE, ensure_tz_table, replace_temp_table
from crmflow.warehouse import Warehouse, as_warehouse
from crmflow.warehouse.dialect import sha256_hex

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


def _record(wh: Warehouse, as_of: datetime, report: PolicyReport) -> None:
    """Apply the decisions in temp table _decisions(message_key, decision, reason, send_after)."""
    params = {"as_of": as_of}
    wh.execute("""update send_ledger l set
            state = case d.decision when 'deferred' then l.state else d.decision end,
            send_after = coalesce(d.send_after, l.send_after),
            reason = d.reason, updated_at = $as_of
        from _decisions d where l.message_key = d.message_key""", params)
    key = sha256_hex("l.message_key || '|' || d.decision || '|' || cast($as_of as varchar)", wh.dialect)
    wh.execute(f"""insert into journey_decisions (decision_key, journey_id, user_id, enrolment_id, message_key,
            step_id, decision, reason, decided_at)
        select {key}, l.journey_id, l.user_id, l.enrolment_id, l.message_key, l.step_id, d.decision, d.reason, $as_of
        from _decisions d join send_ledger l on l.message_key = d.message_key on conflict do nothing""", params)
    for decision, count in wh.fetch_rows("select decision, count(*) from _decisions group by decision"):
        report.decisions[decision] = report.decisions.get(decision, 0) + int(count)


def apply_policies(con: Warehouse | Any, as_of: datetime, policies: Policies,
                   journeys: Mapping[str, Journey]) -> PolicyReport:
    """Decide every planned row (a Warehouse, or a raw DuckDB connection from a caller not yet ported)."""
    wh = as_warehouse(con)
    ensure_tz_table(wh)
    report = PolicyReport()
    params: dict[str, Any] = {"as_of": as_of, "default_tz": policies.default_timezone}
    # 1. consent, suppression, address: for every planned row (consent can change while deferred).
    replace_temp_table(wh, "_planned", f"""
        select l.message_key, l.user_id, l.channel, l.send_after, p.user_id is not null as has_profile,
               {ADDRESS_SQL} as address, {CONSENT_SQL} as consent, coalesce(vtz.name, $default_tz) as tz
        from send_ledger l left join customer_profile p on p.user_id = l.user_id
        left join {TZ_TABLE} vtz on vtz.name = p.timezone
        where l.state = 'planned'""", params)
    # Suppression hits by address and by user as two equi-joins (an OR in one join condition is a
    # nested loop: planned rows x suppression_list, quadratic as both grow).
    replace_temp_table(wh, "_decisions", """
        with hits as (
            select pl.message_key, sl.reason from _planned pl join suppression_list sl
                on sl.address = pl.address and sl.channel in (pl.channel, 'all')
            union all
            select pl.message_key, sl.reason from _planned pl join suppression_list sl
                on sl.user_id = pl.user_id and sl.channel in (pl.channel, 'all')
        ),
        suppressed as (select message_key, min(reason) as reason from hits group by message_key)
        select pl.message_key,
               case when not has_profile then 'skipped'
                    when not consent then 'suppressed'
                    when s.reason is not null then 'suppressed'
                    else 'skipped' end as decision,
               case when not has_profile then 'no_profile'
                    when not consent then 'no_consent:' || channel || '_opt_in'
                    when s.reason is not null then 'suppression_list:' || s.reason
                    else 'no_address:' || channel end as reason,
               cast(null as timestamptz) as send_after
        from _planned pl left join suppressed s on s.message_key = pl.message_key
        where not has_profile or not consent or s.reason is not null
           or pl.address is null or trim(pl.address) = ''""", params)
    _record(wh, as_of, report)
    _quiet_hours(wh, as_of, policies, report, params)
    _caps(wh, as_of, policies, journeys, report)
    return report


def _quiet_hours(wh: Warehouse, as_of: datetime, policies: Policies, report: PolicyReport,
                 params: dict[str, Any]) -> None:
    quiet = policies.quiet_hours
    if not quiet.channels:
        return
    p = {**params, "qs": quiet.start.strftime("%H:%M:%S"), "qe": quiet.end.strftime("%H:%M:%S")}
    channels = ", ".join(f"$channel{i}" for i in range(len(quiet.channels)))
    p.update({f"channel{i}": channel for i, channel in enumerate(quiet.channels)})
    t = "cast(local_at as time)"
    if quiet.start > quiet.end:  # wraps midnight, e.g. 21:00-08:00
        in_quiet = f"({t} >= cast($qs as time) or {t} < cast($qe as time))"
        next_open = (f"case when {t} >= cast($qs as time) then cast(local_at as date) + 1 "
                     f"else cast(local_at as date) end + cast($qe as time)")
    else:
        in_quiet = f"({t} >= cast($qs as time) and {t} < cast($qe as time))"
        next_open = "cast(local_at as date) + cast($qe as time)"
    replace_temp_table(wh, "_decisions", f"""
        with due as (
            select pl.message_key, pl.tz, greatest(pl.send_after, $as_of) as eff,
                   cast(timezone(pl.tz, greatest(pl.send_after, $as_of)) as timestamp) as local_at
            from _planned pl join send_ledger l on l.message_key = pl.message_key
            where l.state = 'planned' and pl.channel in ({channels})
        )
        select message_key, 'deferred' as decision,
               'quiet_hours:' || substr(cast(cast(local_at as time) as varchar), 1, 5) || ' local (' || tz || ')'
                   as reason,
               timezone(tz, {next_open}) as send_after
        from due where {in_quiet}""", p)
    # Deferring is idempotent: a row already moved to the window's end is not in quiet hours.
    _record(wh, as_of, report)


def _caps(wh: Warehouse, as_of: datetime, policies: Policies, journeys: Mapping[str, Journey],
          report: PolicyReport) -> None:
    params = {"as_of": as_of}
    for cap in policies.frequency_caps:
        channel_filter = "" if cap.channel == "all" else "and l.channel = $channel"
        partition = "l.user_id" if cap.channel == "all" else "l.user_id, l.channel"
        p = {**params, "channel": cap.channel, "max": cap.max,
             "reason": f"cap:{cap.channel}:{cap.max}/{format_duration(cap.window)}"}
        _apply_cap(wh, as_of, report, p, channel_filter, partition, sql_interval(cap.window))
    for journey in journeys.values():
        if journey.frequency_cap is None:
            continue
        cap = journey.frequency_cap
        p = {**params, "jid": journey.id, "max": cap.max,
             "reason": f"journey_cap:{journey.id}:{cap.max}/{format_duration(cap.window)}"}
        _apply_cap(wh, as_of, report, p, "and l.journey_id = $jid", "l.user_id", sql_interval(cap.window))


def _apply_cap(wh: Warehouse, as_of: datetime, report: PolicyReport, p: dict[str, Any],
               row_filter: str, partition: str, window: str) -> None:
    sent_filter = row_filter.replace("l.", "s.")
    sent_partition = partition.replace("l.", "s.")
    replace_temp_table(wh, "_decisions", f"""
        with due as (
            select l.message_key, l.user_id, l.channel,
                   row_number() over (partition by {partition}
                                      order by l.priority desc nulls last, l.send_after nulls last,
                                               l.planned_at nulls last, l.message_key nulls last) as rank
            from send_ledger l
            where l.state = 'planned' and l.send_after <= $as_of {row_filter}
        ),
        already as (
            select {sent_partition}, count(*) as n from send_ledger s
            where s.state in {COUNTED_STATES} and coalesce(s.sent_at, s.updated_at) > $as_of - {window}
              {sent_filter}
            group by {sent_partition}
        )
        select d.message_key, 'capped' as decision, cast($reason as varchar) as reason,
               cast(null as timestamptz) as send_after
        from due d left join already a on a.user_id = d.user_id
            {"and a.channel = d.channel" if "channel" in partition else ""}
        where coalesce(a.n, 0) + d.rank > $max""", p)
    _record(wh, as_of, report)

