"""banners.yaml: slots, creatives, their targeting, priority, weight, window and per-locale content."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from crmflow.audience import Audience, audience_problems, normalise_locale
from crmflow.journeys.columns import PROFILE_COLUMN_TYPES
from crmflow.yaml_config import load_yaml_model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# In text or deep_link: the user's top recommendation (customer_recommendations rank 1).
SKU_PLACEHOLDER = "{sku}"


class Content(_Strict):
    image_url: str
    text: str  # may contain {sku}
    deep_link: str  # may contain {sku}, e.g. "app://product/{sku}"

    def uses_sku(self) -> bool:
        return SKU_PLACEHOLDER in self.text or SKU_PLACEHOLDER in self.deep_link


class Creative(_Strict):
    id: str = Field(min_length=1)
    slot: str
    priority: int = 0  # higher wins
    weight: int = Field(default=1, ge=1)  # share among creatives tied on priority
    active_from: date | None = None
    active_until: date | None = None  # inclusive, in the business time zone
    # The audience language of journeys and task recall (crmflow/audience.py); empty: every user.
    targeting: Audience = Field(default_factory=Audience)
    content: dict[str, Content] = Field(min_length=1)  # locale -> content

    @field_validator("content")
    @classmethod
    def _norm_content_locales(cls, values: dict[str, Content]) -> dict[str, Content]:
        return {normalise_locale(k): v for k, v in values.items()}

    def uses_sku(self) -> bool:
        """A {sku} creative is eligible only for users with a recommendation."""
        return any(c.uses_sku() for c in self.content.values())

    @model_validator(mode="after")
    def _window(self) -> Creative:
        if self.active_from and self.active_until and self.active_until < self.active_from:
            raise ValueError(f"creative {self.id}: active_until is before active_from")
        return self


class Slot(_Strict):
    id: str = Field(min_length=1)
    description: str = ""
    default_creative: str


class BannerConfig(_Strict):
    default_locale: str = "en"
    slots: list[Slot] = Field(min_length=1)
    creatives: list[Creative] = Field(default_factory=list)

    @field_validator("default_locale")
    @classmethod
    def _norm_default(cls, value: str) -> str:
        return normalise_locale(value)

    @model_validator(mode="after")
    def _references(self) -> BannerConfig:
        slot_ids = [s.id for s in self.slots]
        if len(set(slot_ids)) != len(slot_ids):
            raise ValueError(f"duplicate slot ids: {sorted({s for s in slot_ids if slot_ids.count(s) > 1})}")
        creative_ids = [c.id for c in self.creatives]
        if len(set(creative_ids)) != len(creative_ids):
            dupes = sorted({c for c in creative_ids if creative_ids.count(c) > 1})
            raise ValueError(f"duplicate creative ids: {dupes}")
        by_id = {c.id: c for c in self.creatives}
        for index, creative in enumerate(self.creatives):
            if creative.slot not in slot_ids:
                raise ValueError(f"creatives[{index}] ({creative.id}): unknown slot {creative.slot!r}")
        for index, slot in enumerate(self.slots):
            default = by_id.get(slot.default_creative)
            if default is None:
                raise ValueError(f"slots[{index}] ({slot.id}): default_creative {slot.default_creative!r} "
                                 "is not a creative")
            if default.slot != slot.id:
                raise ValueError(f"slots[{index}] ({slot.id}): default_creative {default.id!r} belongs to "
                                 f"slot {default.slot!r}")
            if default.uses_sku():
                raise ValueError(f"slots[{index}] ({slot.id}): default_creative {default.id!r} uses {{sku}}, "
                                 "but a default must work for users without a recommendation")
        return self

    def creative(self, creative_id: str) -> Creative:
        return {c.id: c for c in self.creatives}[creative_id]


def targeting_problems(config: BannerConfig) -> list[tuple[tuple[str | int, ...], str]]:
    """Profile fields each creative's targeting names, checked as in journey audiences."""
    return [problem for i, creative in enumerate(config.creatives)
            for problem in audience_problems(creative.targeting, ("creatives", i, "targeting"), PROFILE_COLUMN_TYPES)]


def load_banner_config(path: Path) -> BannerConfig:
    return load_yaml_model(path, BannerConfig, checks=targeting_problems)
