"""Preview a journey tick without side effects: the tick runs inside a transaction that is rolled
back, after counting entrants, steps and variants and rendering a few sample messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb

from crmflow.journeys.engine import JourneyTick, TickReport
from crmflow.journeys.recommendations import load_recommendations
from crmflow.journeys.schema import Journey
from crmflow.journeys.templates import message_context, render


@dataclass
class Preview:
    report: TickReport
    samples: list[dict[str, Any]] = field(default_factory=list)


def preview_journey(con: duckdb.DuckDBPyConnection, journey: Journey, as_of: datetime,
                    default_timezone: str = "UTC", samples: int = 3) -> Preview:
    con.execute("begin transaction")
    try:
        report = JourneyTick(con, journey, as_of, default_timezone).run()
        cur = con.execute(
            """select l.message_key, l.step_id, l.variant, l.template, l.channel, p.*
               from send_ledger l left join customer_profile p on p.user_id = l.user_id
               where l.journey_id = ? and l.planned_at = ? order by l.message_key limit ?""",
            [journey.id, as_of, samples],
        )
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.execute("rollback")  # nothing of the preview stays: no enrolments, no ledger rows
    recommendations = load_recommendations(con, [row["user_id"] for row in rows])
    out: list[dict[str, Any]] = []
    for row in rows:
        template = journey.templates[row["template"]]
        context = {**row, "recommendations": recommendations.get(row["user_id"], []),
                   **message_context(journey.id, journey.name, row["step_id"], row["variant"], row["message_key"])}
        rendered = render(template, row.get("locale"), context)
        out.append({"user_id": row["user_id"], "step": row["step_id"], "variant": row["variant"],
                    "channel": row["channel"], "locale": rendered.locale, **rendered.fields})
    return Preview(report, out)
