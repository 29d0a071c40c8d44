"""The one audience language: journey `audience`, banner `targeting` and task `recall.filters`.

The same keys, operators and errors in all three files, compiled by `audience_sql` to one boolean SQL
expression over a customer_profile row. Marketer text never becomes SQL: values are bound parameters
($p0, $p1, ...) and identifiers come only from the validated profile column list, double-quoted.
Relative-time filters (`within`, `older_than`) count back from the caller's $as_of, never the clock.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from crmflow.journeys.durations import parse_duration, sql_interval
from crmflow.warehouse.sql import quote_identifier as quote_ident

LifecycleStage = Literal["prospect", "new", "active", "silent", "churned", "reactivated"]
ValueTier = Literal["high", "medium", "low"]
B2bGrade = Literal["A", "B", "C", "D", "E"]
FilterOp = Literal["=", "!=", "in", "not in", "<", "<=", ">", ">=", "between", "is null", "is not null",
                   "within", "older_than"]
# Operators whose value is a duration counted back from the as-of (never the wall clock).
RELATIVE_OPS = ("within", "older_than")
Scalar = str | int | float | bool | date
Loc = tuple[str | int, ...]

# The tables an audience may read besides customer_profile; one that does not exist (yet) makes the
# filters on it match nobody (a `tags.none` filter then holds: nobody has a tag).
TAG_SOURCES = ("customer_tags", "journey_tags")  # rule/manual tags, and the journeys' add_tag rows
AUDIENCE_RELATIONS = ("customer_segments", "customer_lifecycle", "customer_value_tier", "customer_clusters",
                      *TAG_SOURCES)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def normalise_locale(value: str) -> str:
    """'de_DE' and 'de-de' are the same locale: compare lower-case with '-'."""
    return value.strip().replace("_", "-").lower()


class FieldFilter(Strict):
    """A comparison on one customer_profile column; compiled with bound parameters.

    `within` / `older_than` take a duration ('7d') relative to the as-of."""

    field: str
    op: FilterOp
    value: Scalar | list[Scalar] | None = None

    def age(self) -> timedelta:
        """The duration of a relative-time operator (validated, so it parses)."""
        return parse_duration(self.value)

    @model_validator(mode="after")
    def _value_matches_op(self) -> FieldFilter:
        if self.op in RELATIVE_OPS:
            try:
                age = self.age()
            except ValueError as exc:
                raise ValueError(f"operator '{self.op}' needs a duration value: {exc}") from None
            if not age:
                raise ValueError(f"operator '{self.op}' needs a duration above zero, e.g. '7d'")
        elif self.op in ("is null", "is not null"):
            if self.value is not None:
                raise ValueError(f"operator '{self.op}' takes no value")
        elif self.op in ("in", "not in"):
            if not isinstance(self.value, list) or not self.value:
                raise ValueError(f"operator '{self.op}' needs a non-empty list value")
        elif self.op == "between":
            if not isinstance(self.value, list) or len(self.value) != 2:
                raise ValueError("operator 'between' needs a list of two values [low, high]")
        elif self.value is None or isinstance(self.value, list):
            raise ValueError(f"operator '{self.op}' needs a single value")
        return self


class SegmentRef(Strict):
    """{family: rfm, segment: champions}, or the text "rfm:champions"; a bare "champions" (no family)
    matches that segment in any family."""

    family: str | None = None
    segment: str = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            family, sep, segment = value.strip().rpartition(":")
            return {"family": family if sep else None, "segment": segment}
        return value


class TagFilter(Strict):
    """any: at least one of; all: every one of; none: not one of. A plain list means `any`."""

    any: list[str] = Field(default_factory=list)
    all: list[str] = Field(default_factory=list)
    none: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, value: Any) -> Any:
        return {"any": value} if isinstance(value, list) else value


class Audience(Strict):
    """Who is in. All given parts must hold (AND); inside a list, any value matches (OR). Empty: everyone."""

    segments: list[SegmentRef] = Field(default_factory=list)
    lifecycle_stages: list[LifecycleStage] = Field(default_factory=list)
    value_tiers: list[ValueTier] = Field(default_factory=list)
    b2b_grades: list[B2bGrade] = Field(default_factory=list)
    tags: TagFilter | None = None
    # customer_clusters (intelligence stage): cluster_id as text ("3") or cluster_label.
    clusters: list[str] = Field(default_factory=list)
    # customer_profile shorthands: customer_type, country, and locale ("de" matches every German
    # locale, "de-CH" only that one).
    customer_types: list[str] = Field(default_factory=list)
    countries: list[str] = Field(default_factory=list)
    locales: list[str] = Field(default_factory=list)
    fields: list[FieldFilter] = Field(default_factory=list)

    @field_validator("locales")
    @classmethod
    def _norm_locales(cls, values: list[str]) -> list[str]:
        return [normalise_locale(v) for v in values]

    def relations(self) -> set[str]:
        """The tables besides customer_profile this audience reads."""
        needed = {name for name, used in (
            ("customer_segments", self.segments), ("customer_lifecycle", self.lifecycle_stages),
            ("customer_value_tier", self.value_tiers or self.b2b_grades), ("customer_clusters", self.clusters),
        ) if used}
        if self.tags is not None and (self.tags.any or self.tags.all or self.tags.none):
            needed.update(TAG_SOURCES)
        return needed


def audience_problems(audience: Audience, loc: Loc, columns: dict[str, str]) -> list[tuple[Loc, str]]:
    """Mistakes the schema cannot see (profile fields, operators on them) as (YAML location, message)."""
    return filter_problems(audience.fields, (*loc, "fields"), columns)


def filter_problems(filters: list[FieldFilter], loc: Loc, columns: dict[str, str]) -> list[tuple[Loc, str]]:
    errors: list[tuple[Loc, str]] = []
    for i, f in enumerate(filters):
        if f.field not in columns:
            errors.append(((*loc, i, "field"),
                           f"unknown profile field {f.field!r}; known fields: {', '.join(sorted(columns))}"))
        elif f.op in RELATIVE_OPS and not is_time_column(columns[f.field]):
            times = ", ".join(sorted(c for c, t in columns.items() if is_time_column(t)))
            errors.append(((*loc, i, "op"), f"operator '{f.op}' needs a date or timestamp field; "
                           f"{f.field!r} is {columns[f.field]} (date/timestamp fields: {times})"))
    return errors


@dataclass
class Params:
    """Collects bound parameters under unique names while SQL fragments are built."""

    values: dict[str, Any] = field(default_factory=dict)
    prefix: str = "p"

    def add(self, value: Any) -> str:
        name = f"{self.prefix}{len(self.values)}"
        self.values[name] = value
        return f"${name}"

    def add_list(self, values: list[Any]) -> str:
        return "(" + ", ".join(self.add(v) for v in values) + ")"


def _typed(params: Params, value: Any, column_type: str) -> str:
    # Parameters arrive as VARCHAR/INTEGER etc.; cast to the column's type so dates and
    # timestamps compare as such (neither engine compares DATE with VARCHAR implicitly).
    return f"cast({params.add(value)} as {column_type})"


def _moment_of(column_type: str) -> str | None:
    """How to turn a TIMESTAMPTZ moment `{}` into the column's own type (so the column side stays
    bare and can use min/max statistics), or None for a column that is not a date or a timestamp."""
    ctype = column_type.upper()
    if ctype == "DATE":
        return "cast(timezone('UTC', {}) as date)"  # dates compare with the UTC date of the moment
    if ctype.startswith("TIMESTAMP") and ("WITH TIME ZONE" in ctype or ctype == "TIMESTAMPTZ"):
        return "{}"
    if ctype.startswith("TIMESTAMP"):
        return "timezone('UTC', {})"  # a naive timestamp is read as UTC
    return None


def is_time_column(column_type: str) -> bool:
    return _moment_of(column_type) is not None


def relative_time_sql(flt: FieldFilter, col: str, column_type: str) -> str:
    """`within` / `older_than` against $as_of. within 7d: as_of - 7d <= col <= as_of (a future value
    is not "within the last 7 days"); older_than 30d: col < as_of - 30d. NULL matches neither."""
    moment = _moment_of(column_type)
    if moment is None:
        raise ValueError(f"operator '{flt.op}' needs a date or timestamp field; {flt.field!r} is {column_type}")
    since = moment.format(f"($as_of - {sql_interval(flt.age())})")
    if flt.op == "older_than":
        return f"{col} < {since}"
    return f"{col} >= {since} and {col} <= {moment.format('$as_of')}"


def field_filter_sql(flt: FieldFilter, alias: str, columns: dict[str, str], params: Params) -> str:
    if flt.field not in columns:
        raise ValueError(f"unknown profile field {flt.field!r}")
    col = f"{alias}.{quote_ident(flt.field)}"
    ctype = columns[flt.field]
    if flt.op in RELATIVE_OPS:
        return relative_time_sql(flt, col, ctype)
    if flt.op == "is null":
        return f"{col} is null"
    if flt.op == "is not null":
        return f"{col} is not null"
    if flt.op in ("in", "not in"):
        items = ", ".join(_typed(params, v, ctype) for v in flt.value)  # type: ignore[union-attr]
        return f"{col} {flt.op} ({items})"
    if flt.op == "between":
        low, high = flt.value  # type: ignore[misc]
        return f"{col} between {_typed(params, low, ctype)} and {_typed(params, high, ctype)}"
    return f"{col} {flt.op} {_typed(params, flt.value, ctype)}"


def segments_sql(segments: list[Any], user_expr: str, params: Params) -> str:
    """The user is in one of `segments` (anything with .family and .segment; family None: any family)."""
    ors = " or ".join(
        f"(s.segment = {params.add(s.segment)})" if s.family is None
        else f"(s.segment_family = {params.add(s.family)} and s.segment = {params.add(s.segment)})"
        for s in segments
    )
    return f"{user_expr} in (select s.user_id from customer_segments s where s.user_id is not null and ({ors}))"


def _tags_sql(tags: TagFilter, uid: str, params: Params, present: Collection[str] | None) -> list[str]:
    sources = [t for t in TAG_SOURCES if present is None or t in present]
    parts: list[str] = []
    if not sources:  # no tag table yet: nobody has a tag
        return (["false"] if tags.any or tags.all else []) + (["true"] if tags.none else [])
    active = " union all ".join(
        "select user_id, tag from customer_tags" if t == "customer_tags"
        else "select user_id, tag from journey_tags where removed_at is null" for t in sources)
    active = f"({active})"
    if tags.any:
        parts.append(f"{uid} in (select t.user_id from {active} t where t.user_id is not null "
                     f"and t.tag in {params.add_list(tags.any)})")
    if tags.all:
        parts.append(f"{uid} in (select t.user_id from {active} t where t.user_id is not null "
                     f"and t.tag in {params.add_list(tags.all)} "
                     f"group by t.user_id having count(distinct t.tag) = {len(set(tags.all))})")
    if tags.none:
        parts.append(f"{uid} not in (select t.user_id from {active} t where t.user_id is not null "
                     f"and t.tag in {params.add_list(tags.none)})")
    return parts


def audience_sql(audience: Audience, alias: str, columns: dict[str, str], params: Params,
                 present: Collection[str] | None = None) -> str:
    """A boolean SQL expression over customer_profile row `alias`; 'true' when no filters.

    present: the relations that exist (None: all of AUDIENCE_RELATIONS). A filter on a table that
    does not exist yet (customer_clusters before the intelligence stage) matches nobody; the caller
    reports why (`missing_relations`)."""
    def has(name: str) -> bool:
        return present is None or name in present

    uid = f"{alias}.user_id"
    parts: list[str] = []
    if audience.clusters:
        if has("customer_clusters"):
            values = params.add_list(list(audience.clusters))
            parts.append(
                f"{uid} in (select cl.user_id from customer_clusters cl where cl.user_id is not null "
                f"and (cast(cl.cluster_id as varchar) in {values} or cl.cluster_label in {values}))"
            )
        else:
            parts.append("false")
    if audience.segments:
        parts.append(segments_sql(audience.segments, uid, params) if has("customer_segments") else "false")
    if audience.lifecycle_stages:
        parts.append(
            f"{uid} in (select lc.user_id from customer_lifecycle lc where lc.user_id is not null "
            f"and lc.lifecycle_stage in {params.add_list(list(audience.lifecycle_stages))})"
            if has("customer_lifecycle") else "false"
        )
    for column, values in (("value_tier", audience.value_tiers), ("b2b_grade", audience.b2b_grades)):
        if values:
            parts.append(
                f"{uid} in (select vt.user_id from customer_value_tier vt where vt.user_id is not null "
                f"and vt.{column} in {params.add_list(list(values))})"
                if has("customer_value_tier") else "false"
            )
    if audience.tags:
        parts.extend(_tags_sql(audience.tags, uid, params, present))
    for column, values in (("customer_type", audience.customer_types), ("country", audience.countries)):
        if values:
            parts.append(f"{alias}.{column} in {params.add_list(list(values))}")
    if audience.locales:
        locale = f"lower(replace({alias}.locale, '_', '-'))"
        values = params.add_list(list(audience.locales))
        parts.append(f"{locale} in {values} or split_part({locale}, '-', 1) in {values}")
    for flt in audience.fields:
        parts.append(field_filter_sql(flt, alias, columns, params))
    return " and ".join(f"({p})" for p in parts) if parts else "true"


def missing_relations(audience: Audience, present: Collection[str]) -> list[str]:
    """The tables `audience` reads that do not exist (tags: only when neither tag table exists)."""
    needed = audience.relations()
    missing = sorted(n for n in needed - set(TAG_SOURCES) if n not in present)
    if needed & set(TAG_SOURCES) and not any(t in present for t in TAG_SOURCES):
        missing.append("customer_tags")
    return missing
