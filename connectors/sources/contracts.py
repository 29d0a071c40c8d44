"""The landing contracts of events, registrations and orders: fields, rules (in order), typed outputs.

The rule order here is the documented order (docs/data-contracts.md, section 2): a structural
failure (too_large, unclosed_quote, invalid_utf8, unparseable_json, not_an_object, invalid_id,
invalid_header, malformed_csv, wrong_column_count, control_character) comes first, then these
rules top to bottom; the first failing rule wins.
"""

from __future__ import annotations

from connectors.sources.rules import Rule, SourceContract
from connectors.sources.sql_parts import (
    E164_RE,
    EMAIL_RE,
    INT_RE,
    bool_ok,
    bool_value,
    date_ok,
    sql_str,
    ts_in_range,
    ts_ok,
)

EVENT_TYPES = ("track", "identify", "page", "screen")
CUSTOMER_TYPES = ("individual", "business")
# overdue: an unpaid invoice past its due date (B2B); a penalty in the B2B grading (dbt var
# cancelled_order_statuses). Keep dbt_project.yml *_order_statuses covering exactly these.
ORDER_STATUSES = ("paid", "refunded", "cancelled", "overdue")
MAX_AMOUNT = "9999999999999999.99"  # decimal(18, 2)


def _in(expr: str, values: tuple[str, ...]) -> str:
    return f"{expr} in ({', '.join(sql_str(v) for v in values)})"


def _timestamp_rules(name: str, required: bool, require_offset: bool,
                     latest: str = "latest") -> tuple[Rule, ...]:
    col = f'"{name}"'
    missing = f"{col} is null or " if required else f"{col} is not null and "
    return (
        Rule("bad_timestamp", name, f"({missing}not {ts_ok(col, require_offset)})"),
        Rule("timestamp_out_of_range", name, f"({col} is not null and not {ts_in_range(col, latest)})"),
    )


def _items_ok(expr: str) -> str:
    """A JSON array of objects {sku: non-empty string, category: string|null (optional),
    quantity: integer > 0, unit_price: number >= 0}; sku, quantity and unit_price are required.

    The array is parsed once, straight into its items' four fields as JSON text (minified), and the
    JSON types are read from that text: a string starts with '"'; numbers are typed by json_type on
    the small number text. A non-object item reads as all-NULL fields, so it fails (sku is required).
    (It was nine path lookups per item, each a parse; then a parse of the array plus one per item.)
    """
    item_fields = sql_str('[{"sku": "JSON", "category": "JSON", "quantity": "JSON", "unit_price": "JSON"}]')
    item_ok = (
        "coalesce(starts_with(s.sku, '\"') and trim(json_extract_string(s.sku, '$')) <> ''"
        " and (s.category is null or starts_with(s.category, '\"'))"
        " and json_type(s.quantity) in ('BIGINT', 'UBIGINT') and try_cast(s.quantity::varchar as double) > 0"
        " and json_type(s.unit_price) in ('BIGINT', 'UBIGINT', 'DOUBLE')"
        " and try_cast(s.unit_price::varchar as double) >= 0, false)"
    )
    items = f"json_transform({expr}, {item_fields})"
    # CASE, not AND: DuckDB evaluates both sides of AND, and json_transform fails on invalid JSON.
    # A non-object item gives a struct of NULLs (a JSON null item a NULL struct): item_ok is false.
    return (
        f"(case when {expr} is null then true"
        f" when not json_valid({expr}) or not regexp_matches({expr}, '^[ \\t\\r\\n]*\\[') then false"
        f" else coalesce(list_bool_and(list_transform({items}, lambda s: {item_ok})), true)"
        " end)"
    )


def _amount_ok(expr: str) -> str:
    value = f"try_cast({expr} as decimal(38, 6))"
    return (f"({value} is not null and {value} = round({value}, 2)"
            f" and abs({value}) <= {MAX_AMOUNT})")


EVENTS = SourceContract(
    source="events",
    formats=("jsonl",),
    fields=("message_id", "type", "event", "user_id", "anonymous_id", "timestamp"),
    json_fields=("properties", "context"),
    rules=(
        Rule("missing_message_id", "message_id", "message_id is null"),
        Rule("invalid_type", "type", f"(type is null or not {_in('type', EVENT_TYPES)})"),
        Rule("missing_event_name", "event", "(type = 'track' and event is null)"),
        Rule("missing_identity", "user_id", "(user_id is null and anonymous_id is null)"),
        # identify is what links an anonymous_id to a user: it needs the user_id
        Rule("missing_identity", "user_id", "(type = 'identify' and user_id is null)"),
        # an event already happened: never after the run's as-of + clock skew (time_range.py)
        *_timestamp_rules("timestamp", required=True, require_offset=True, latest="latest_event"),
        # properties/context are JSON as json_transform wrote it (minified; JSON null reads as NULL):
        # an object is exactly a value starting with "{", no second parse needed
        Rule("invalid_properties", "properties", "(properties is not null and not starts_with(properties, '{'))"),
        Rule("invalid_context", "context", "(context is not null and not starts_with(context, '{'))"),
    ),
    outputs=(
        ("message_id", "message_id"),
        ("type", "type"),
        ("event", "event"),
        ("user_id", "user_id"),
        ("anonymous_id", "anonymous_id"),
        ("event_at", '"timestamp"::timestamptz'),
        ("properties", "properties::json"),
        ("context", "context::json"),
    ),
    key="message_id",
    version=None,
    id_fields=("message_id", "user_id", "anonymous_id"),
    json_outputs=("properties", "context"),
)

REGISTRATION_FIELDS = (
    "user_id", "registered_at", "updated_at", "email", "phone", "first_name", "country", "city",
    "locale", "timezone", "acquisition_channel", "customer_type", "company_name", "industry",
    "employees", "email_opt_in", "sms_opt_in", "push_opt_in", "push_token", "birth_date", "gender",
    "contract_end_date", "referred_by",
)

REGISTRATIONS = SourceContract(
    source="registrations",
    formats=("csv", "jsonl"),
    fields=REGISTRATION_FIELDS,
    json_fields=(),
    rules=(
        Rule("missing_user_id", "user_id", "user_id is null"),
        *_timestamp_rules("registered_at", required=True, require_offset=False),
        *_timestamp_rules("updated_at", required=False, require_offset=False),
        Rule("invalid_email", "email", f"(email is not null and not regexp_full_match(email, {sql_str(EMAIL_RE)}))"),
        Rule("invalid_phone", "phone", f"(phone is not null and not regexp_full_match(phone, {sql_str(E164_RE)}))"),
        Rule("invalid_customer_type", "customer_type",
             f"(customer_type is null or not {_in('customer_type', CUSTOMER_TYPES)})"),
        *(Rule("invalid_boolean", f, f"not {bool_ok(f)}") for f in ("email_opt_in", "sms_opt_in", "push_opt_in")),
        Rule("invalid_number", "employees",
             f"(employees is not null and not (regexp_full_match(employees, {sql_str(INT_RE)})"
             " and try_cast(employees as double) <= 2147483647))"),
        *(Rule("invalid_date", f, f"not {date_ok(f)}") for f in ("birth_date", "contract_end_date")),
        Rule("invalid_timezone", "timezone",
             "(timezone is not null and timezone not in (select name from _ref_timezones))"),
    ),
    outputs=(
        ("user_id", "user_id"),
        ("registered_at", "registered_at::timestamptz"),
        # no updated_at: the registration itself is the only version so far
        ("updated_at", "coalesce(updated_at, registered_at)::timestamptz"),
        *((f, f) for f in ("email", "phone", "first_name", "country", "city", "locale", "timezone",
                           "acquisition_channel", "customer_type", "company_name", "industry")),
        ("employees", "employees::double::integer"),
        ("email_opt_in", bool_value("email_opt_in")),
        ("sms_opt_in", bool_value("sms_opt_in")),
        ("push_opt_in", bool_value("push_opt_in")),
        ("push_token", "push_token"),
        ("birth_date", "birth_date::date"),
        ("gender", "gender"),
        ("contract_end_date", "contract_end_date::date"),
        ("referred_by", "referred_by"),
    ),
    key="user_id",
    version="updated_at",
    id_fields=("user_id", "referred_by"),
)

ORDERS = SourceContract(
    source="orders",
    formats=("csv", "jsonl"),
    fields=("order_id", "user_id", "ordered_at", "updated_at", "status", "amount", "currency", "items",
            "channel"),
    json_fields=(),
    rules=(
        Rule("missing_order_id", "order_id", "order_id is null"),
        Rule("missing_user_id", "user_id", "user_id is null"),
        *_timestamp_rules("ordered_at", required=True, require_offset=False),
        *_timestamp_rules("updated_at", required=False, require_offset=False),
        Rule("unknown_status", "status", f"(status is null or not {_in('status', ORDER_STATUSES)})"),
        Rule("invalid_amount", "amount", f"not {_amount_ok('amount')}"),
        Rule("negative_amount", "amount", "try_cast(amount as decimal(38, 6)) < 0"),
        Rule("invalid_currency", "currency",
             "(currency is null or currency not in (select code from _ref_currencies))"),
        Rule("invalid_items", "items", f"not {_items_ok('items')}"),
    ),
    outputs=(
        ("order_id", "order_id"),
        ("user_id", "user_id"),
        ("ordered_at", "ordered_at::timestamptz"),
        ("updated_at", "coalesce(updated_at, ordered_at)::timestamptz"),
        ("status", "status"),
        ("amount", "amount::decimal(38, 6)::decimal(18, 2)"),
        ("currency", "currency"),
        ("items", "json(items)"),  # minified, so a re-delivery in another format compares equal
        ("channel", "channel"),
    ),
    key="order_id",
    version="updated_at",
    id_fields=("order_id", "user_id"),
    json_outputs=("items",),
)

CONTRACTS: dict[str, SourceContract] = {c.source: c for c in (EVENTS, REGISTRATIONS, ORDERS)}
