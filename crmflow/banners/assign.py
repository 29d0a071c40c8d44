"""Assign every user one creative per slot, set-based SQL that runs unchanged on DuckDB and PostgreSQL.

Config becomes small tables (creatives, per-locale content, slots); each live creative's targeting
compiles through the audience language journeys and task recall use (crmflow/audience.py) into one
select of its eligible users. Per (user, slot): an active journey override wins, else the
highest-priority eligible creative (ties: weighted md5 bucket, see tiebreak.py), else the slot's
default creative.

Content may say {sku} (text, deep_link): it becomes the user's top recommendation
(customer_recommendations rank 1), and such a creative is eligible only for users who have one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pyarrow as pa

from crmflow.audience import Params, audience_sql
from crmflow.banners.config import BannerConfig, Creative
from crmflow.banners.relations import existing_relations, replace_table, replace_temp_table
from crmflow.banners.tiebreak import sql_slot_bucket
from crmflow.journeys.columns import profile_columns
from crmflow.warehouse import Warehouse, as_warehouse

ASSIGNMENT_COLUMNS = (
    "user_id", "slot", "creative_id", "reason", "journey_id", "valid_until", "as_of",
    "content_locale", "image_url", "text", "deep_link",
)


@dataclass(frozen=True)
class AssignmentStats:
    users: int
    rows: int
    by_reason: dict[str, int]
    overrides_ignored: int  # overrides naming a creative that banners.yaml does not define
    missing_inputs: list[str]


def _creative_tables(config: BannerConfig, as_of: datetime, tz: ZoneInfo) -> tuple[pa.Table, ...]:
    """Config -> (creatives, content, slots) as Arrow tables. Small: one row per creative/locale."""
    today = as_of.astimezone(tz).date()
    defaults = {slot.default_creative for slot in config.slots}
    creatives: dict[str, list] = {k: [] for k in ("creative_id", "slot", "priority", "weight", "needs_rec",
                                                   "active", "is_default", "valid_until", "tied")}
    content: dict[str, list] = {k: [] for k in ("creative_id", "locale_key", "content_locale", "image_url",
                                                 "text", "deep_link")}
    for creative in config.creatives:
        active = _active(creative, today)
        # The window ends at the end of active_until in the business time zone.
        valid_until = None
        if creative.active_until is not None:
            end = datetime.combine(creative.active_until + timedelta(days=1), datetime.min.time(), tz)
            valid_until = end.astimezone(ZoneInfo("UTC"))
        for key, value in (("creative_id", creative.id), ("slot", creative.slot),
                           ("priority", creative.priority), ("weight", creative.weight),
                           ("needs_rec", creative.uses_sku()), ("active", active),
                           ("is_default", creative.id in defaults), ("valid_until", valid_until),
                           ("tied", False)):
            creatives[key].append(value)
        fallback = config.default_locale if config.default_locale in creative.content else sorted(creative.content)[0]
        for locale_key, item in [*creative.content.items(), ("*", creative.content[fallback])]:
            content["creative_id"].append(creative.id)
            content["locale_key"].append(locale_key)
            content["content_locale"].append(fallback if locale_key == "*" else locale_key)
            content["image_url"].append(item.image_url)
            content["text"].append(item.text)
            content["deep_link"].append(item.deep_link)
    # tied: another live creative of the same slot has the same priority, so the weighted md5
    # tie-break may be needed; every other (user, slot) takes its top-priority creative directly.
    live_groups: dict[tuple[str, int], int] = {}
    for i in range(len(creatives["creative_id"])):
        if creatives["active"][i] and not creatives["is_default"][i]:
            key = (creatives["slot"][i], creatives["priority"][i])
            live_groups[key] = live_groups.get(key, 0) + 1
    creatives["tied"] = [live_groups.get((slot, prio), 0) > 1
                         for slot, prio in zip(creatives["slot"], creatives["priority"], strict=True)]
    creatives_t = pa.table(creatives, schema=pa.schema([
        ("creative_id", pa.string()), ("slot", pa.string()), ("priority", pa.int64()), ("weight", pa.int64()),
        ("needs_rec", pa.bool_()), ("active", pa.bool_()), ("is_default", pa.bool_()),
        ("valid_until", pa.timestamp("us", tz="UTC")), ("tied", pa.bool_())]))
    content_t = pa.table(content, schema=pa.schema([(k, pa.string()) for k in content]))
    slots_t = pa.table({"slot": [s.id for s in config.slots],
                        "default_creative": [s.default_creative for s in config.slots]})
    return creatives_t, content_t, slots_t


def _eligible_sql(config: BannerConfig, as_of: datetime, tz: ZoneInfo, present: set[str],
                  columns: dict[str, str], params: Params) -> str:
    """(user_id, creative_id) for every live creative and every user its targeting admits: one select
    per creative, its targeting compiled by the audience language (crmflow/audience.py)."""
    today = as_of.astimezone(tz).date()
    defaults = {slot.default_creative for slot in config.slots}
    selects = []
    for creative in config.creatives:
        if creative.id in defaults or not _active(creative, today):
            continue
        where = audience_sql(creative.targeting, "p", columns, params, present)
        if creative.uses_sku():  # {sku} needs a top recommendation to fill in
            where += " and exists (select 1 from _bn_top_rec rec where rec.user_id = p.user_id)"
        selects.append(f"select p.user_id, cast({params.add(creative.id)} as varchar) as creative_id "
                       f"from customer_profile p where {where}")
    if not selects:
        return "select cast(null as varchar) as user_id, cast(null as varchar) as creative_id where false"
    return "\nunion all\n".join(selects)


def _active(creative: Creative, today: date) -> bool:
    return (creative.active_from is None or creative.active_from <= today) and (
        creative.active_until is None or today <= creative.active_until)


EMPTY_OVERRIDES = ("select cast(null as varchar) as user_id, cast(null as varchar) as slot, "
                   "cast(null as varchar) as creative_id, cast(null as varchar) as journey_id, "
                   "cast(null as timestamptz) as valid_until where false")

# Several journeys may override one slot: the most recently started step wins.
LIVE_OVERRIDES = """
    select user_id, slot, creative_id, journey_id, valid_until from (
        select o.*, row_number() over (partition by user_id, slot
                                       order by valid_from desc nulls last, journey_id nulls last,
                                                creative_id nulls last) as pick
        from journey_banner_overrides o
        where valid_from <= $as_of and (valid_until is null or valid_until > $as_of)
    ) as ranked
    where pick = 1"""

ASSIGNMENT_COLUMNS_DDL = (
    "user_id varchar, slot varchar, creative_id varchar, reason varchar, journey_id varchar, "
    "valid_until timestamptz, as_of timestamptz, content_locale varchar, image_url varchar, text varchar, "
    "deep_link varchar"
)


def compute_assignments(con: Warehouse | object, config: BannerConfig, as_of: datetime,
                        tz: ZoneInfo, target: str = "_banner_assignments_new") -> AssignmentStats:
    """Write the assignments as of `as_of` into table `target` (replaced) and return counts.

    `con` is a Warehouse (DuckDB or PostgreSQL) or a raw DuckDB connection."""
    wh = as_warehouse(con)
    present = existing_relations(wh)
    optional = ["customer_lifecycle", "customer_value_tier", "customer_segments", "customer_tags",
                "customer_clusters", "customer_recommendations", "journey_banner_overrides"]
    missing = [name for name in ["customer_profile", *optional] if name not in present]
    creatives_t, content_t, slots_t = _creative_tables(config, as_of, tz)
    for name, table in (("_bn_creatives", creatives_t), ("_bn_content", content_t), ("_bn_slots", slots_t)):
        wh.create_temp_table(name, table)

    if "customer_profile" not in present:
        wh.execute(f"drop table if exists {target}")
        wh.execute(f"create table {target} ({ASSIGNMENT_COLUMNS_DDL})")
        return AssignmentStats(0, 0, {}, 0, missing)

    replace_temp_table(wh, "_bn_users", "select distinct user_id, lower(replace(locale, '_', '-')) as locale "
                                        "from customer_profile")
    # The top recommendation per user (rank 1), read once: it fills {sku} and is the 'recommendation'
    # condition of {sku} creatives. Not read at all when no creative says {sku}.
    uses_sku = any(creative.uses_sku() for creative in config.creatives)
    if "customer_recommendations" in present and uses_sku:
        replace_temp_table(wh, "_bn_top_rec", "select user_id, min(sku) as sku from customer_recommendations "
                                              "where rank = 1 group by user_id")
    else:
        replace_temp_table(wh, "_bn_top_rec", "select cast(null as varchar) as user_id, "
                                              "cast(null as varchar) as sku where false")
    params = Params(values={"as_of": as_of}, prefix="bn")
    replace_temp_table(wh, "_bn_eligible",
                       _eligible_sql(config, as_of, tz, present, profile_columns(wh), params), params.values)
    if "journey_banner_overrides" in present:
        replace_temp_table(wh, "_bn_overrides", LIVE_OVERRIDES, {"as_of": as_of})
    else:
        replace_temp_table(wh, "_bn_overrides", EMPTY_OVERRIDES)
    overrides_ignored = wh.scalar(
        "select count(*) from _bn_overrides o "
        "where not exists (select 1 from _bn_creatives c where c.creative_id = o.creative_id)")

    bucket = sql_slot_bucket("user_id", "slot", wh.dialect)
    if uses_sku:
        text_sql = ("replace(cc.text, '{sku}', coalesce(rec.sku, '')) as text, "
                    "replace(cc.deep_link, '{sku}', coalesce(rec.sku, '')) as deep_link")
        rec_join = "left join _bn_top_rec rec on rec.user_id = r.user_id"
    else:  # no content says {sku}: nothing to fill
        text_sql, rec_join = "cc.text, cc.deep_link", ""
    replace_table(wh, target, f"""
        with live as (
            select * from _bn_creatives where active and not is_default
        ),
        eligible as (
            select e.user_id, c.slot, c.creative_id, c.priority, c.weight, c.valid_until, c.tied
            from _bn_eligible e
            join live c on c.creative_id = e.creative_id
        ),
        top as (
            -- tied is the same for every creative of one (slot, priority): it says whether the
            -- top-priority creative is alone at its priority or needs the weighted tie-break
            select user_id, slot, priority, creative_id, valid_until, tied
            from (select e.*, row_number() over (partition by user_id, slot
                                                 order by priority desc, creative_id) as pick
                  from eligible e) as ranked
            where pick = 1
        ),
        weighted as (
            select e.*,
                   cast(sum(e.weight) over (partition by e.user_id, e.slot order by e.creative_id
                                            rows between unbounded preceding and current row) as bigint)
                       as cum_weight,
                   cast(sum(e.weight) over (partition by e.user_id, e.slot) as bigint) as total_weight
            from eligible e
            join top t on t.user_id = e.user_id and t.slot = e.slot and t.priority = e.priority
            where t.tied
        ),
        picked as (
            select user_id, slot, creative_id, valid_until from top where not tied
            union all
            select user_id, slot, creative_id, valid_until from weighted
            where {bucket} % total_weight >= cum_weight - weight and {bucket} % total_weight < cum_weight
        ),
        resolved as (
            select u.user_id, s.slot, u.locale,
                   case when o.creative_id is not null then o.creative_id
                        when p.creative_id is not null then p.creative_id
                        else s.default_creative end as creative_id,
                   case when o.creative_id is not null then 'journey_override'
                        when p.creative_id is not null then 'targeted'
                        else 'default' end as reason,
                   o.journey_id,
                   case when o.creative_id is not null then o.valid_until else p.valid_until end as valid_until
            from _bn_users u
            cross join _bn_slots s
            left join (select o.* from _bn_overrides o join _bn_creatives c on c.creative_id = o.creative_id
                       -- a {{sku}} creative needs a recommendation, even when a journey forces it
                       where not c.needs_rec
                          or exists (select 1 from _bn_top_rec rec where rec.user_id = o.user_id)) o
              on o.user_id = u.user_id and o.slot = s.slot
            left join picked p on p.user_id = u.user_id and p.slot = s.slot
        ),
        content_choice as (
            -- per creative and user locale (a handful of distinct locales): exact, else language,
            -- else the creative's default content; then one join per (user, slot)
            select c.creative_id, l.locale, ct.content_locale, ct.image_url, ct.text, ct.deep_link
            from (select distinct creative_id from _bn_content) c
            cross join (select distinct locale from _bn_users) l
            left join _bn_content exact on exact.creative_id = c.creative_id and exact.locale_key = l.locale
            left join _bn_content lang on lang.creative_id = c.creative_id
                 and lang.locale_key = split_part(l.locale, '-', 1)
            join _bn_content ct on ct.creative_id = c.creative_id
                 and ct.locale_key = coalesce(exact.locale_key, lang.locale_key, '*')
        )
        select r.user_id, r.slot, r.creative_id, cast(r.reason as varchar) as reason, r.journey_id,
               r.valid_until, cast($as_of as timestamptz) as as_of, cc.content_locale, cc.image_url, {text_sql}
        from resolved r
        join content_choice cc on cc.creative_id = r.creative_id and cc.locale is not distinct from r.locale
        {rec_join}
    """, {"as_of": as_of})
    users, rows = wh.fetch_rows(f"select count(distinct user_id), count(*) from {target}")[0]
    by_reason = dict(wh.fetch_rows(f"select reason, count(*) from {target} group by reason order by 1"))
    return AssignmentStats(users, rows, by_reason, overrides_ignored, missing)
