"""Preview a journey tick without side effects: the tick runs inside a transaction that is rolled
back, after counting entrants, steps and variants and rendering a few sample messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crmflow.journeys.engine import JourneyTick, TickReport, prepare_tick
from crmflow.journeys.recommendations import load_recommendations
from crmflow.journeys.schema import Journey
from crmflow.journeys.templates import message_context, render
from crmflow.warehouse import Warehouse


@dataclass
class Preview:
    report: TickReport
    samples: list[dict[str, Any]] = field(default_factory=list)


class _RollBack(Exception):
    """Raised at the end of a preview so the warehouse transaction rolls everything back."""


def preview_journey(con: Warehouse | Any, journey: Journey, as_of: datetime,
                    default_timezone: str = "UTC", samples: int = 3) -> Preview:
    wh = prepare_tick(con)  # migrations commit on their own, before the rolled-back tick
    try:
        with wh.transaction():
            report = JourneyTick(wh, journey, as_of, default_timezone).run()
            rows = wh.fetch_arrow(
                """select l.message_key, l.step_id, l.variant, l.template, l.channel, p.*
                   from send_ledger l left join customer_profile p on p.user_id = l.user_id
                   where l.journey_id = $jid and l.planned_at = $as_of
                   order by l.message_key limit $samples""",
                {"jid": journey.id, "as_of": as_of, "samples": samples},
            ).to_pylist()
            raise _RollBack  # nothing of the preview stays: no enrolments, no ledger rows
    except _RollBack:
        pass
    recommendations = load_recommendations(wh, [row["user_id"] for row in rows])
    out: list[dict[str, Any]] = []
    for row in rows:
        template = journey.templates[row["template"]]
        context = {**row, "recommendations": recommendations.get(row["user_id"], []),
                   **message_context(journey.id, journey.name, row["step_id"], row["variant"], row["message_key"])}
        rendered = render(template, row.get("locale"), context)
        out.append({"user_id": row["user_id"], "step": row["step_id"], "variant": row["variant"],
                    "channel": row["channel"], "locale": rendered.locale, **rendered.fields})
    return Preview(report, out)
