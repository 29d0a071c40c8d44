"""A picture of a journey: an SVG diagram (entry, holdout, steps, branches, waits, exits) with counts
per step from the last run, alone or in a small self-contained HTML page (no scripts, no network).

Steps sit in a column in file order; the arrow to the following step goes straight down, every
other route (branch cases, `next:` jumps, wait_until timeouts) is a labelled curve on the right.
`journey_counts` reads the counts from the operational store (read-only).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from crmflow.journeys import schema as js
from crmflow.journeys.durations import format_duration
from crmflow.journeys.schema import Journey
from crmflow.warehouse import Warehouse

END = "(end)"
BOX_W, BOX_H, ROW, TOP, LEFT = 340, 54, 92, 40, 230
KIND_COLOURS = {"entry": "#dbeafe", "send": "#dcfce7", "wait": "#fef9c3", "wait_until": "#fef3c7",
                "branch": "#fce7f3", "exit": "#fee2e2", "end": "#e5e7eb", "holdout": "#ede9fe",
                "other": "#f1f5f9"}


@dataclass
class JourneyCounts:
    """What the operational store says about a journey as of its last tick."""

    as_of: datetime | None = None
    entered: int = 0
    holdout: int = 0
    active: dict[str, int] = field(default_factory=dict)  # enrolments waiting at each step now
    sent: dict[str, int] = field(default_factory=dict)  # messages sent per send step
    planned: dict[str, int] = field(default_factory=dict)  # planned, not sent yet
    ended: dict[str, int] = field(default_factory=dict)  # finished enrolments per exit reason


def journey_counts(wh: Warehouse, journey_id: str) -> JourneyCounts:
    if not wh.table_exists("journey_ticks"):
        return JourneyCounts()
    p = {"jid": journey_id}
    as_of = wh.scalar("select max(as_of) from journey_ticks where journey_id = $jid", p)
    out = JourneyCounts(as_of=as_of)
    for status, is_holdout, step, reason, n in wh.fetch_rows(
            """select status, is_holdout, current_step, exit_reason, count(*) from journey_enrolments
               where journey_id = $jid group by status, is_holdout, current_step, exit_reason""", p):
        out.entered += int(n)
        if is_holdout:
            out.holdout += int(n)
        elif status == "active" and step is not None:
            out.active[str(step)] = out.active.get(str(step), 0) + int(n)
        elif status in ("completed", "exited"):
            out.ended[str(reason)] = out.ended.get(str(reason), 0) + int(n)
    for step, state, n in wh.fetch_rows("""select step_id, state, count(*) from send_ledger where journey_id = $jid
                                           group by step_id, state""", p):
        target = out.sent if state == "sent" else out.planned if state in ("planned", "sending") else None
        if target is not None:
            target[str(step)] = target.get(str(step), 0) + int(n)
    return out


def describe(value: BaseModel | None) -> str:
    """A condition or trigger in a few words: its set fields, compactly."""
    if value is None:
        return ""
    data = value.model_dump(exclude_defaults=True, exclude_none=True, by_alias=True)
    data.pop("type", None)  # shown by the caller

    def text(v: Any) -> str:
        if isinstance(v, dict):
            return " ".join(f"{k}={text(x)}" for k, x in v.items())
        if isinstance(v, list):
            return ",".join(text(x) for x in v)
        if hasattr(v, "total_seconds"):
            return format_duration(v)
        return str(v)

    return "; ".join(f"{k}: {text(v)}" for k, v in data.items())


@dataclass
class Node:
    key: str
    kind: str
    title: str
    detail: str
    counts: str = ""


@dataclass
class Edge:
    source: str
    target: str
    label: str = ""


def step_detail(step: Any) -> tuple[str, str]:
    """(kind, one-line detail) of a step."""
    if isinstance(step, js.SendStep):
        what = step.template or " / ".join(f"{v.name}:{v.template} ({v.weight:g})" for v in step.variants or [])
        return "send", f"{step.channel}: {what}"
    if isinstance(step, js.WaitStep):
        parts = [f"wait {format_duration(step.duration)}" if step.duration else "wait"]
        if step.from_ == "previous_send":
            parts.append("after the previous send")
        if step.until:
            days = f" {','.join(step.until.weekdays)}" if step.until.weekdays else ""
            parts.append(f"until {step.until.start:%H:%M}-{step.until.end:%H:%M} local{days}")
        return "wait", " ".join(parts)
    if isinstance(step, js.WaitUntilStep):
        return "wait_until", f"until {describe(step.condition)} (timeout {format_duration(step.timeout)})"
    if isinstance(step, js.BranchStep):
        return "branch", f"{len(step.cases)} case(s)"
    if isinstance(step, js.ExitStep):
        return "exit", f"exit: {step.reason}"
    if isinstance(step, js.AssignBannerStep):
        return "other", f"banner {step.slot}={step.creative_id} for {format_duration(step.valid_for)}"
    if isinstance(step, js.CreateTaskStep):
        return "other", f"task in {step.queue} ({step.priority})"
    if isinstance(step, js.AddTagStep | js.RemoveTagStep):
        return "other", f"{'add' if isinstance(step, js.AddTagStep) else 'remove'} tag {step.tag}"
    return "other", step.type


def graph(journey: Journey, counts: JourneyCounts | None = None) -> tuple[list[Node], list[Edge]]:
    c = counts or JourneyCounts()
    entry = f"trigger {journey.trigger.type}: {describe(journey.trigger)}"
    nodes = [Node("entry", "entry", "enter", entry, f"{c.entered} entered" if c.as_of else "")]
    edges = [Edge("entry", journey.steps[0].id)]
    if journey.holdout is not None:
        nodes.append(Node("holdout", "holdout", f"holdout {journey.holdout.percent:g}%", "no messages; measured",
                          f"{c.holdout} held out" if c.as_of else ""))
        edges.append(Edge("entry", "holdout", f"{journey.holdout.percent:g}%"))
    for i, step in enumerate(journey.steps):
        kind, detail = step_detail(step)
        shown = []
        if c.as_of:
            shown.append(f"{c.active.get(step.id, 0)} here")
            if kind == "send":
                shown.append(f"{c.sent.get(step.id, 0)} sent")
                if c.planned.get(step.id):
                    shown.append(f"{c.planned[step.id]} planned")
        nodes.append(Node(step.id, kind, step.id, detail, ", ".join(shown)))
        following = journey.following(i) or END
        if isinstance(step, js.BranchStep):
            edges += [Edge(step.id, case.next, describe(case.when)) for case in step.cases]
            edges.append(Edge(step.id, step.default or following, "otherwise"))
        elif isinstance(step, js.WaitUntilStep):
            edges.append(Edge(step.id, step.next or following, "met"))
            edges.append(Edge(step.id, step.timeout_next or END, "timeout"))
        elif isinstance(step, js.ExitStep):
            edges.append(Edge(step.id, END))
        else:
            edges.append(Edge(step.id, step.next or following))
    exits = [f"goal {describe(journey.goal)}" if journey.goal and journey.exit.on_goal else "",
             "unsubscribed" if journey.exit.unsubscribed else "", "left segment" if journey.exit.left_segment else ""]
    ended = ", ".join(f"{n} {r}" for r, n in sorted(c.ended.items())) if c.as_of else ""
    nodes.append(Node(END, "end", "end", "exits: " + (", ".join(e for e in exits if e) or "none"), ended))
    return nodes, edges


def _esc(text: str, limit: int = 60) -> str:
    return html.escape(text if len(text) <= limit else text[: limit - 1] + "…")


def render_svg(journey: Journey, counts: JourneyCounts | None = None) -> str:
    nodes, edges = graph(journey, counts)
    column = [n for n in nodes if n.key != "holdout"]
    pos = {n.key: (LEFT, TOP + i * ROW) for i, n in enumerate(column)}
    if any(n.key == "holdout" for n in nodes):
        pos["holdout"] = (10, TOP)
    order = {n.key: i for i, n in enumerate(column)}
    curves = [e for e in edges if e.target != "holdout" and (order[e.target] != order[e.source] + 1 or e.label)]
    width = LEFT + BOX_W + 30 + 60 * len(curves) + 200  # room for the last curve's label (34 characters)
    height = TOP + len(column) * ROW + 20
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12" role="img" '
           f'aria-label="journey {html.escape(journey.id)}">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#475569"/></marker></defs>',
           f'<text x="10" y="22" font-size="15" font-weight="bold">{_esc(journey.name, 80)} ({html.escape(journey.id)})</text>']
    lane = 0
    for e in edges:
        if e.target not in pos:
            continue
        (sx, sy), (tx, ty) = pos[e.source], pos[e.target]
        if e.target == "holdout":
            out.append(f'<path class="edge" d="M {sx} {sy + BOX_H / 2} L {tx + 200} {ty + BOX_H / 2}" '
                       'stroke="#7c3aed" fill="none" stroke-dasharray="4 3" marker-end="url(#arrow)"/>')
            continue
        if order[e.target] == order[e.source] + 1 and not e.label:
            out.append(f'<path class="edge" d="M {sx + BOX_W / 2} {sy + BOX_H} L {tx + BOX_W / 2} {ty}" '
                       'stroke="#475569" fill="none" marker-end="url(#arrow)"/>')
            continue
        lane += 1
        x = LEFT + BOX_W + 30 + 60 * lane
        y1, y2 = sy + BOX_H / 2 - 8 + (lane % 3) * 8, ty + BOX_H / 2
        out.append(f'<path class="edge" d="M {sx + BOX_W} {y1} C {x} {y1}, {x} {y2}, {tx + BOX_W} {y2}" '
                   'stroke="#475569" fill="none" marker-end="url(#arrow)"/>')
        if e.label:
            out.append(f'<text class="edge-label" x="{(3 * x + LEFT + BOX_W) / 4 + 4}" y="{(y1 + y2) / 2 + 4}" '
                       f'font-size="10" fill="#334155"><title>{html.escape(e.label)}</title>{_esc(e.label, 34)}</text>')
    for n in nodes:
        x, y = pos[n.key]
        w = 200 if n.key == "holdout" else BOX_W
        colour = KIND_COLOURS.get(n.kind, KIND_COLOURS["other"])
        out.append(f'<g class="step" data-step="{html.escape(n.key)}" data-kind="{n.kind}">'
                   f'<title>{html.escape(n.title)}: {html.escape(n.detail)}</title>'
                   f'<rect x="{x}" y="{y}" width="{w}" height="{BOX_H}" rx="8" fill="{colour}" stroke="#64748b"/>'
                   f'<text x="{x + 10}" y="{y + 17}" font-weight="bold">{_esc(n.title, 40)}</text>'
                   f'<text x="{x + 10}" y="{y + 32}" fill="#334155">{_esc(n.detail, 55 if w == BOX_W else 30)}</text>'
                   f'<text class="counts" x="{x + 10}" y="{y + 47}" fill="#0f172a">{_esc(n.counts, 48)}</text></g>')
    out.append("</svg>")
    return "\n".join(out)


def render_html(journey: Journey, counts: JourneyCounts | None = None) -> str:
    c = counts or JourneyCounts()
    when = f"counts as of the last run, {c.as_of.isoformat()}" if c.as_of else "no run yet: no counts"
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>journey {html.escape(journey.id)}'
            f'</title></head>\n<body style="font-family:sans-serif;margin:24px">\n'
            f'<h1 style="font-size:18px">{html.escape(journey.name)} <code>{html.escape(journey.id)}</code></h1>\n'
            f'<p>{html.escape(journey.description)} Owner: {html.escape(journey.owner)}; {html.escape(when)}.</p>\n'
            f'{render_svg(journey, c)}\n</body></html>\n')
