"""The journey YAML as pydantic models. Unknown keys are rejected everywhere (extra="forbid") so a
typo is an error, never a silent default. Cross-references (step ids, templates, profile columns) are
checked afterwards in crmflow/journeys/validate.py, where each error keeps its YAML location."""

from __future__ import annotations

import re
from datetime import date, time, timedelta
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, BeforeValidator, Field, field_validator, model_validator

from crmflow.audience import (  # noqa: F401 - the audience language, part of the journey schema
    RELATIVE_OPS,
    Audience,
    B2bGrade,
    FieldFilter,
    FilterOp,
    LifecycleStage,
    SegmentRef,
    Strict,
    TagFilter,
    ValueTier,
)
from crmflow.journeys.durations import parse_duration

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
ChannelName = Literal["email", "sms", "push", "webhook"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

IDENT = r"^[a-z][a-z0-9_]*$"
# Orders of the attributes a transition can go "up" or "down" (index = rank, higher is better).
ATTRIBUTE_ORDER: dict[str, tuple[str, ...]] = {
    "value_tier": tuple(reversed(get_args(ValueTier))),  # the Literals list the best first
    "b2b_grade": tuple(reversed(get_args(B2bGrade))),
}
ATTRIBUTE_VALUES: dict[str, tuple[str, ...]] = {
    "lifecycle_stage": get_args(LifecycleStage),
    **ATTRIBUTE_ORDER,
}


def _parse_local_time(value: object) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 09:00 as a sexagesimal integer (540): take it back to minutes.
        return time(value // 60 % 24, value % 60)
    if isinstance(value, str) and re.match(r"^\d{1,2}:\d{2}$", value.strip()):
        hours, minutes = (int(p) for p in value.strip().split(":"))
        if hours < 24 and minutes < 60:
            return time(hours, minutes)
    raise ValueError(f"invalid local time {value!r}: use HH:MM, e.g. '09:00'")


LocalTime = Annotated[time, BeforeValidator(_parse_local_time)]


def _exactly_one(model: BaseModel, names: tuple[str, ...]) -> None:
    given = [n for n in names if getattr(model, n) is not None]
    if len(given) != 1:
        raise ValueError(f"give exactly one of {', '.join(names)} (got {', '.join(given) or 'none'})")


# ---------------------------------------------------------------------------------------------
# Step conditions (the audience language itself is crmflow/audience.py)
# ---------------------------------------------------------------------------------------------
class EventCondition(Strict):
    name: str
    min_count: int = Field(1, ge=1)


class OrderCondition(Strict):
    status: list[str] = Field(min_length=1)


class EngagementCondition(Strict):
    step: str
    action: Literal["delivered", "opened", "clicked"]


class Condition(Strict):
    """One test on a user, evaluated in SQL. Events and orders count since the enrolment."""

    event: EventCondition | None = None
    order: OrderCondition | None = None
    segment: SegmentRef | None = None
    profile: list[FieldFilter] | None = None
    engagement: EngagementCondition | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Condition:
        _exactly_one(self, ("event", "order", "segment", "profile", "engagement"))
        return self


# ---------------------------------------------------------------------------------------------
# Triggers
# ---------------------------------------------------------------------------------------------
class _TriggerBase(Strict):
    # The first tick of a journey has no previous tick: look this far back for entries.
    lookback: Duration = timedelta(days=1)
    # A trigger moment older than as-of - max_age does not enter (sparse runs must not send stale
    # "Forgot something?" mails); None: any age within the tick's window.
    max_age: Duration | None = None

    @field_validator("max_age")
    @classmethod
    def _max_age_positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and not value:
            raise ValueError("max_age must be above zero, e.g. '3d'")
        return value


class SegmentTrigger(_TriggerBase):
    type: Literal["segment"]
    family: str
    segment: str


class TransitionTrigger(_TriggerBase):
    type: Literal["transition"]
    attribute: Literal["lifecycle_stage", "value_tier", "b2b_grade"]
    from_: list[str] = Field(default_factory=list, alias="from")
    to: list[str] = Field(default_factory=list)
    direction: Literal["any", "up", "down"] = "any"

    @model_validator(mode="after")
    def _values_known(self) -> TransitionTrigger:
        allowed = ATTRIBUTE_VALUES[self.attribute]
        for value in [*self.from_, *self.to]:
            if value not in allowed:
                raise ValueError(f"unknown {self.attribute} {value!r}; allowed: {', '.join(allowed)}")
        if self.direction != "any" and self.attribute not in ATTRIBUTE_ORDER:
            raise ValueError(f"direction '{self.direction}' needs an ordered attribute (value_tier, b2b_grade)")
        return self


class FollowUp(Strict):
    """'... and then no X within N hours' for event triggers (e.g. checkout without order)."""

    event: str | None = None
    order: bool | None = None
    within: Duration

    @model_validator(mode="after")
    def _one(self) -> FollowUp:
        _exactly_one(self, ("event", "order"))
        if self.order is False:
            raise ValueError("order: use 'order: true' or give an event name")
        return self


class EventTrigger(_TriggerBase):
    type: Literal["event"]
    event: str
    without: FollowUp | None = None


class DateTrigger(_TriggerBase):
    type: Literal["date"]
    attribute: Literal["birth_date", "registered_at", "contract_end_date"]
    # anniversary: every year on the month/day; exact: once, on the date itself.
    mode: Literal["anniversary", "exact"] | None = None
    offset_days: int = Field(0, ge=-366, le=366)
    at: LocalTime = time(9, 0)

    @model_validator(mode="after")
    def _default_mode(self) -> DateTrigger:
        if self.mode is None:
            self.mode = "exact" if self.attribute == "contract_end_date" else "anniversary"
        return self


Trigger = Annotated[
    SegmentTrigger | TransitionTrigger | EventTrigger | DateTrigger, Field(discriminator="type")
]


class Reentry(Strict):
    mode: Literal["once", "cooldown"] = "once"
    cooldown: Duration | None = None

    @model_validator(mode="after")
    def _cooldown_given(self) -> Reentry:
        if self.mode == "cooldown" and self.cooldown is None:
            raise ValueError("reentry mode 'cooldown' needs a cooldown duration, e.g. '30d'")
        if self.mode == "once" and self.cooldown is not None:
            raise ValueError("a cooldown only applies to reentry mode 'cooldown'")
        return self


class Goal(Strict):
    event: str | None = None
    order_status: list[str] | None = None
    within: Duration = timedelta(days=7)

    @model_validator(mode="after")
    def _one(self) -> Goal:
        _exactly_one(self, ("event", "order_status"))
        return self


class ExitCriteria(Strict):
    on_goal: bool = True
    left_segment: bool = False
    unsubscribed: bool = True


class Holdout(Strict):
    percent: float = Field(gt=0, le=50)


class FrequencyCap(Strict):
    max: int = Field(ge=1)
    window: Duration


# ---------------------------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------------------------
CHANNEL_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    # channel: (required fields, optional fields)
    "email": ({"subject", "body"}, {"html"}),
    "sms": ({"text"}, set()),
    "push": ({"title", "body"}, {"deep_link"}),
    "webhook": ({"body"}, set()),
}


class LocaleContent(Strict):
    subject: str | None = None
    body: str | None = None
    html: str | None = None
    text: str | None = None
    title: str | None = None
    deep_link: str | None = None

    def fields(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


DEFAULT_TEMPLATE_LOCALE = "en-US"


class Template(Strict):
    channel: ChannelName
    # Content for users whose locale (and language) has none. Unset: the template's only locale,
    # or en-US when it has several (then en-US must have content); docs/journeys.md, Templates.
    default_locale: str | None = None
    locales: dict[str, LocaleContent] = Field(min_length=1)

    @model_validator(mode="after")
    def _fields_fit_channel(self) -> Template:
        required, optional = CHANNEL_FIELDS[self.channel]
        for locale, content in self.locales.items():
            present = set(content.fields())
            missing = required - present
            extra = present - required - optional
            if missing:
                raise ValueError(f"locale {locale}: {self.channel} template needs {', '.join(sorted(missing))}")
            if extra:
                raise ValueError(f"locale {locale}: {', '.join(sorted(extra))} not allowed in a {self.channel} template")
        written = ", ".join(self.locales)
        if self.default_locale is None:
            self.default_locale = next(iter(self.locales)) if len(self.locales) == 1 else DEFAULT_TEMPLATE_LOCALE
            if self.default_locale not in self.locales:
                raise ValueError(f"default_locale is not set, so it is {DEFAULT_TEMPLATE_LOCALE}, which has no "
                                 f"content in locales ({written}): set default_locale to one of them")
        elif self.default_locale not in self.locales:
            raise ValueError(f"default_locale {self.default_locale!r} has no content in locales ({written})")
        return self


# ---------------------------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------------------------
class _StepBase(Strict):
    id: str = Field(pattern=IDENT)
    # Where to go next; default: the following step in the list (or the end of the journey).
    next: str | None = None


class Variant(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    template: str
    weight: float = Field(gt=0)


class SendStep(_StepBase):
    type: Literal["send"]
    channel: ChannelName
    template: str | None = None
    variants: list[Variant] | None = None

    @model_validator(mode="after")
    def _template_or_variants(self) -> SendStep:
        _exactly_one(self, ("template", "variants"))
        if self.variants is not None:
            names = [v.name for v in self.variants]
            if len(names) < 2:
                raise ValueError("variants need at least two entries (use template: for one)")
            if len(set(names)) != len(names):
                raise ValueError("variant names must be unique")
        return self


class LocalWindow(Strict):
    start: LocalTime
    end: LocalTime
    weekdays: list[Weekday] | None = None

    @model_validator(mode="after")
    def _non_empty(self) -> LocalWindow:
        if self.start == self.end:
            raise ValueError("window start and end must differ")
        return self


class WaitStep(_StepBase):
    """Wait a duration (as-of time), then, if given, until the user's local window opens.

    The duration counts from the tick that entered the step (`from: step_entered`, the default) or
    from the moment the enrolment's previous message was sent (`from: previous_send`; the wait does
    not start while that message is still planned or sending, e.g. deferred by quiet hours)."""

    type: Literal["wait"]
    duration: Duration | None = None
    until: LocalWindow | None = None
    from_: Literal["step_entered", "previous_send"] = Field("step_entered", alias="from")

    @model_validator(mode="after")
    def _something(self) -> WaitStep:
        if self.duration is None and self.until is None:
            raise ValueError("a wait step needs a duration, an until window, or both")
        if self.from_ == "previous_send" and self.duration is None:
            raise ValueError("'from: previous_send' needs a duration to count from the previous send")
        return self


class WaitUntilStep(_StepBase):
    type: Literal["wait_until"]
    condition: Condition
    timeout: Duration
    # Where to go when the timeout passes first (default: the end of the journey).
    timeout_next: str | None = None


class BranchCase(Strict):
    when: Condition
    next: str


class BranchStep(_StepBase):
    type: Literal["branch"]
    cases: list[BranchCase] = Field(min_length=1)
    default: str | None = None  # default: the following step

    @field_validator("next")
    @classmethod
    def _no_next(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError("a branch step routes with cases/default, not next")
        return value


class AssignBannerStep(_StepBase):
    type: Literal["assign_banner"]
    slot: str
    creative_id: str
    valid_for: Duration


class CreateTaskStep(_StepBase):
    type: Literal["create_task"]
    queue: str
    rule: str | None = None
    priority: Literal["low", "normal", "high", "urgent"] = "normal"
    note: str = ""


class AddTagStep(_StepBase):
    type: Literal["add_tag"]
    tag: str = Field(min_length=1)


class RemoveTagStep(_StepBase):
    type: Literal["remove_tag"]
    tag: str = Field(min_length=1)


class ExitStep(_StepBase):
    type: Literal["exit"]
    reason: str = "completed"


Step = Annotated[
    SendStep | WaitStep | WaitUntilStep | BranchStep | AssignBannerStep | CreateTaskStep | AddTagStep
    | RemoveTagStep | ExitStep,
    Field(discriminator="type"),
]


class Journey(Strict):
    id: str = Field(pattern=IDENT, max_length=60)
    name: str = Field(min_length=1)
    description: str = ""
    owner: str = Field(min_length=1)
    enabled: bool = True
    # Higher wins a contested frequency-cap slot for the same user.
    priority: int = Field(100, ge=0, le=1000)
    start_date: date | None = None
    end_date: date | None = None
    trigger: Trigger
    reentry: Reentry = Field(default_factory=Reentry)
    audience: Audience = Field(default_factory=Audience)
    goal: Goal | None = None
    exit: ExitCriteria = Field(default_factory=ExitCriteria)
    holdout: Holdout | None = None
    frequency_cap: FrequencyCap | None = None
    templates: dict[str, Template] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _dates_ordered(self) -> Journey:
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValueError("end_date is before start_date")
        return self

    def step_index(self) -> dict[str, int]:
        return {step.id: i for i, step in enumerate(self.steps)}

    def following(self, index: int) -> str | None:
        """The id of the step after position `index`, or None at the end of the list."""
        return self.steps[index + 1].id if index + 1 < len(self.steps) else None
