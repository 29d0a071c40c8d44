"""Semantic checks pydantic cannot do alone: references between steps, templates and channels,
profile columns in filters, templates that render against a sample profile, loops without a wait."""

from __future__ import annotations

from crmflow.audience import audience_problems, filter_problems
from crmflow.journeys.durations import format_duration
from crmflow.journeys.refs import ConfigRefs
from crmflow.journeys.schema import (
    AddTagStep,
    AssignBannerStep,
    BranchStep,
    Condition,
    CreateTaskStep,
    EventTrigger,
    Journey,
    SegmentTrigger,
    SendStep,
    WaitStep,
    WaitUntilStep,
)
from crmflow.journeys.templates import check_template

Loc = tuple[str | int, ...]


def _condition_errors(cond: Condition, loc: Loc, journey: Journey, columns: dict[str, str]) -> list[tuple[Loc, str]]:
    errors: list[tuple[Loc, str]] = []
    if cond.profile is not None:
        errors += filter_problems(cond.profile, (*loc, "profile"), columns)
    if cond.engagement is not None:
        target = next((s for s in journey.steps if s.id == cond.engagement.step), None)
        if not isinstance(target, SendStep):
            errors.append(((*loc, "engagement", "step"),
                           f"engagement step {cond.engagement.step!r} is not a send step of this journey"))
    return errors


def _max_age_errors(journey: Journey) -> list[tuple[Loc, str]]:
    """An event-without trigger enters `without.within` after the event: a max_age no longer than
    that admits nobody."""
    trigger = journey.trigger
    if isinstance(trigger, EventTrigger) and trigger.max_age is not None and trigger.without is not None \
            and trigger.max_age <= trigger.without.within:
        return [(("trigger", "max_age"), f"max_age ({format_duration(trigger.max_age)}) must be longer than "
                 f"without.within ({format_duration(trigger.without.within)}): the entry comes that long "
                 "after the event")]
    return []


def _targets(step: object) -> list[tuple[str, str | None]]:
    """(attribute, step id) pairs a step may jump to."""
    out: list[tuple[str, str | None]] = [("next", getattr(step, "next", None))]
    if isinstance(step, WaitUntilStep):
        out.append(("timeout_next", step.timeout_next))
    if isinstance(step, BranchStep):
        out.append(("default", step.default))
    return out


def semantic_errors(journey: Journey, file_key: str, columns: dict[str, str],
                    max_sms_segments: int) -> list[tuple[Loc, str]]:
    errors: list[tuple[Loc, str]] = []
    if journey.id != file_key:
        errors.append((("id",), f"journey id {journey.id!r} must match the file name {file_key!r}"))
    ids: dict[str, int] = {}
    for i, step in enumerate(journey.steps):
        if step.id in ids:
            errors.append((("steps", i, "id"), f"duplicate step id {step.id!r} (first at steps[{ids[step.id]}])"))
        ids.setdefault(step.id, i)
    for i, step in enumerate(journey.steps):
        for attr, target in _targets(step):
            if target is not None and target not in ids:
                errors.append((("steps", i, attr), f"{attr} points to unknown step {target!r}"))
        if isinstance(step, BranchStep):
            for c, case in enumerate(step.cases):
                if case.next not in ids:
                    errors.append((("steps", i, "cases", c, "next"), f"next points to unknown step {case.next!r}"))
                errors += _condition_errors(case.when, ("steps", i, "cases", c, "when"), journey, columns)
        if isinstance(step, WaitUntilStep):
            errors += _condition_errors(step.condition, ("steps", i, "condition"), journey, columns)
        if isinstance(step, WaitStep) and step.from_ == "previous_send" \
                and not any(isinstance(s, SendStep) for s in journey.steps):
            errors.append((("steps", i, "from"), "'from: previous_send' needs a send step in this journey"))
        if isinstance(step, SendStep):
            names = [step.template] if step.template else [v.template for v in step.variants or []]
            for n, name in enumerate(names):
                loc: Loc = ("steps", i, "template") if step.template else ("steps", i, "variants", n, "template")
                template = journey.templates.get(name or "")
                if template is None:
                    errors.append((loc, f"unknown template {name!r}; define it under templates:"))
                elif template.channel != step.channel:
                    errors.append((loc, f"template {name!r} is for {template.channel}, step sends {step.channel}"))
    errors += audience_problems(journey.audience, ("audience",), columns)
    errors += _max_age_errors(journey)
    if journey.exit.left_segment and not (isinstance(journey.trigger, SegmentTrigger) or journey.audience.segments):
        errors.append((("exit", "left_segment"), "left_segment needs a segment trigger or audience segments"))
    for name, template in journey.templates.items():
        for where, message in check_template(template, columns, max_sms_segments):
            locale, field_name = where.split(".", 1)
            errors.append((("templates", name, "locales", locale, field_name), message))
    errors += _instant_loops(journey, ids)
    return errors


def _instant_loops(journey: Journey, ids: dict[str, int]) -> list[tuple[Loc, str]]:
    """A cycle of steps that never waits would spin within one tick: reject it."""
    graph: dict[str, list[str]] = {}
    for i, step in enumerate(journey.steps):
        if isinstance(step, WaitStep | WaitUntilStep):
            graph[step.id] = []  # waiting breaks the cycle
            continue
        nexts = [t for _, t in _targets(step) if t]
        if isinstance(step, BranchStep):
            nexts += [c.next for c in step.cases]
            if step.default is None and journey.following(i):
                nexts.append(journey.following(i))  # type: ignore[arg-type]
        elif step.next is None and step.__class__.__name__ != "ExitStep" and journey.following(i):
            nexts.append(journey.following(i))  # type: ignore[arg-type]
        graph[step.id] = [n for n in nexts if n in ids]
    state: dict[str, int] = {}
    errors: list[tuple[Loc, str]] = []

    def visit(node: str) -> bool:
        state[node] = 1
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1 or (state.get(nxt) is None and visit(nxt)):
                return True
        state[node] = 2
        return False

    for step_id in graph:
        if state.get(step_id) is None and visit(step_id):
            errors.append((("steps", ids[step_id], "id"), f"steps loop back to {step_id!r} without a wait"))
            break
    return errors


# ---------------------------------------------------------------------------------------------
# References to other config (segments, tags, order statuses, banners, task queues/rules)
# ---------------------------------------------------------------------------------------------
def _segment_errors(family: str | None, segment: str, loc: Loc, refs: ConfigRefs) -> list[tuple[Loc, str]]:
    if not refs.segments:
        return []  # no seed to check against
    if family is None:  # a bare segment name: any family
        if not any(refs.segment_known(f, segment) for f in refs.segments):
            return [((*loc, "segment"), f"unknown segment {segment!r} in any family; known: "
                     f"{', '.join(f'{f}:{s}' for f in sorted(refs.segments) for s in refs.family_segments(f))}")]
        return []
    if family not in refs.segments:
        return [((*loc, "family"), f"unknown segment family {family!r}; known families: "
                 f"{', '.join(sorted(refs.segments))} (dbt seed segment_definitions.csv)")]
    if not refs.segment_known(family, segment):
        return [((*loc, "segment"), f"unknown segment {segment!r} in family {family!r}; known: "
                 f"{', '.join(refs.family_segments(family))}")]
    return []


def _order_status_errors(statuses: list[str], loc: Loc, refs: ConfigRefs) -> list[tuple[Loc, str]]:
    return [((*loc, i), f"unknown order status {s!r}; known: {', '.join(sorted(refs.order_statuses))}")
            for i, s in enumerate(statuses) if s not in refs.order_statuses]


def _conditions(journey: Journey) -> list[tuple[Loc, Condition]]:
    out: list[tuple[Loc, Condition]] = []
    for i, step in enumerate(journey.steps):
        if isinstance(step, WaitUntilStep):
            out.append((("steps", i, "condition"), step.condition))
        if isinstance(step, BranchStep):
            out += [(("steps", i, "cases", c, "when"), case.when) for c, case in enumerate(step.cases)]
    return out


def _step_reference_errors(journey: Journey, refs: ConfigRefs) -> list[tuple[Loc, str]]:
    errors: list[tuple[Loc, str]] = []
    for i, step in enumerate(journey.steps):
        if isinstance(step, AssignBannerStep) and refs.banner_slots is not None:
            creatives = refs.banner_creatives or {}
            if step.slot not in refs.banner_slots:
                errors.append((("steps", i, "slot"), f"unknown banner slot {step.slot!r}; banners.yaml slots: "
                               f"{', '.join(sorted(refs.banner_slots))}"))
            elif step.creative_id not in creatives:
                errors.append((("steps", i, "creative_id"), f"unknown creative {step.creative_id!r}; "
                               f"slot {step.slot!r} has: {', '.join(sorted(refs.banner_slots[step.slot]))}"))
            elif creatives[step.creative_id] != step.slot:
                errors.append((("steps", i, "creative_id"), f"creative {step.creative_id!r} belongs to slot "
                               f"{creatives[step.creative_id]!r}, not {step.slot!r}"))
        if isinstance(step, CreateTaskStep):
            if refs.task_queues is not None and step.queue not in refs.task_queues:
                errors.append((("steps", i, "queue"), f"unknown task queue {step.queue!r}; task_rules.yaml "
                               f"journey_queues: {', '.join(sorted(refs.task_queues))}"))
            if refs.task_rules is not None and step.rule is not None and step.rule not in refs.task_rules:
                errors.append((("steps", i, "rule"), f"unknown task rule {step.rule!r}; task_rules.yaml rules: "
                               f"{', '.join(sorted(refs.task_rules))} (or leave rule out)"))
    return errors


def reference_problems(journey: Journey, refs: ConfigRefs) -> tuple[list[tuple[Loc, str]], list[tuple[Loc, str]]]:
    """(errors, warnings) for names that must exist in other config. Lifecycle stages, value tiers and
    grades are closed lists checked by the schema itself. Tags only warn: manual tags (CSV upload) can
    be any lower_snake_case name, so a tag that no rule and no add_tag step defines may still exist."""
    errors: list[tuple[Loc, str]] = []
    warnings: list[tuple[Loc, str]] = []
    if isinstance(journey.trigger, SegmentTrigger):
        errors += _segment_errors(journey.trigger.family, journey.trigger.segment, ("trigger",), refs)
    for i, ref in enumerate(journey.audience.segments):
        errors += _segment_errors(ref.family, ref.segment, ("audience", "segments", i), refs)
    for loc, cond in _conditions(journey):
        if cond.segment is not None:
            errors += _segment_errors(cond.segment.family, cond.segment.segment, (*loc, "segment"), refs)
        if cond.order is not None:
            errors += _order_status_errors(cond.order.status, (*loc, "order", "status"), refs)
    if journey.goal is not None and journey.goal.order_status is not None:
        errors += _order_status_errors(journey.goal.order_status, ("goal", "order_status"), refs)
    errors += _step_reference_errors(journey, refs)
    if refs.rule_tags is not None and journey.audience.tags is not None:
        added = {s.tag for s in journey.steps if isinstance(s, AddTagStep)}
        for kind in ("any", "all", "none"):
            for i, tag in enumerate(getattr(journey.audience.tags, kind)):
                if tag not in refs.rule_tags and tag not in added:
                    warnings.append((("audience", "tags", kind, i),
                                     f"tag {tag!r} is not a rule tag in tags.yaml nor added by this journey; "
                                     "fine if it is a manual tag or added by another journey"))
    return errors, warnings
