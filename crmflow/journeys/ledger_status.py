"""Ledger status for operators: counts per journey/channel/state and the `unknown` rows."""

from __future__ import annotations

from typing import Any

from crmflow.warehouse import Warehouse, as_warehouse


def ledger_status(con: Warehouse | Any, unknown_limit: int = 100) -> dict[str, Any]:
    """`con`: a Warehouse, or a raw DuckDB connection (wrapped)."""
    wh = as_warehouse(con)
    if not wh.table_exists("send_ledger"):
        return {"counts": [], "unknown": [], "total": 0}
    counts = [
        {"journey_id": j, "channel": c, "state": s, "count": int(n)}
        for j, c, s, n in wh.fetch_rows(
            """select journey_id, channel, state, count(*) from send_ledger
               group by journey_id, channel, state order by journey_id, channel, state"""
        )
    ]
    unknown = wh.fetch_arrow(
        """select message_key, journey_id, step_id, user_id, channel, attempts, reason, updated_at
           from send_ledger where state = 'unknown' order by updated_at, message_key limit $unknown_limit""",
        {"unknown_limit": unknown_limit},
    ).to_pylist()
    return {"counts": counts, "unknown": unknown, "total": sum(c["count"] for c in counts)}
