"""Registration rows (CSV for most users, JSONL for app sign-ups, plus later update files)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crmflow.generator.format import (
    int_str,
    iso_date,
    iso_utc,
    iso_with_offset,
    jbool,
    join,
    lookup,
    padded,
    utc_offset_minutes,
    with_nulls,
)
from crmflow.generator.table import Batch, TextTable, alternate, clean_and_dirty_batches, set_value
from crmflow.generator.world import ACQUISITION, DAY, LOCALES, TIMEZONES, TZ_PLACES, Users

COLUMNS = [
    "user_id", "registered_at", "updated_at", "email", "phone", "first_name", "country", "city", "locale",
    "timezone", "acquisition_channel", "customer_type", "company_name", "industry", "employees",
    "email_opt_in", "sms_opt_in", "push_opt_in", "push_token", "birth_date", "gender",
    "contract_end_date", "referred_by",
]
RAW_JSON = {"employees", "email_opt_in", "sms_opt_in", "push_opt_in"}

ZH_NAMES = (("伟", "wei"), ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("磊", "lei"),
            ("洋", "yang"), ("艳", "yan"), ("勇", "yong"), ("杰", "jie"), ("婷", "ting"), ("涛", "tao"))
EN_NAMES = ("James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "David",
            "Emma", "Olivia", "Noah", "Liam", "Ava")
ZH_COMPANY = ("华信", "长城", "东方", "瑞丰", "新纪元", "海川")
EN_COMPANY = ("Northwind", "Contoso", "Globex", "Initech", "Umbrella", "Stark")
COMPANY_KIND = ("Trading", "Tech", "Foods", "Logistics", "Studio")
INDUSTRIES = ("retail", "manufacturing", "hospitality", "education", "healthcare", "technology", "logistics")
GENDERS = ("female", "male", "non_binary")
# E.164 per country: prefix (incl. a valid leading digit) + number of further digits.
PHONE_PLAN = {"CN": ("+861", 10), "SG": ("+659", 7), "US": ("+12", 9), "GB": ("+447", 9),
              "IS": ("+3546", 6), "GH": ("+2332", 8)}
B2C_DOMAINS = ("example.com", "example.net", "example.org")
PLACES = [place for places in TZ_PLACES for place in places]
PLACE_START = np.cumsum([0] + [len(p) for p in TZ_PLACES])[:-1]
PLACE_COUNT = np.array([len(p) for p in TZ_PLACES])

DEFECTS = {
    "missing_user_id": lambda t, r: set_value(t, "user_id", None),
    "bad_timestamp": lambda t, r: alternate(t, "registered_at", "yesterday", "2026-02-30T25:61:00Z"),
    "invalid_email": lambda t, r: alternate(t, "email", "not-an-email", "someone@"),
    "invalid_phone": lambda t, r: alternate(t, "phone", "0138-0000-0000", "12345"),
    "invalid_customer_type": lambda t, r: set_value(t, "customer_type", "vip"),
    "invalid_boolean": lambda t, r: set_value(t, "email_opt_in", "maybe", quoted=True),
    "invalid_number": lambda t, r: set_value(t, "employees", "many", quoted=True),
    "invalid_date": lambda t, r: set_value(t, "birth_date", "1990-13-45"),
    "invalid_timezone": lambda t, r: set_value(t, "timezone", "Mars/Olympus_Mons"),
    "wrong_column_count": lambda t, r: setattr(t, "extra_csv_field", np.ones(len(t), dtype=bool)),
}


def scramble(values: np.ndarray, salt: int) -> np.ndarray:
    """A bijection on 0..10^12-1 (multiplier coprime to 10): opaque but unique identifiers."""
    return (values.astype(np.int64) * 2654435761 + salt) % 10**12


def user_ids(users: Users) -> pa.Array:
    return padded("u", users.index, 8)


def registration_table(rng: np.random.Generator, users: Users, end_s: int) -> tuple[TextTable, np.ndarray]:
    """Clean rows, one per user. -> (table, timestamps in the user's own zone or UTC per format)."""
    n = len(users)
    ids = user_ids(users)
    place = PLACE_START[users.tz] + users.place % PLACE_COUNT[users.tz]
    country_codes = [p[0] for p in PLACES]
    country = lookup(country_codes, place)
    name_pick = rng.integers(0, 1000, n)
    zh_name = name_pick % len(ZH_NAMES)
    en_name = name_pick % len(EN_NAMES)
    first_name = pc.if_else(pa.array(users.zh), lookup([z for z, _ in ZH_NAMES], zh_name), lookup(EN_NAMES, en_name))
    ascii_name = pc.if_else(pa.array(users.zh), lookup([a for _, a in ZH_NAMES], zh_name),
                            pc.utf8_lower(lookup(EN_NAMES, en_name)))
    company_no = rng.integers(0, 500, n)
    company_word = pc.if_else(pa.array(users.zh), lookup(ZH_COMPANY, company_no % len(ZH_COMPANY)),
                              lookup(EN_COMPANY, company_no % len(EN_COMPANY)))
    company = join(company_word, " ", lookup(COMPANY_KIND, company_no % len(COMPANY_KIND)), " ",
                   pc.utf8_lpad(int_str(company_no), 3, "0"))
    domain = pc.if_else(pa.array(users.is_business), join("corp", int_str(company_no), ".example.com"),
                        lookup(B2C_DOMAINS, rng.integers(0, 3, n)))
    email = join(ascii_name, ".", int_str(users.index), "@", domain)
    phone = _phones(country_codes, place, users.index)
    employees = np.clip(rng.lognormal(3.5, 1.3, n), 2, 20000).astype(np.int64)
    birth_s = users.registered_s - (rng.uniform(18, 70, n) * 365.25 * DAY).astype(np.int64)
    contract_end = users.registered_s + ((365 + rng.integers(-60, 180, n)) * DAY)
    referred = _referrers(rng, users)
    updated_s = users.registered_s + rng.integers(0, 600, n)
    b2b = users.is_business
    values = {
        "user_id": ids,
        "registered_at": iso_utc(users.registered_s),
        "updated_at": iso_utc(updated_s),
        "email": email,
        "phone": with_nulls(phone, rng.random(n) < 0.85),
        "first_name": first_name,
        "country": country,
        "city": lookup([p[1] for p in PLACES], place),
        "locale": lookup(LOCALES, np.where(users.zh, 0, 1)),
        "timezone": lookup(TIMEZONES, users.tz),
        "acquisition_channel": lookup(ACQUISITION, users.acquisition),
        "customer_type": lookup(("individual", "business"), b2b.astype(np.int64)),
        "company_name": with_nulls(company, b2b),
        "industry": with_nulls(lookup(INDUSTRIES, company_no % len(INDUSTRIES)), b2b),
        "employees": with_nulls(int_str(employees), b2b),
        "email_opt_in": jbool(users.email_opt_in),
        "sms_opt_in": jbool(users.sms_opt_in),
        "push_opt_in": jbool(users.push_opt_in),
        "push_token": with_nulls(padded("fcm-", scramble(users.index, 7), 12), users.push_opt_in),
        "birth_date": with_nulls(iso_date(birth_s), rng.random(n) < 0.7),
        "gender": with_nulls(lookup(GENDERS, rng.choice(3, n, p=[0.49, 0.49, 0.02])), rng.random(n) < 0.6),
        "contract_end_date": with_nulls(iso_date(contract_end), b2b & (rng.random(n) < 0.6)),
        "referred_by": with_nulls(padded("u", np.maximum(referred, 0), 8), referred >= 0),
    }
    kinds = {c: ("raw" if c in RAW_JSON else "str") for c in COLUMNS}
    return TextTable(COLUMNS, values, kinds), updated_s


def _phones(country_codes: list[str], place: np.ndarray, index: np.ndarray) -> pa.Array:
    place_country = np.array(country_codes)[place]
    out = pa.nulls(len(place), pa.string())
    for country, (prefix, width) in PHONE_PLAN.items():  # one pass per country
        mask = place_country == country
        number = join(prefix, pc.utf8_lpad(int_str(scramble(index, 11) % 10**width), width, "0"))
        out = pc.if_else(pa.array(mask), number, out)
    return out


def _referrers(rng: np.random.Generator, users: Users) -> np.ndarray:
    """Referral sign-ups name an earlier-registered user (global index), others -1."""
    order = np.argsort(users.registered_s, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    referral = (users.acquisition == ACQUISITION.index("referral")) & (rank > 0)
    referrer_rank = (rng.random(len(order)) * rank).astype(np.int64)
    return np.where(referral, users.index[order[referrer_rank]], -1)


def registration_batches(
    rng: np.random.Generator, users: Users, end_s: int, dirty_fraction: float,
) -> tuple[list[Batch], dict[str, int]]:
    clean, updated_s = registration_table(rng, users, end_s)
    n = len(users)
    # JSONL (app) rows carry local-offset timestamps; CSV rows carry UTC "Z".
    offsets = utc_offset_minutes(users.registered_s, users.tz, TIMEZONES)
    as_jsonl = users.jsonl_source
    local_reg = iso_with_offset(users.registered_s, offsets)
    clean.values["registered_at"] = pc.if_else(pa.array(as_jsonl), local_reg, clean.values["registered_at"])
    clean.values["updated_at"] = pc.if_else(pa.array(as_jsonl), iso_with_offset(updated_s, utc_offset_minutes(updated_s, users.tz, TIMEZONES)),
                                            clean.values["updated_at"])

    # Later updates: consent changes and new e-mail addresses, with a newer updated_at.
    upd = np.flatnonzero(rng.random(n) < 0.05)
    upd_s = users.registered_s[upd] + (rng.random(len(upd)) * (end_s - users.registered_s[upd])).astype(np.int64)
    updates = clean.take(upd)
    updates.values["registered_at"] = iso_utc(users.registered_s[upd])
    updates.values["updated_at"] = iso_utc(upd_s)
    flip = rng.random(len(upd)) < 0.6
    updates.values["email_opt_in"] = pc.if_else(pa.array(flip), jbool(~users.email_opt_in[upd]),
                                                updates.values["email_opt_in"])
    updates.values["email"] = pc.if_else(pa.array(flip), updates.values["email"],
                                         join("new.", updates.values["email"]))

    batches, dirty_counts = clean_and_dirty_batches(
        rng, "registrations", clean, users.registered_s, as_jsonl, dirty_fraction, DEFECTS, "user_id")
    batches.append(Batch("registrations", "registrations-updates", "csv", upd_s, updates.csv_lines(),
                         updates.header()))
    counts = {"registrations": n, "registration_updates": len(upd)}
    counts.update(dirty_counts)
    return batches, counts
