"""Measurement settings. Defaults match docs/measurement.md; a typo in a key is an error."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from crmflow.order_statuses import paid_order_statuses


class MeasurementConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Below this many enrolments (or sends) in either group a comparison reads "not enough data".
    min_group_size: int = Field(30, ge=1)
    # Goal window of a journey without a goal block (and of messages of journeys no longer configured).
    default_window_days: float = Field(7.0, gt=0)
    # Days after the send shown in the cumulative conversion trend (day 0 = the send's calendar day).
    trend_days: int = Field(7, ge=1, le=60)
    # Two-sided significance level: 0.05 gives 95 % intervals.
    alpha: float = Field(0.05, gt=0, lt=0.5)
    # An order in one of these states is a purchase: the dbt var paid_order_statuses (dbt_project.yml).
    paid_statuses: tuple[str, ...] = Field(default_factory=paid_order_statuses)

    @property
    def default_window_seconds(self) -> int:
        return int(self.default_window_days * 86400)
