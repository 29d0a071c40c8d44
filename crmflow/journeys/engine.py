"""One journey tick, set-based: exits and goals, entrants, enrolment, step advancement, planning.

Everything is SQL over whole tables; Python loops only over the journey's steps. The same data,
config and as-of give the same result, and rerunning a tick adds nothing (deterministic keys,
insert-or-ignore, waits measured from the as-of at which a step was entered, or from the previous
message's ledger sent_at with `from: previous_send`). The SQL is portable: it runs unchanged on
DuckDB and PostgreSQL through the warehouse interface (hashes via crmflow.warehouse.dialect).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crmflow.audience import AUDIENCE_RELATIONS, Params, audience_sql, segments_sql
from crmflow.journeys.columns import profile_columns, require_tables, table_exists
from crmflow.journeys.durations import format_duration, sql_interval
from crmflow.journeys.filters import condition_sql
from crmflow.journeys.hashing import BUCKETS, bucket_sql, message_key_sql
from crmflow.journeys.schema import (
    AddTagStep,
    AssignBannerStep,
    BranchStep,
    CreateTaskStep,
    ExitStep,
    Journey,
    RemoveTagStep,
    SegmentTrigger,
    SendStep,
    WaitStep,
    WaitUntilStep,
)
from crmflow.journeys.sql import TZ_TABLE, ensure_tz_table, replace_temp_table
from crmflow.journeys.tables import ensure_journey_tables
from crmflow.journeys.triggers import entrants_sql, tables_for
from crmflow.warehouse import Warehouse, as_warehouse
from crmflow.warehouse.dialect import sha256_hex

# The previous message of each enrolment waiting at step $sid: the ledger rows it planned last (one
# send step, or several planned in the same tick). unsettled: one is still planned/sending (deferred
# by quiet hours, not dispatched yet); settled_at: when the last of them was sent (sent_at), or, for
# one that will never be sent (suppressed, capped, skipped, failed, unknown), when that was decided.
PREVIOUS_SEND_SQL = """
    select enrolment_id, unsettled, settled_at from (
        select l.enrolment_id, l.planned_at, bool_or(l.state in ('planned', 'sending')) as unsettled,
               max(case when l.state = 'sent' then l.sent_at else l.updated_at end) as settled_at,
               max(l.planned_at) over (partition by l.enrolment_id) as last_planned_at
        from send_ledger l
        where l.journey_id = $jid
          and l.enrolment_id in (select enrolment_id from journey_enrolments
                                 where journey_id = $jid and status = 'active' and current_step = $sid)
        group by l.enrolment_id, l.planned_at
    ) per_planning where planned_at = last_planned_at"""
# The next step of a move (a bound text parameter; typed so PostgreSQL knows it even when it is NULL).
NEXT = "cast($default_next as varchar)"
WEEKDAYS = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}
OPT_IN = {"email": "email_opt_in", "sms": "sms_opt_in", "push": "push_opt_in"}

# Enrolments that entered at an earlier tick than this one (over alias e).
BEFORE_THIS_TICK = "e.entered_at < $as_of"


@dataclass
class TickReport:
    journey_id: str
    as_of: datetime
    window_start: datetime | None = None
    entered: int = 0
    holdout: int = 0
    exited: dict[str, int] = field(default_factory=dict)
    converted: int = 0
    planned: int = 0
    too_old: int = 0  # trigger moments older than trigger.max_age: recorded as 'skipped', not entered
    moves: int = 0
    skipped_reason: str | None = None
    at_step: dict[str, int] = field(default_factory=dict)
    planned_by_variant: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # e.g. why nobody could enter

    def metadata(self) -> dict[str, Any]:
        return {
            "entered": self.entered, "holdout": self.holdout, "converted": self.converted,
            "exited": sum(self.exited.values()), "planned_messages": self.planned, "step_moves": self.moves,
            "active_by_step": dict(self.at_step), "planned_by_step_variant": dict(self.planned_by_variant),
            "exit_reasons": dict(self.exited), "too_old_triggers": self.too_old,
            "skipped": self.skipped_reason or "",
            "notes": "; ".join(self.notes),
        }


def config_hash(journey: Journey) -> str:
    return hashlib.sha256(journey.model_dump_json().encode()).hexdigest()[:16]


def required_tables(journey: Journey) -> list[str]:
    tables = {"customer_profile", *tables_for(journey.trigger)}
    if journey.audience.segments or journey.exit.left_segment:
        tables.add("customer_segments")
    if journey.audience.lifecycle_stages:
        tables.add("customer_lifecycle")
    if journey.audience.value_tiers or journey.audience.b2b_grades:
        tables.add("customer_value_tier")
    if journey.audience.tags:
        tables.add("customer_tags")
    if journey.goal is not None:
        tables.add("stg_shop__orders" if journey.goal.order_status else "events_stitched")
    for step in journey.steps:
        conds = []
        if isinstance(step, WaitUntilStep):
            conds.append(step.condition)
        if isinstance(step, BranchStep):
            conds += [c.when for c in step.cases]
        for cond in conds:
            if cond.event:
                tables.add("events_stitched")
            if cond.order:
                tables.add("stg_shop__orders")
            if cond.segment:
                tables.add("customer_segments")
    return sorted(tables)


class JourneyTick:
    """The SQL of one tick of one journey, on an open warehouse (no transaction control here).

    The journey tables must exist (`prepare_tick`, outside the tick's transaction)."""

    def __init__(self, wh: Warehouse, journey: Journey, as_of: datetime, default_timezone: str = "UTC"):
        self.wh = wh
        self.j = journey
        self.as_of = as_of
        self.columns = profile_columns(wh)
        self.base: dict[str, Any] = {"jid": journey.id, "as_of": as_of, "default_tz": default_timezone,
                                     "priority": journey.priority}
        self.report = TickReport(journey.id, as_of)

    # -- helpers -------------------------------------------------------------------------------
    def _params(self, prefix: str = "p") -> Params:
        return Params(values=dict(self.base), prefix=prefix)

    def _values(self, params: Params | dict[str, Any] | None) -> dict[str, Any]:
        return params.values if isinstance(params, Params) else {**self.base, **(params or {})}

    def _run(self, sql: str, params: Params | dict[str, Any] | None = None) -> None:
        self.wh.execute(sql, self._values(params))

    def _rows(self, sql: str, params: Params | dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return self.wh.fetch_rows(sql, self._values(params))

    def _scalar(self, sql: str, params: Params | dict[str, Any] | None = None) -> Any:
        return self.wh.scalar(sql, self._values(params))

    def _temp(self, name: str, select_sql: str, params: Params | dict[str, Any] | None = None) -> None:
        replace_temp_table(self.wh, name, select_sql, self._values(params))

    def _sha256(self, expr: str) -> str:
        return sha256_hex(expr, self.wh.dialect)

    def _decide(self, source_sql: str, decision: str, params: Params | dict[str, Any] | None = None) -> None:
        """Log decisions; source_sql selects user_id, enrolment_id, message_key, step_id, reason."""
        key = self._sha256(f"coalesce(src.message_key, src.enrolment_id) || '|{decision}|' || cast($as_of as varchar)")
        self._run(
            f"""insert into journey_decisions (decision_key, journey_id, user_id, enrolment_id, message_key,
                    step_id, decision, reason, decided_at)
                select {key}, $jid, src.user_id, src.enrolment_id, src.message_key, src.step_id, '{decision}',
                       src.reason, $as_of
                from ({source_sql}) as src on conflict do nothing""",
            params,
        )

    # -- the tick ------------------------------------------------------------------------------
    def run(self) -> TickReport:
        ensure_tz_table(self.wh)
        require_tables(self.wh, required_tables(self.j), f"journey {self.j.id}")
        last = self._scalar("select max(as_of) from journey_ticks where journey_id = $jid and as_of < $as_of")
        start = last if last is not None else self.as_of - self.j.trigger.lookback
        self.base["start"] = start
        self.report.window_start = start
        ledger_before = self._scalar("select count(*) from send_ledger where journey_id = $jid")
        self._exit_removed_steps()
        self._goals_and_exits()
        if self._accepting_entries():
            self._enrol()
        self._advance()
        self._summarise(ledger_before)
        return self.report

    def _accepting_entries(self) -> bool:
        day = self.as_of.date()
        if not self.j.enabled:
            self.report.skipped_reason = "disabled"
        elif self.j.start_date and day < self.j.start_date:
            self.report.skipped_reason = f"starts {self.j.start_date}"
        elif self.j.end_date and day > self.j.end_date:
            self.report.skipped_reason = f"ended {self.j.end_date}"
        return self.report.skipped_reason is None

    def _exit(self, where_sql: str, reason: str, params: Params | None = None) -> None:
        """Exit active enrolments matching `where_sql` (over alias e) with a reason."""
        params = params or self._params()
        params.values["reason"] = reason
        self._temp("_exits", f"""
                      select e.enrolment_id, e.user_id, e.current_step as step_id from journey_enrolments e
                      where e.journey_id = $jid and e.status = 'active' and ({where_sql})""", params)
        count = self._scalar("select count(*) from _exits")
        if not count:
            return
        self._run("""update journey_enrolments e set status = 'exited', exit_reason = $reason, exited_at = $as_of,
                     current_step = null, updated_at = $as_of from _exits x where e.enrolment_id = x.enrolment_id""",
                  params)
        self._decide("""select user_id, enrolment_id, cast(null as varchar) as message_key, step_id,
                                cast($reason as varchar) as reason from _exits""", "exited", params)
        self.report.exited[reason] = self.report.exited.get(reason, 0) + count

    def _exit_removed_steps(self) -> None:
        ids = [s.id for s in self.j.steps]
        params = self._params()
        self._exit(f"e.current_step not in {params.add_list(ids)}", "step_removed", params)

    def _goals_and_exits(self) -> None:
        # Goals and exits look at enrolments from earlier ticks only (BEFORE_THIS_TICK), as they always
        # did since they run before this tick's entries: a rerun of the same as-of then finds this tick's
        # entrants as the first run left them (tests/test_time_travel.py).
        goal = self.j.goal
        if goal is not None:
            params = self._params()
            window = sql_interval(goal.within)
            if goal.order_status:
                hits = f"""select e.enrolment_id, min(o.ordered_at) as at from journey_enrolments e
                    join stg_shop__orders o on o.user_id = e.user_id and o.status in {params.add_list(goal.order_status)}
                     and o.ordered_at > e.trigger_at and o.ordered_at <= least(e.trigger_at + {window}, $as_of)"""
            else:
                hits = f"""select e.enrolment_id, min(ev.event_at) as at from journey_enrolments e
                    join events_stitched ev on ev.user_id = e.user_id and ev.event_name = {params.add(goal.event)}
                     and ev.event_at > e.trigger_at and ev.event_at <= least(e.trigger_at + {window}, $as_of)"""
            self._temp("_goals", f"""{hits}
                where e.journey_id = $jid and e.status in ('active', 'holdout') and e.converted_at is null
                  and {BEFORE_THIS_TICK}
                group by e.enrolment_id""", params)
            self._run("""update journey_enrolments e set converted_at = g.at, updated_at = $as_of
                         from _goals g where e.enrolment_id = g.enrolment_id""")
            self.report.converted = self._scalar("select count(*) from _goals")
            self._decide("""select e.user_id, e.enrolment_id, cast(null as varchar) as message_key,
                            e.current_step as step_id, 'goal' as reason
                            from _goals g join journey_enrolments e on e.enrolment_id = g.enrolment_id""",
                         "converted")
            if self.j.exit.on_goal:
                self._exit("e.converted_at is not null", "goal")
        if self.j.exit.left_segment:
            params = self._params()
            segments = list(self.j.audience.segments)
            if isinstance(self.j.trigger, SegmentTrigger):
                segments.append(self.j.trigger)  # type: ignore[arg-type]
            self._exit(f"{BEFORE_THIS_TICK} and not ({segments_sql(segments, 'e.user_id', params)})", "left_segment",
                       params)
        if self.j.exit.unsubscribed:
            channels = sorted({s.channel for s in self.j.steps if isinstance(s, SendStep)} & OPT_IN.keys())
            # Uncorrelated sets (hashed once), not exists() per row: PostgreSQL runs a correlated
            # subquery under OR once per enrolment.
            opted_out = (
                "e.user_id in (select p.user_id from customer_profile p where p.user_id is not null and "
                + " and ".join(f"not coalesce(p.{OPT_IN[c]}, false)" for c in channels) + ")"
                if channels else "false"
            )
            self._exit(
                f"{BEFORE_THIS_TICK} and (e.user_id in (select sl.user_id from suppression_list sl "
                "where sl.user_id is not null "
                "and (sl.channel = 'all' or sl.reason in ('unsubscribe', 'group_unsubscribe', 'spamreport'))) "
                f"or {opted_out})",
                "unsubscribed",
            )

    def _enrol(self) -> None:
        params = self._params()
        entrants = entrants_sql(self.j.trigger, params)
        clusters_available = table_exists(self.wh, "customer_clusters")
        if self.j.audience.clusters and not clusters_available:
            self.report.notes.append("audience filters on clusters but customer_clusters does not exist yet "
                                     "(intelligence stage not run): nobody enters")
        elif self.j.audience.clusters and not self.wh.scalar("select exists (select 1 from customer_clusters)"):
            # migration 42 creates the table empty, so "not run yet" now shows as no rows
            self.report.notes.append("audience filters on clusters but customer_clusters is empty "
                                     "(intelligence stage not run yet): nobody enters")
        present = None if clusters_available else set(AUDIENCE_RELATIONS) - {"customer_clusters"}
        audience = audience_sql(self.j.audience, "p", self.columns, params, present)
        if self.j.reentry.mode == "once":
            blocked = "true"
        else:
            blocked = f"x.status = 'active' or x.entered_at > $as_of - {sql_interval(self.j.reentry.cooldown)}"  # type: ignore[arg-type]
        holdout_bp = int(round((self.j.holdout.percent if self.j.holdout else 0) * BUCKETS / 100))
        params.values["holdout_bp"] = holdout_bp
        params.values["first_step"] = self.j.steps[0].id
        max_age = self.j.trigger.max_age
        too_old = f"c.trigger_at < $as_of - {sql_interval(max_age)}" if max_age else "false"
        self._temp("_entrants", f"""
            with candidates as ({entrants})
            select c.user_id, c.entry_key, c.trigger_at,
                   substr({self._sha256("$jid || '|' || c.user_id || '|' || c.entry_key")}, 1, 32) as enrolment_id,
                   {bucket_sql(self.wh.dialect, '$jid', 'c.user_id')} < $holdout_bp as is_holdout,
                   {too_old} as too_old
            from candidates c join customer_profile p on p.user_id = c.user_id
            left join {TZ_TABLE} vtz on vtz.name = p.timezone
            where ({audience})
              and not exists (select 1 from journey_enrolments x where x.journey_id = $jid
                              and x.user_id = c.user_id and ({blocked}))""", params)
        if max_age:
            self._skip_too_old(format_duration(max_age))
        self._temp("_new", """
            select * from _entrants n
            where not n.too_old
              and not exists (select 1 from journey_enrolments x where x.enrolment_id = n.enrolment_id)""")
        self._run("""insert into journey_enrolments (enrolment_id, journey_id, user_id, entry_key, trigger_at,
                entered_at, is_holdout, status, current_step, step_entered_at, converted_at, exit_reason,
                exited_at, updated_at)
            select enrolment_id, $jid, user_id, entry_key, trigger_at, $as_of, is_holdout,
                   case when is_holdout then 'holdout' else 'active' end,
                   case when is_holdout then null else $first_step end,
                   case when is_holdout then null else $as_of end,
                   null, null, null, $as_of
            from _new on conflict do nothing""", params)
        self._decide("""select user_id, enrolment_id, cast(null as varchar) as message_key,
                        cast(null as varchar) as step_id,
                        case when is_holdout then 'holdout' else 'trigger' end as reason from _new""",
                     "entered")
        self.report.entered = self._scalar("select count(*) from _new")
        self.report.holdout = self._scalar("select count(*) from _new where is_holdout")
        if self.report.entered:
            # PostgreSQL: the steps' conditions join the journey's active enrolments to orders/events;
            # planned without statistics of the rows just entered, that was a nested loop rescanning
            # the orders per enrolment (157 s for one wait_until statement at 100k users; docs/benchmarks.md
            # "PostgreSQL fixes"). No-op on DuckDB; in the tick's transaction, so its rollback undoes it.
            self.wh.analyze("journey_enrolments")

    def _skip_too_old(self, max_age: str) -> None:
        """Record each entry that only its age kept out, once (the key has no as-of: event triggers
        see an event again on every tick of their lookback) as a 'skipped' decision."""
        inserted = self._rows(f"""insert into journey_decisions (decision_key, journey_id, user_id, enrolment_id,
                message_key, step_id, decision, reason, decided_at)
            select {self._sha256("enrolment_id || '|skipped|max_age'")}, $jid, user_id, null, null, null,
                   'skipped', $reason, $as_of
            from _entrants where too_old on conflict do nothing returning decision_key""",
            {"reason": f"trigger_older_than_max_age:{max_age}"})
        self.report.too_old = len(inserted)

    # -- steps -----------------------------------------------------------------------------------
    def _advance(self) -> None:
        index = self.j.step_index()
        for _ in range(len(self.j.steps) + 1):
            moved = 0
            for i, step in enumerate(self.j.steps):
                moved += self._process_step(i, step, index)
            self.report.moves += moved
            if moved == 0:
                break

    def _process_step(self, i: int, step: Any, index: dict[str, int]) -> int:
        params = self._params(prefix=f"s{i}_")
        params.values["sid"] = step.id
        following = self.j.following(i)
        default_next = step.next if getattr(step, "next", None) else following
        params.values["default_next"] = default_next
        at_step = "e.journey_id = $jid and e.status = 'active' and e.current_step = $sid"
        profile_join = f"left join customer_profile p on p.user_id = e.user_id left join {TZ_TABLE} vtz on vtz.name = p.timezone"
        reason_sql = "null"
        if isinstance(step, WaitStep):
            ready = ["true"]
            if step.duration is not None:
                since = "e.step_entered_at"
                if step.from_ == "previous_send":
                    profile_join += f" left join ({PREVIOUS_SEND_SQL}) prev on prev.enrolment_id = e.enrolment_id"
                    ready.append("not coalesce(prev.unsettled, false)")
                    since = "coalesce(prev.settled_at, e.step_entered_at)"
                ready.append(f"{since} + {sql_interval(step.duration)} <= $as_of")
            if step.until is not None:
                local = "cast(timezone(coalesce(vtz.name, $default_tz), $as_of) as timestamp)"
                start, end = params.add(step.until.start.strftime("%H:%M:%S")), params.add(step.until.end.strftime("%H:%M:%S"))
                t = f"cast({local} as time)"
                if step.until.start < step.until.end:
                    ready.append(f"{t} >= cast({start} as time) and {t} < cast({end} as time)")
                else:
                    ready.append(f"({t} >= cast({start} as time) or {t} < cast({end} as time))")
                if step.until.weekdays:
                    ready.append(f"extract(isodow from {local}) in {params.add_list([WEEKDAYS[d] for d in step.until.weekdays])}")
            moves = f"select e.enrolment_id, e.user_id, {NEXT} as next_step from journey_enrolments e {profile_join} where {at_step} and {' and '.join(ready)}"
        elif isinstance(step, WaitUntilStep):
            met = condition_sql(step.condition, "e", self.columns, params)
            params.values["timeout_next"] = step.timeout_next
            moves = f"""select e.enrolment_id, e.user_id,
                    case when {met} then {NEXT} else cast($timeout_next as varchar) end as next_step,
                    case when {met} then cast(null as varchar) else 'timeout' end as reason
                from journey_enrolments e where {at_step}
                  and (({met}) or e.step_entered_at + {sql_interval(step.timeout)} <= $as_of)"""
            reason_sql = "m.reason"
        elif isinstance(step, BranchStep):
            whens = " ".join(
                f"when {condition_sql(c.when, 'e', self.columns, params)} then {params.add(c.next)}" for c in step.cases
            )
            params.values["default_next"] = step.default or following
            moves = f"select e.enrolment_id, e.user_id, case {whens} else {NEXT} end as next_step from journey_enrolments e where {at_step}"
        elif isinstance(step, ExitStep):
            params.values["default_next"] = None
            params.values["exit_reason"] = step.reason
            moves = f"select e.enrolment_id, e.user_id, cast(null as varchar) as next_step, cast($exit_reason as varchar) as reason from journey_enrolments e where {at_step}"
            reason_sql = "m.reason"
        else:
            moves = f"select e.enrolment_id, e.user_id, {NEXT} as next_step from journey_enrolments e where {at_step}"
        self._temp("_moves", moves, params)
        count = self._scalar("select count(*) from _moves")
        if not count:
            return 0
        self._side_effects(step, params)
        self._run(f"""update journey_enrolments e set
                current_step = m.next_step,
                step_entered_at = $as_of,
                status = case when m.next_step is null then 'completed' else e.status end,
                exit_reason = case when m.next_step is null then coalesce({reason_sql}, 'end') else e.exit_reason end,
                exited_at = case when m.next_step is null then $as_of else e.exited_at end,
                updated_at = $as_of
            from _moves m where e.enrolment_id = m.enrolment_id""", params)
        return int(count)

    def _side_effects(self, step: Any, params: Params) -> None:
        if isinstance(step, SendStep):
            self._plan_send(step, params)
        elif isinstance(step, AssignBannerStep):
            params.values.update(slot=step.slot, creative=step.creative_id)
            self._run(f"""insert into journey_banner_overrides (user_id, slot, creative_id, journey_id, enrolment_id,
                    valid_from, valid_until)
                select user_id, $slot, $creative, $jid, enrolment_id, $as_of, $as_of + {sql_interval(step.valid_for)}
                from _moves on conflict do nothing""", params)
        elif isinstance(step, CreateTaskStep):
            params.values.update(queue=step.queue, rule=step.rule, task_priority=step.priority, note=step.note)
            self._run(f"""insert into journey_task_requests (request_key, user_id, journey_id, step_id, rule, queue,
                    priority, note, requested_at)
                select {self._sha256("$jid || '|' || enrolment_id || '|' || $sid")}, user_id, $jid, $sid, $rule,
                       $queue, $task_priority, $note, $as_of
                from _moves on conflict do nothing""", params)
        elif isinstance(step, AddTagStep):
            params.values["tag"] = step.tag
            self._run("""insert into journey_tags (user_id, tag, journey_id, added_at, removed_at)
                select distinct m.user_id, $tag, $jid, $as_of, cast(null as timestamptz) from _moves m
                where not exists (select 1 from journey_tags t where t.user_id = m.user_id and t.tag = $tag
                                  and t.journey_id = $jid and t.removed_at is null)""", params)
        elif isinstance(step, RemoveTagStep):
            # Only tags journeys added can be removed here; rule/manual tags belong to the tags mart.
            params.values["tag"] = step.tag
            self._run("""update journey_tags t set removed_at = $as_of
                where t.tag = $tag and t.removed_at is null and t.user_id in (select user_id from _moves)""", params)

    def _plan_send(self, step: SendStep, params: Params) -> None:
        if step.variants:
            total = sum(v.weight for v in step.variants)
            cases, cumulative = [], 0.0
            for v in step.variants:
                cumulative += v.weight
                threshold = int(round(cumulative / total * BUCKETS))
                cases.append((threshold, v.name, v.template))
            bucket = bucket_sql(self.wh.dialect, "$jid", "$sid", "m.user_id")
            variant = "case " + " ".join(f"when {bucket} < {t} then {params.add(n)}" for t, n, _ in cases[:-1])
            variant += f" else {params.add(cases[-1][1])} end"
            template_of = "case v.variant " + " ".join(
                f"when {params.add(n)} then {params.add(tpl)}" for _, n, tpl in cases
            ) + " end"
        else:
            variant = "cast(null as varchar)"
            template_of = params.add(step.template)
        params.values["channel"] = step.channel
        self._run(f"""insert into send_ledger (message_key, journey_id, step_id, enrolment_id, user_id, channel,
                variant, template, priority, content_ref, send_after, state, reason, attempts,
                provider_message_id, error, planned_at, sent_at, updated_at)
            with v as (select m.enrolment_id, m.user_id, {variant} as variant from _moves m)
            select {message_key_sql(self.wh.dialect, '$jid', 'v.enrolment_id', '$sid', 'v.variant')}, $jid, $sid, v.enrolment_id,
                   v.user_id, $channel, v.variant, {template_of}, $priority, null, $as_of, 'planned', null, 0,
                   null, null, $as_of, null, $as_of
            from v on conflict do nothing""", params)

    def _summarise(self, ledger_before: int) -> None:
        rows = self._rows("""select current_step, count(*) from journey_enrolments
                             where journey_id = $jid and status = 'active' group by current_step""")
        self.report.at_step = {str(k): int(v) for k, v in rows}
        rows = self._rows("""select step_id || coalesce('/' || variant, '') as step_variant, count(*) from send_ledger
                             where journey_id = $jid and planned_at = $as_of group by step_variant order by step_variant""")
        self.report.planned_by_variant = {str(k): int(v) for k, v in rows}
        self.report.planned = self._scalar("select count(*) from send_ledger where journey_id = $jid") - ledger_before
        active = sum(self.report.at_step.values())
        # The tick's row says what the tick at this as-of did, read from the state it left (not this
        # run's counts): a rerun of the same as-of, which changes nothing, writes the same row.
        self._run("""insert into journey_ticks (journey_id, as_of, config_hash, entered, holdout, exited, planned, active)
                     select tick.tick_journey, tick.tick_as_of, cast($hash as varchar),
                         (select count(*) from journey_enrolments where journey_id = tick.tick_journey and entered_at = tick.tick_as_of),
                         (select count(*) from journey_enrolments where journey_id = tick.tick_journey and entered_at = tick.tick_as_of
                          and is_holdout),
                         (select count(*) from journey_enrolments where journey_id = tick.tick_journey and exited_at = tick.tick_as_of
                          and status = 'exited'),  -- not 'completed' (the end of the journey)
                         (select count(*) from send_ledger where journey_id = tick.tick_journey and planned_at = tick.tick_as_of),
                         cast($active as bigint)
                     from (select cast($jid as varchar) as tick_journey, cast($as_of as timestamptz) as tick_as_of) as tick
                     on conflict (journey_id, as_of) do update set config_hash = excluded.config_hash,
                         entered = excluded.entered, holdout = excluded.holdout, exited = excluded.exited,
                         planned = excluded.planned, active = excluded.active""",
                  {"hash": config_hash(self.j), "active": active})


def prepare_tick(con: Warehouse | Any) -> Warehouse:
    """The warehouse for a tick (a Warehouse or a raw DuckDB connection), with every table migrated.

    Outside the tick's transaction: migrations run in transactions of their own, which do not nest."""
    wh = as_warehouse(con)
    ensure_journey_tables(wh)
    return wh


def run_tick(con: Warehouse | Any, journey: Journey, as_of: datetime, default_timezone: str = "UTC") -> TickReport:
    """Run one tick of one journey in its own transaction: all of it or none of it."""
    wh = prepare_tick(con)
    with wh.transaction():
        report = JourneyTick(wh, journey, as_of, default_timezone).run()
    return report
