"""Which order statuses are paid, refunded or cancelled: ONE definition, the dbt vars
`paid_order_statuses`, `refunded_order_statuses` and `cancelled_order_statuses` in dbt_project.yml.

The dbt models read them as vars; the Python stages (measurement, intelligence) read the same
lists here instead of keeping their own. The groups must cover exactly the statuses ingestion
accepts (connectors/sources/contracts.py ORDER_STATUSES), each status in one group: a status no
group names would be counted nowhere, one ingestion quarantines can never match.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

from connectors.sources.contracts import ORDER_STATUSES
from crmflow.settings import DBT_PROJECT_DIR

STATUS_GROUPS = ("paid", "refunded", "cancelled")
DBT_PROJECT_FILE = DBT_PROJECT_DIR / "dbt_project.yml"


def read_order_status_groups(path: Path) -> dict[str, tuple[str, ...]]:
    """group -> statuses from a dbt_project.yml; a wrong list is one line naming file, var and value."""
    dbt_vars = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("vars") or {}
    groups: dict[str, tuple[str, ...]] = {}
    seen: dict[str, str] = {}
    for group in STATUS_GROUPS:
        var = f"{group}_order_statuses"
        values = dbt_vars.get(var)
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ValueError(f"{path}: vars.{var} must be a list of order statuses, got {values!r}")
        for status in values:
            if status not in ORDER_STATUSES:
                raise ValueError(f"{path}: vars.{var}: {status!r} is not an order status ingestion accepts "
                                 f"(allowed: {', '.join(ORDER_STATUSES)}; connectors/sources/contracts.py)")
            if status in seen:
                raise ValueError(f"{path}: vars.{var}: {status!r} is already in {seen[status]}_order_statuses "
                                 "(each status belongs to one group)")
            seen[status] = group
        groups[group] = tuple(values)
    unplaced = [s for s in ORDER_STATUSES if s not in seen]
    if unplaced:
        raise ValueError(f"{path}: order statuses in no *_order_statuses var: {', '.join(unplaced)} "
                         f"(put each in one of {', '.join(f'{g}_order_statuses' for g in STATUS_GROUPS)})")
    if not groups["paid"]:
        raise ValueError(f"{path}: vars.paid_order_statuses is empty: nothing would count as a purchase")
    return groups


@cache
def order_status_groups() -> dict[str, tuple[str, ...]]:
    return read_order_status_groups(DBT_PROJECT_FILE)


def paid_order_statuses() -> tuple[str, ...]:
    """The statuses that make an order a purchase (dbt var paid_order_statuses)."""
    return order_status_groups()["paid"]
