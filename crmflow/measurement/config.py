"""Measurement settings. Defaults match docs/measurement.md; a typo in a key is an error.

The goal window default and the trend length are dbt vars (dbt_project.yml
measurement_default_window_days / measurement_trend_days): the dbt models use them, and the defaults
here are read from the same file so the Python labels and statistics agree with the models.
"""

from __future__ import annotations

from functools import cache

import yaml
from pydantic import BaseModel, ConfigDict, Field

from crmflow.order_statuses import DBT_PROJECT_FILE, paid_order_statuses


@cache
def measurement_var(name: str) -> float:
    """A numeric measurement var of dbt_project.yml; a missing or non-numeric one names file and var."""
    dbt_vars = (yaml.safe_load(DBT_PROJECT_FILE.read_text(encoding="utf-8")) or {}).get("vars") or {}
    value = dbt_vars.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{DBT_PROJECT_FILE}: vars.{name} must be a number, got {value!r}")
    return value


class MeasurementConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Below this many enrolments (or sends) in either group a comparison reads "not enough data".
    min_group_size: int = Field(30, ge=1)
    # Goal window of a journey without a goal block (and of messages of journeys no longer configured).
    default_window_days: float = Field(
        default_factory=lambda: float(measurement_var("measurement_default_window_days")), gt=0)
    # Days after the send shown in the cumulative conversion trend (day 0 = the send's calendar day).
    trend_days: int = Field(default_factory=lambda: int(measurement_var("measurement_trend_days")), ge=1, le=60)
    # Two-sided significance level: 0.05 gives 95 % intervals.
    alpha: float = Field(0.05, gt=0, lt=0.5)
    # An order in one of these states is a purchase: the dbt var paid_order_statuses (dbt_project.yml).
    paid_statuses: tuple[str, ...] = Field(default_factory=paid_order_statuses)

    @property
    def default_window_seconds(self) -> int:
        return int(self.default_window_days * 86400)

    def dbt_vars(self) -> dict[str, object]:
        """The vars that make the dbt measurement models follow this configuration."""
        return {"measurement_default_window_days": self.default_window_days,
                "measurement_trend_days": self.trend_days, "paid_order_statuses": list(self.paid_statuses)}
