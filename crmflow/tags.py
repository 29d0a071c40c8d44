"""Rule-based customer tags: marketer config (marketing/tags.yaml) -> validated rules -> table tag_rules.

Marketers never write SQL. A tag is a name plus a list of conditions that must all hold; each
condition is either `field / op / value` over a fixed catalogue of customer fields, or a named
behavioural predicate (implemented once in SQL, dbt model int_tag_user_features). The loader
validates everything with pydantic (extra="forbid": a typo is an error) and compiles each condition
to one row of the warehouse table `tag_rules`. dbt (int_tag_matches) evaluates all rules for all
users in one set-based join, so adding a tag is a YAML change and never a code change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from crmflow.warehouse import Warehouse, as_warehouse
from crmflow.yaml_config import ConfigFileError, load_yaml_model

FieldType = Literal["number", "text", "boolean"]

# The field catalogue: every name here is a column of dbt model int_tag_user_features (one row per
# customer_profile user). tests/test_dbt_segments_tags.py checks the dbt model covers every entry.
FIELDS: dict[str, FieldType] = {
    # customer_profile
    "order_count": "number",
    "revenue": "number",
    "days_since_last_activity": "number",
    "days_since_last_purchase": "number",
    "employees": "number",
    "customer_type": "text",
    "country": "text",
    "city": "text",
    "locale": "text",
    "timezone": "text",
    "acquisition_channel": "text",
    "industry": "text",
    "gender": "text",
    "favourite_category": "text",
    "email_opt_in": "boolean",
    "sms_opt_in": "boolean",
    "push_opt_in": "boolean",
    # derived from customer_profile
    "days_since_registration": "number",
    "age_years": "number",
    "has_email": "boolean",
    "has_phone": "boolean",
    "has_push_token": "boolean",
    # other marts
    "lifecycle_stage": "text",
    "rfm_segment": "text",
    "value_tier": "text",
    "b2b_grade": "text",
    # behaviour (computed in SQL; also reachable through the named predicates below)
    "mobile_only": "boolean",
    "birthday_this_month": "boolean",
    "discount_order_share": "number",
    "days_since_unconverted_cart_abandon": "number",
}

Operator = Literal["=", "!=", ">", ">=", "<", "<=", "in", "not_in", "is_null", "is_not_null", "is_true", "is_false"]

OPERATORS_BY_TYPE: dict[FieldType, frozenset[str]] = {
    "number": frozenset({"=", "!=", ">", ">=", "<", "<=", "is_null", "is_not_null"}),
    "text": frozenset({"=", "!=", "in", "not_in", "is_null", "is_not_null"}),
    "boolean": frozenset({"is_true", "is_false", "is_null", "is_not_null"}),
}
NO_VALUE_OPERATORS = frozenset({"is_null", "is_not_null", "is_true", "is_false"})

TAG_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# '|' delimits the values of an `in` list inside one text column (portable SQL, no arrays).
LIST_DELIMITER = "|"


class FieldCondition(BaseModel):
    """`field op value`, e.g. revenue >= 1000 or country in [DE, AT]."""

    model_config = ConfigDict(extra="forbid")

    field: str
    op: Operator
    value: float | int | str | list[str] | None = None

    @model_validator(mode="after")
    def _check(self) -> FieldCondition:
        if self.field not in FIELDS:
            raise ValueError(f"unknown field {self.field!r}; known fields: {', '.join(sorted(FIELDS))}")
        kind = FIELDS[self.field]
        if self.op not in OPERATORS_BY_TYPE[kind]:
            allowed = ", ".join(sorted(OPERATORS_BY_TYPE[kind]))
            raise ValueError(f"operator {self.op!r} does not apply to {kind} field {self.field!r} (use {allowed})")
        if self.op in NO_VALUE_OPERATORS:
            if self.value is not None:
                raise ValueError(f"operator {self.op!r} takes no value")
            return self
        if self.value is None:
            raise ValueError(f"operator {self.op!r} needs a value")
        if self.op in {"in", "not_in"}:
            if not isinstance(self.value, list) or not self.value:
                raise ValueError(f"operator {self.op!r} needs a non-empty list of values")
            if any(LIST_DELIMITER in v for v in self.value):
                raise ValueError(f"values may not contain {LIST_DELIMITER!r}")
        elif kind == "number":
            if isinstance(self.value, bool) or not isinstance(self.value, int | float):
                raise ValueError(f"field {self.field!r} is a number; got {self.value!r}")
        elif not isinstance(self.value, str):
            raise ValueError(f"field {self.field!r} is text; quote the value {self.value!r}")
        return self


class PredicateCondition(BaseModel):
    """A named behavioural predicate; parameters only where the predicate takes them."""

    model_config = ConfigDict(extra="forbid")

    predicate: Literal["mobile_only", "birthday_this_month", "cart_abandoned_without_order", "discount_hunter"]
    within_days: int | None = Field(default=None, ge=0, le=3650)
    min_share: float | None = Field(default=None, gt=0, le=1)

    @model_validator(mode="after")
    def _check(self) -> PredicateCondition:
        takes = {"cart_abandoned_without_order": "within_days", "discount_hunter": "min_share"}.get(self.predicate)
        for name in ("within_days", "min_share"):
            if getattr(self, name) is not None and name != takes:
                raise ValueError(f"predicate {self.predicate!r} takes no {name}")
        if takes and getattr(self, takes) is None:
            raise ValueError(f"predicate {self.predicate!r} needs {takes}")
        return self

    def as_field_condition(self) -> FieldCondition:
        """Each predicate is one condition over a behavioural field of int_tag_user_features."""
        if self.predicate == "cart_abandoned_without_order":
            return FieldCondition(field="days_since_unconverted_cart_abandon", op="<=", value=self.within_days)
        if self.predicate == "discount_hunter":
            return FieldCondition(field="discount_order_share", op=">=", value=self.min_share)
        return FieldCondition(field=self.predicate, op="is_true")


def _condition_kind(value: Any) -> str:
    return "predicate" if isinstance(value, dict) and "predicate" in value else "field"


Condition = Annotated[
    Annotated[FieldCondition, Tag("field")] | Annotated[PredicateCondition, Tag("predicate")],
    Discriminator(_condition_kind),
]


class TagRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = Field(min_length=1)
    when: list[Condition] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_name(self) -> TagRule:
        if not TAG_NAME.match(self.name):
            raise ValueError(f"tag name {self.name!r} must be lower_snake_case (a-z, 0-9, _), max 63 chars")
        return self


class TagsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    tags: list[TagRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> TagsConfig:
        seen: set[str] = set()
        for tag in self.tags:
            if tag.name in seen:
                raise ValueError(f"tag {tag.name!r} is defined twice")
            seen.add(tag.name)
        return self


class TagsConfigError(ConfigFileError):
    """marketing/tags.yaml is not valid; the message names the file, the line and the field."""


def load_tags_config(path: Path) -> TagsConfig:
    return load_yaml_model(path, TagsConfig, error=TagsConfigError)


@dataclass(frozen=True)
class CompiledCondition:
    tag: str
    description: str
    condition_no: int
    field: str
    operator: str
    value_num: float | None
    value_text: str | None


def compile_rules(config: TagsConfig) -> list[CompiledCondition]:
    rows: list[CompiledCondition] = []
    for tag in config.tags:
        for number, condition in enumerate(tag.when, start=1):
            cond = condition.as_field_condition() if isinstance(condition, PredicateCondition) else condition
            value_num: float | None = None
            value_text: str | None = None
            if isinstance(cond.value, list):
                value_text = LIST_DELIMITER + LIST_DELIMITER.join(cond.value) + LIST_DELIMITER
            elif isinstance(cond.value, str):
                value_text = cond.value
            elif cond.value is not None:
                value_num = float(cond.value)
            rows.append(CompiledCondition(tag.name, tag.description, number, cond.field, cond.op, value_num, value_text))
    return rows


TAG_RULES_SCHEMA = pa.schema([
    ("tag", pa.string()),
    ("description", pa.string()),
    ("condition_no", pa.int32()),
    ("field", pa.string()),
    ("operator", pa.string()),
    ("value_num", pa.float64()),
    ("value_text", pa.string()),
])


def write_tag_rules(con: Warehouse | object, rules: list[CompiledCondition], loaded_at: datetime) -> int:
    """Replace the contents of tag_rules in one transaction (config is small; the table is the contract).

    `con` is a Warehouse (or a raw DuckDB connection, wrapped); tag_rules must exist (migrations)."""
    warehouse = as_warehouse(con)
    columns = {name: [getattr(r, name) for r in rules] for name in TAG_RULES_SCHEMA.names}
    staged = pa.table(columns, schema=TAG_RULES_SCHEMA).append_column(
        "loaded_at", pa.array([loaded_at] * len(rules), pa.timestamp("us", tz="UTC")))
    with warehouse.transaction():
        warehouse.execute("delete from tag_rules")
        warehouse.write_arrow(staged, "tag_rules")
    return len(rules)
