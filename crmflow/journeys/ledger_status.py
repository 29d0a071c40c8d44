"""Ledger status for operators: true totals per state, counts per journey/channel/state, the oldest
open row, rows still 'sending' past their lease, and (up to a display limit) the `unknown` rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crmflow.warehouse import Warehouse, as_warehouse

# Not final yet: planned (waiting), sending (claimed, in flight), unknown (waiting for its delivery
# event or the grace period: crmflow/journeys/settle.py).
OPEN_STATES = ("planned", "sending", "unknown")


def ledger_status(con: Warehouse | Any, unknown_limit: int = 100, now: datetime | None = None) -> dict[str, Any]:
    """`con`: a Warehouse, or a raw DuckDB connection (wrapped). `now`: for the past-lease count."""
    wh = as_warehouse(con)
    if not wh.table_exists("send_ledger"):
        return {"counts": [], "totals": {}, "unknown": [], "unknown_total": 0, "oldest_open": None,
                "sending_past_lease": 0, "total": 0}
    counts = [
        {"journey_id": j, "channel": c, "state": s, "count": int(n)}
        for j, c, s, n in wh.fetch_rows(
            """select journey_id, channel, state, count(*) from send_ledger
               group by journey_id, channel, state order by journey_id, channel, state"""
        )
    ]
    totals: dict[str, int] = {}
    for row in counts:
        totals[row["state"]] = totals.get(row["state"], 0) + row["count"]
    unknown = wh.fetch_arrow(
        """select message_key, journey_id, step_id, user_id, channel, attempts, reason, updated_at
           from send_ledger where state = 'unknown' order by updated_at, message_key limit $unknown_limit""",
        {"unknown_limit": unknown_limit},
    ).to_pylist()
    oldest = wh.fetch_arrow(
        """select message_key, journey_id, channel, state, planned_at, updated_at from send_ledger
           where state in ('planned', 'sending', 'unknown') order by planned_at, message_key limit 1"""
    ).to_pylist()
    past_lease = 0
    if now is not None and totals.get("sending"):
        past_lease = int(wh.scalar("select count(*) from send_ledger where state = 'sending' and lease_until < $now",
                                   {"now": now}))
    return {"counts": counts, "totals": dict(sorted(totals.items())), "unknown": unknown,
            "unknown_total": totals.get("unknown", 0), "oldest_open": oldest[0] if oldest else None,
            "sending_past_lease": past_lease, "total": sum(totals.values())}
