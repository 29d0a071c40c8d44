"""The sample-data generator: determinism, the landing contract, dirty rows and realism."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from helpers_generator import (
    ORDER_COLUMNS,
    REG_COLUMNS,
    classify_order,
    classify_registration,
    event_census,
    parse_ts,
    read_table_rows,
)

from crmflow.generator import GeneratorConfig, generate_landing
from crmflow.generator.event_lines import DEFECTS as EVENT_DEFECTS
from crmflow.generator.order_rows import DEFECTS as ORDER_DEFECTS
from crmflow.generator.registrations import DEFECTS as REG_DEFECTS

END = date(2026, 11, 20)
SMALL = GeneratorConfig(users=300, days=60, end=END, seed=7)


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    out = tmp_path_factory.mktemp("landing_small")
    return out, generate_landing(SMALL, out)


@pytest.fixture(scope="module")
def medium(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    out = tmp_path_factory.mktemp("landing_medium")
    return out, generate_landing(GeneratorConfig(users=3000, days=240, end=END, seed=11), out)


def test_same_seed_same_bytes_other_seed_differs(small, tmp_path: Path) -> None:
    out, _ = small
    again = tmp_path / "again"
    generate_landing(SMALL, again)
    assert _tree(again) == _tree(out)
    other = tmp_path / "other"
    generate_landing(GeneratorConfig(users=300, days=60, end=END, seed=8), other)
    assert _tree(other)["events/events-2026-10.jsonl"] != _tree(out)["events/events-2026-10.jsonl"]


def test_layout_several_files_per_source_and_manifest(small) -> None:
    out, counts = small
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {n for n in names if n.startswith("events/")} >= {"events/events-2026-10.jsonl", "events/events-2026-11.jsonl"}
    assert any(n.startswith("registrations/") and n.endswith(".csv") for n in names)
    assert any(n.startswith("registrations/") and n.endswith(".jsonl") for n in names)
    assert any(n.startswith("registrations/registrations-updates-") for n in names)
    assert any(n.startswith("orders/") and n.endswith(".jsonl") for n in names)
    assert any(n.startswith("orders/orders-refunds-") for n in names)
    manifest = json.loads((out / "_generator_manifest.json").read_text())
    assert manifest["config"]["users"] == 300 and manifest["config"]["end"] == "2026-11-20"
    assert manifest["counts"]["dirty_rows"] == counts["dirty_rows"] > 0
    assert sum(manifest["files"].values()) == counts["event_rows"] + counts["registration_rows"] + counts["order_rows"]


def test_events_follow_contract_and_dirty_counts_match(small) -> None:
    out, counts = small
    reasons, duplicates, good = event_census(out / "events")
    expected = {r: counts[f"dirty.events.{r}"] for r in EVENT_DEFECTS}
    assert all(n >= 1 for n in expected.values()), expected
    assert dict(reasons) == expected
    assert duplicates == counts["event_duplicates"] > 0
    assert len(good) == counts["events"]
    start = datetime(2026, 9, 22, tzinfo=UTC)
    end = datetime(2026, 11, 21, tzinfo=UTC)
    names = Counter(e.get("event") for e in good if e["type"] == "track")
    for name in ("product_viewed", "product_added", "cart_abandoned", "checkout_started", "order_completed",
                 "banner_viewed", "banner_clicked", "email_opened", "app_opened"):
        assert names[name] > 0, name
    for event in good:
        assert start <= parse_ts(event["timestamp"]) < end
        assert event["timestamp"][-6] in "+-" and event["timestamp"][10] == "T"
        ctx = event["context"]
        assert ctx["device"]["type"] in ("mobile", "desktop", "tablet") and ctx["locale"] in ("zh-CN", "en-US")
        props = event["properties"]
        if event.get("event") in ("product_viewed", "product_added"):
            assert set(props) >= {"sku", "category", "price"}
        if event.get("event") in ("banner_viewed", "banner_clicked"):
            assert set(props) == {"slot", "creative_id"}
        if event.get("event") == "cart_abandoned":
            assert props["cart_value"] >= 0
    # Anonymous sessions that later identify: the anonymous_id of an identify also appears earlier
    # on events without a user_id.
    identify = {e["anonymous_id"]: e["user_id"] for e in good if e["type"] == "identify"}
    anonymous_only = {e["anonymous_id"] for e in good if "user_id" not in e}
    assert len(identify) == 300
    assert len(anonymous_only & set(identify)) > 50
    assert len(anonymous_only - set(identify)) > 20  # visitors who never sign up


def test_registrations_follow_contract_and_dirty_counts_match(small) -> None:
    out, counts = small
    rows = read_table_rows(out / "registrations", REG_COLUMNS)
    reasons = Counter(tag or classify_registration(row, from_csv) for tag, row, from_csv in rows)
    clean = reasons.pop(None)
    assert dict(reasons) == {r: counts[f"dirty.registrations.{r}"] for r in REG_DEFECTS}
    assert all(reasons[r] >= 1 for r in REG_DEFECTS)
    assert clean == counts["registrations"] + counts["registration_updates"]
    good = [row for tag, row, csv_ in rows if not tag and classify_registration(row, csv_) is None]
    assert {r["timezone"] for r in good} >= {"Asia/Shanghai", "America/New_York", "Europe/London", "UTC"}
    assert {r["customer_type"] for r in good} == {"individual", "business"}
    business = [r for r in good if r["customer_type"] == "business"]
    assert all(r["company_name"] and r["industry"] and r["employees"] for r in business)
    updated = Counter(r["user_id"] for r in good)
    assert sum(1 for n in updated.values() if n > 1) == counts["registration_updates"]


def test_orders_follow_contract_and_dirty_counts_match(small) -> None:
    out, counts = small
    rows = read_table_rows(out / "orders", ORDER_COLUMNS)
    reasons = Counter(tag or classify_order(row) for tag, row, _ in rows)
    clean = reasons.pop(None)
    assert dict(reasons) == {r: counts[f"dirty.orders.{r}"] for r in ORDER_DEFECTS}
    assert clean == counts["orders"] + counts["order_refund_rows"]
    good = [row for tag, row, _ in rows if not tag and classify_order(row) is None]
    by_id: dict[str, list[dict]] = {}
    for row in good:
        by_id.setdefault(row["order_id"], []).append(row)
    refunds = [rs for rs in by_id.values() if len(rs) == 2]
    assert len(refunds) == counts["order_refund_rows"] > 0
    for pair in refunds:
        first, second = sorted(pair, key=lambda r: r["status"])  # paid, then refunded
        assert (first["status"], second["status"]) == ("paid", "refunded")
        assert parse_ts(second["updated_at"]) > parse_ts(first["updated_at"])
    for row in good:
        items = row["items"] if isinstance(row["items"], list) else json.loads(row["items"])
        total = sum(round(float(i["unit_price"]) * i["quantity"], 2) for i in items)
        assert abs(total - float(row["amount"])) < 0.01 * len(items) + 0.001
        assert row["currency"] in ("CNY", "USD") and row["channel"] in ("web", "app", "store", "sales_rep")
    assert any(r["user_id"].startswith("g") for r in good)  # guest buyers: no registration


def test_realism_pareto_b2b_guests_repeat_buyers(medium) -> None:
    out, counts = medium
    regs = [row for tag, row, csv_ in read_table_rows(out / "registrations", REG_COLUMNS)
            if not tag and classify_registration(row, csv_) is None]
    latest = {r["user_id"]: r for r in regs}
    b2b_share = sum(r["customer_type"] == "business" for r in latest.values()) / len(latest)
    assert 0.11 < b2b_share < 0.19
    email = sum(r["email_opt_in"] in ("true", True) for r in latest.values()) / len(latest)
    assert 0.6 < email < 0.8
    orders = [row for tag, row, _ in read_table_rows(out / "orders", ORDER_COLUMNS)
              if not tag and classify_order(row) is None and row["status"] == "paid"]
    revenue: Counter = Counter()
    for row in orders:
        revenue[row["user_id"]] += float(row["amount"]) / (7 if row["currency"] == "CNY" else 1)
    ranked = sorted(revenue.values(), reverse=True)
    top20 = sum(ranked[: len(ranked) // 5]) / sum(ranked)
    assert 0.65 < top20 < 0.9, top20
    per_user = Counter(row["user_id"] for row in orders)
    assert sum(1 for n in per_user.values() if n > 1) / len(per_user) > 0.3  # repeat buyers
    assert any(u.startswith("g") for u in per_user)
    # Overdue invoices: business customers only, updated (due) 30 days after the order.
    overdue = [row for tag, row, _ in read_table_rows(out / "orders", ORDER_COLUMNS)
               if not tag and classify_order(row) is None and row["status"] == "overdue"]
    assert overdue and all(latest[r["user_id"]]["customer_type"] == "business" for r in overdue)
    assert all((parse_ts(r["updated_at"]) - parse_ts(r["ordered_at"])).days == 30 for r in overdue)
    # Registration cohorts grow: the last third of the window has more sign-ups than the first.
    reg_days = sorted(parse_ts(r["registered_at"]) for r in latest.values())
    span = (reg_days[-1] - reg_days[0]) / 3
    early = sum(d < reg_days[0] + span for d in reg_days)
    late = sum(d >= reg_days[-1] - span for d in reg_days)
    assert late > 1.5 * early


def test_incremental_day_writes_only_new_day_files(tmp_path: Path) -> None:
    config = GeneratorConfig(users=300, days=61, end=date(2026, 11, 21), seed=7, emit_since=date(2026, 11, 21))
    counts = generate_landing(config, tmp_path)
    files = [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()]
    assert "events/events-2026-11-21.jsonl" in files
    assert all("2026-11-21" in f for f in files)
    assert 0 < counts["event_rows"] < 300


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="users"):
        GeneratorConfig(users=0, days=10, end=END, seed=1)
    with pytest.raises(ValueError, match="dirty_fraction"):
        GeneratorConfig(users=10, days=10, end=END, seed=1, dirty_fraction=2)


def test_scale_20k_users_in_seconds(tmp_path: Path) -> None:
    started = time.perf_counter()
    counts = generate_landing(GeneratorConfig(users=20_000, days=365, end=END, seed=3), tmp_path)
    elapsed = time.perf_counter() - started
    print(f"generated 20k users, {counts['event_rows']} events, {counts['order_rows']} orders in {elapsed:.1f}s")
    assert counts["event_rows"] > 300_000 and counts["order_rows"] > 30_000
    assert elapsed < 60
