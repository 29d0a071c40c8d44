"""Generator options for real-world shapes: one source only, orders without items, 1990s dates."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connectors.sources.files import ingest_source
from crmflow.generator import GeneratorConfig, generate_landing
from crmflow.warehouse import connect
from orchestration.cli import app

END = date(2026, 11, 20)


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith("_")}


def test_one_source_only_writes_the_same_rows_as_the_full_world(tmp_path: Path) -> None:
    full, only = tmp_path / "full", tmp_path / "orders"
    generate_landing(GeneratorConfig(users=200, days=60, end=END, seed=3), full)
    counts = generate_landing(GeneratorConfig(users=200, days=60, end=END, seed=3, sources=("orders",)), only)
    written = _tree(only)
    assert written and all(name.startswith("orders/") for name in written)
    assert written == {k: v for k, v in _tree(full).items() if k.startswith("orders/")}
    assert counts["event_rows"] == counts["registration_rows"] == 0
    manifest = json.loads((only / "_generator_manifest.json").read_text())
    # only the dirty rows actually written are announced: the e2e checks compare them with quarantine
    assert set(manifest["dirty_rows"]) == {"orders"}
    assert manifest["config"]["sources"] == ["orders"]
    assert counts["dirty_rows"] == sum(manifest["dirty_rows"]["orders"].values()) > 0


def test_orders_without_items_in_the_1990s_load_whole(tmp_path: Path) -> None:
    """The retailer shape of issue 17: 1997-1998 purchases, amounts only. Every clean row loads (none
    is out of range any more); exactly the deliberately bad rows are quarantined."""
    config = GeneratorConfig(users=150, days=540, end=date(1998, 6, 29), seed=5, sources=("orders",),
                             order_items=False)
    counts = generate_landing(config, tmp_path / "landing")
    with connect(tmp_path / "wh.duckdb") as con:
        stats = ingest_source(con, "orders", tmp_path / "landing", datetime(1998, 6, 30, tzinfo=UTC))
        years, with_items = con.execute(
            "select list(distinct year(ordered_at) order by 1), count(items) from raw_orders").fetchone()
        reasons = dict(con.execute("select reason, count(*) from quarantine_orders group by 1").fetchall())
    assert stats.balanced and stats.rows_loaded > 0
    assert years == [1997, 1998] and with_items == 0
    assert "timestamp_out_of_range" not in reasons
    assert sum(reasons.values()) == counts["dirty_rows"] > 0


@pytest.mark.parametrize("sources", [(), ("orders", "clicks")])
def test_unknown_or_no_source_is_one_clear_error(sources: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="sources must be a non-empty subset of events, registrations, orders"):
        GeneratorConfig(users=1, days=1, end=END, seed=1, sources=sources)


def test_cli_writes_only_the_asked_for_sources_and_rejects_unknown_ones(tmp_path: Path) -> None:
    bad = CliRunner().invoke(app, ["generate", "--sources", "orders,clicks", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "--sources 'orders,clicks'" in bad.stderr
    assert not (tmp_path / "bad" / "orders").exists()
    ok = CliRunner().invoke(app, ["generate", "--users", "30", "--days", "20", "--end", "1998-06-29",
                                  "--sources", "orders", "--no-order-items", "--out", str(tmp_path / "l")])
    assert ok.exit_code == 0, ok.stderr
    assert sorted(p.name for p in (tmp_path / "l").iterdir()) == ["_generator_manifest.json", "orders"]
    manifest = json.loads((tmp_path / "l" / "_generator_manifest.json").read_text())
    assert manifest["config"]["sources"] == ["orders"] and manifest["config"]["order_items"] is False
