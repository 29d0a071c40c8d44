"""operators.yaml (the roster) and task_rules.yaml (recall, matching, frequency, validity)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from crmflow.audience import Audience, audience_problems
from crmflow.journeys.columns import PROFILE_COLUMN_TYPES
from crmflow.yaml_config import load_yaml_model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- operators.yaml ---------------------------------------------------------------------------

class Operator(_Strict):
    id: str = Field(min_length=1)
    name: str = ""
    team: str
    region: str  # a key of `regions`
    languages: list[str] = Field(default_factory=list)  # ISO 639-1, e.g. de, en
    industries: list[str] = Field(default_factory=list)  # B2B industries this operator knows
    daily_capacity: int = Field(ge=0)
    active: bool = True
    performance_weight: float = Field(default=1.0, gt=0)  # relative share of (high-priority) tasks


class OperatorRoster(_Strict):
    regions: dict[str, list[str]] = Field(default_factory=dict)  # region -> ISO country codes
    operators: list[Operator] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> OperatorRoster:
        ids = [o.id for o in self.operators]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate operator ids: {dupes}")
        for index, op in enumerate(self.operators):
            if op.region not in self.regions:
                raise ValueError(f"operators[{index}] ({op.id}): region {op.region!r} is not in regions")
        countries = [c for cs in self.regions.values() for c in cs]
        twice = sorted({c for c in countries if countries.count(c) > 1})
        if twice:
            raise ValueError(f"countries in more than one region: {twice}")
        return self


# ---- task_rules.yaml ---------------------------------------------------------------------------

class HighValueAtRisk(_Strict):
    """Valuable customers likely to churn: churn_probability >= threshold from customer_churn_scores;
    without churn scores, customers in one of `fallback_stages` (lifecycle)."""

    predicate: Literal["high_value_at_risk"]
    min_churn_probability: float = Field(default=0.5, ge=0, le=1)
    fallback_stages: list[str] = Field(default_factory=lambda: ["silent"])
    min_revenue: float = 0


class NewB2BLead(_Strict):
    """Business customers registered within `within_days` with at most `max_orders` orders."""

    predicate: Literal["new_b2b_lead"]
    within_days: int = Field(default=14, ge=1)
    max_orders: int = Field(default=0, ge=0)


class GradeDowngrade(_Strict):
    """B2B grade (A best) or B2C value tier (high best) fell within `within_days`
    (customer_value_tier_history)."""

    predicate: Literal["grade_downgrade"]
    within_days: int = Field(default=7, ge=1)


class OpenSupportComplaint(_Strict):
    """A support_ticket_opened event within `within_days` not followed by support_ticket_closed
    (matched on properties.ticket_id when both carry one)."""

    predicate: Literal["open_support_complaint"]
    within_days: int = Field(default=30, ge=1)


class LifecycleStage(_Strict):
    predicate: Literal["lifecycle_stage"]
    stages: list[str] = Field(min_length=1)


class InSegment(_Strict):
    predicate: Literal["segment"]
    segments: list[str] = Field(min_length=1)  # "family:segment"


class HasTag(_Strict):
    predicate: Literal["tag"]
    tags: list[str] = Field(min_length=1)


Predicate = Annotated[
    HighValueAtRisk | NewB2BLead | GradeDowngrade | OpenSupportComplaint | LifecycleStage | InSegment | HasTag,
    Field(discriminator="predicate"),
]


class Recall(_Strict):
    predicate: Predicate
    # Extra conditions on top of the predicate, in the audience language of journeys and banners
    # (crmflow/audience.py): customer_types, countries, lifecycle_stages, tags, fields, ...
    filters: Audience = Field(default_factory=Audience)
    max_tasks: int | None = Field(default=None, ge=1)  # keep only the top-priority N per run


MatchMode = Literal["required", "preferred", "ignore"]


class Matching(_Strict):
    """required: the operator must match; preferred: matching operators pick these first; ignore.
    A customer without the attribute (no country/locale/industry) matches every operator."""

    region: MatchMode = "preferred"
    language: MatchMode = "required"
    industry: MatchMode = "ignore"
    keep_previous_owner: bool = True
    teams: list[str] = Field(default_factory=list)  # empty = any team


FREQUENCY_DAYS = {"daily": 1, "weekly": 7, "monthly": 30}


class TaskPolicy(_Strict):
    matching: Matching = Field(default_factory=Matching)
    validity_days: int = Field(default=3, ge=1)  # open/unassigned tasks expire after this
    due_hours: int = Field(default=24, ge=1)
    on_expiry: Literal["reassign", "drop"] = "drop"
    priority_weight: float = Field(default=1.0, gt=0)


class TaskRule(TaskPolicy):
    id: str = Field(min_length=1, pattern=r"^[a-z0-9_]+$")
    description: str = ""
    recall: Recall
    frequency: Literal["daily", "weekly", "monthly"] | int = "daily"  # int = every N days
    active: bool = True

    @property
    def frequency_interval(self) -> timedelta:
        days = FREQUENCY_DAYS[self.frequency] if isinstance(self.frequency, str) else self.frequency
        return timedelta(days=days)


class TaskRules(_Strict):
    rules: list[TaskRule] = Field(default_factory=list)
    # journey create_task steps: queue name -> policy. A journey naming a queue not listed here is
    # rejected by journey validation; a request already written whose queue was removed since gets
    # the "default" policy and is counted in the run's unknown_queues.
    journey_queues: dict[str, TaskPolicy] = Field(default_factory=lambda: {"default": TaskPolicy()})
    # lifecycle stage -> suggested talking points shown in the task context.
    talking_points: dict[str, list[str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> TaskRules:
        ids = [r.id for r in self.rules]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate rule ids: {dupes}")
        if "default" not in self.journey_queues:
            raise ValueError("journey_queues must define a 'default' queue")
        for index, rule in enumerate(self.rules):
            if isinstance(rule.frequency, int) and rule.frequency < 1:
                raise ValueError(f"rules[{index}] ({rule.id}): frequency in days must be >= 1")
        return self


def load_roster(path: Path) -> OperatorRoster:
    return load_yaml_model(path, OperatorRoster)


def filter_problems(rules: TaskRules) -> list[tuple[tuple[str | int, ...], str]]:
    """Profile fields each rule's recall filters name, checked as in journey audiences."""
    return [problem for i, rule in enumerate(rules.rules)
            for problem in audience_problems(rule.recall.filters, ("rules", i, "recall", "filters"),
                                             PROFILE_COLUMN_TYPES)]


def load_task_rules(path: Path) -> TaskRules:
    return load_yaml_model(path, TaskRules, checks=filter_problems)
