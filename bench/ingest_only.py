"""Time the ingest stage alone: the three landing sources into a fresh DuckDB warehouse, as the
ingest assets run them (open the warehouse, ingest_source, close), wall and CPU per source with the
close (DuckDB's checkpoint) apart, and the quarantine counts per reason and field, to compare runs.

    .venv/bin/python bench/ingest_only.py --landing /tmp/h4/landing --warehouse /tmp/h4/wh.duckdb \\
        --as-of 2026-11-21T00:00:00+00:00 [--json out.json]

The landing folder is one generated world (bench/run_bench.py --landing-cache keeps one). The load
average is printed before and after: on a shared machine, compare CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.sources.files import ingest_source  # noqa: E402
from crmflow.warehouse import open_warehouse  # noqa: E402

SOURCES = ("events", "registrations", "orders")


def ingest_once(landing: Path, warehouse: Path, as_of: datetime) -> dict[str, Any]:
    for suffix in ("", ".wal"):
        Path(f"{warehouse}{suffix}").unlink(missing_ok=True)
    figures: dict[str, Any] = {"load_before": os.getloadavg(), "sources": {}}
    cpu_started = time.process_time()
    for source in SOURCES:
        wall, cpu = time.perf_counter(), time.process_time()
        with open_warehouse(warehouse) as wh:
            stats = ingest_source(wh, source, landing, loaded_at=as_of)
            ingest_wall, ingest_cpu = time.perf_counter() - wall, time.process_time() - cpu
            quarantine = wh.fetch_rows(f"select reason, coalesce(field, ''), count(*) from quarantine_{source}"
                                       " group by reason, field order by reason, field")
            closing = time.perf_counter()
        figures["sources"][source] = {
            "ingest_wall": ingest_wall, "ingest_cpu": ingest_cpu, "close_wall": time.perf_counter() - closing,
            "stats": vars(stats), "quarantine": [list(row) for row in quarantine],
        }
    figures["wall"] = sum(s["ingest_wall"] + s["close_wall"] for s in figures["sources"].values())
    figures["cpu"] = time.process_time() - cpu_started
    figures["load_after"] = os.getloadavg()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--landing", type=Path, required=True)
    parser.add_argument("--warehouse", type=Path, required=True, help="a DuckDB file, replaced")
    parser.add_argument("--as-of", type=datetime.fromisoformat, required=True)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.as_of.tzinfo is None:
        parser.error("--as-of needs a UTC offset, e.g. 2026-11-21T00:00:00+00:00")
    figures = ingest_once(args.landing, args.warehouse, args.as_of)
    for source, s in figures["sources"].items():
        st = s["stats"]
        print(f"{source}: ingest {s['ingest_wall']:.2f} s (CPU {s['ingest_cpu']:.2f} s), close {s['close_wall']:.2f} s;"
              f" read {st['rows_read']:,} loaded {st['rows_loaded']:,} duplicates {st['duplicates_skipped']:,}"
              f" quarantined {st['rows_quarantined']:,}")
    load = "/".join(f"{v:.1f}" for v in figures["load_before"])
    print(f"total {figures['wall']:.2f} s wall, {figures['cpu']:.2f} s CPU; load before {load}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
