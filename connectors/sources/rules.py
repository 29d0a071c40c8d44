"""Validation rules as SQL: an ordered list of (reason, field, failing-condition); first failing wins."""

from __future__ import annotations

from dataclasses import dataclass

from connectors.sources.sql_parts import sql_str


@dataclass(frozen=True)
class Rule:
    reason: str  # quarantine reason code (docs/data-contracts.md section 2)
    field: str | None  # the field that failed, reported in quarantine.field
    fails: str  # SQL boolean over the text fields; true means the row breaks this rule


@dataclass(frozen=True)
class SourceContract:
    """What one source's rows look like and how they are checked and typed."""

    source: str
    formats: tuple[str, ...]  # landing file extensions read for this source
    fields: tuple[str, ...]  # contract fields read as text
    json_fields: tuple[str, ...]  # fields kept as JSON (JSONL only)
    rules: tuple[Rule, ...]
    outputs: tuple[tuple[str, str], ...]  # raw column -> SQL expression over valid text fields
    key: str  # dedupe key
    version: str | None  # last-write-wins column (None: first copy wins)
    id_fields: tuple[str, ...] = ()  # must be strings or numbers in JSONL (invalid_id)
    json_outputs: tuple[str, ...] = ()  # raw columns of the warehouse's JSON type (json / jsonb)


def reason_sql(rules: tuple[Rule, ...]) -> tuple[str, str]:
    """Expressions for the reason and the field: a structural failure first, then the rules.

    They read `_rule` (rule_number_sql): each rule's condition is evaluated once per row, not once
    for the reason and again for the field (the CASE was a third of the validation's CPU time).
    """
    reasons = "[" + ", ".join(sql_str(r.reason) for r in rules) + "]::varchar[]"
    fields = "[" + ", ".join(sql_str(r.field) if r.field else "null" for r in rules) + "]::varchar[]"
    return (
        f"case when _rule = 0 then pre_reason else ({reasons})[_rule] end",
        f"case when _rule = 0 then pre_field else ({fields})[_rule] end",
    )


def rule_number_sql(rules: tuple[Rule, ...]) -> str:
    """0 for a structural failure, i (1-based) for the first failing rule, NULL when the row is valid."""
    whens = "\n".join(f"when {r.fails} then {i}" for i, r in enumerate(rules, start=1))
    return f"case when pre_reason is not null then 0\n{whens}\nend"


def validated_sql(contract: SourceContract, fields_relation: str) -> str:
    """Rows with reason/field (NULL when valid) and the typed raw columns (NULL when invalid)."""
    reason, field = reason_sql(contract.rules)
    outputs = ",\n".join(
        f"case when reason is null then {expr} end as {name}" for name, expr in contract.outputs
    )
    return f"""
    select file_id, line_number, case when reason is not null then raw_content end as raw_content,
           reason, field,
           {outputs}
    from (select *, {reason} as reason, {field} as field
          from (select *, {rule_number_sql(contract.rules)} as _rule from {fields_relation}))
    """
