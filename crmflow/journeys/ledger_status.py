"""Ledger status for operators: counts per journey/channel/state and the `unknown` rows."""

from __future__ import annotations

from typing import Any

import duckdb

from crmflow.journeys.columns import table_exists


def ledger_status(con: duckdb.DuckDBPyConnection, unknown_limit: int = 100) -> dict[str, Any]:
    if not table_exists(con, "send_ledger"):
        return {"counts": [], "unknown": [], "total": 0}
    counts = [
        {"journey_id": j, "channel": c, "state": s, "count": int(n)}
        for j, c, s, n in con.execute(
            "select journey_id, channel, state, count(*) from send_ledger group by all order by all"
        ).fetchall()
    ]
    cur = con.execute(
        """select message_key, journey_id, step_id, user_id, channel, attempts, reason, updated_at
           from send_ledger where state = 'unknown' order by updated_at, message_key limit ?""",
        [unknown_limit],
    )
    names = [d[0] for d in cur.description]
    unknown = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    return {"counts": counts, "unknown": unknown, "total": sum(c["count"] for c in counts)}
