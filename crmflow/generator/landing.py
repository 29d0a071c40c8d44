"""Sample landing data for crmflow: registrations, orders and tracking events with deliberate defects.

`generate_landing(GeneratorConfig(...), out_dir)` writes

    <out>/events/events-YYYY-MM.jsonl                    Segment-like events, one file per month
    <out>/registrations/registrations-YYYY-MM.csv        most sign-ups (UTC "Z" timestamps)
    <out>/registrations/registrations-app-YYYY-MM.jsonl  app sign-ups (local-offset timestamps)
    <out>/registrations/registrations-updates-YYYY-MM.csv later changes (newer updated_at)
    <out>/orders/orders-YYYY-MM.csv, orders-app-YYYY-MM.jsonl, orders-refunds-YYYY-MM.csv
    <out>/_generator_manifest.json                       config, counts, dirty rows per reason

With `emit_since` only rows on or after that day are written, into per-day files
(events-YYYY-MM-DD.jsonl, ...): an "incremental day" on top of an earlier landing folder.
With `sources` only those kinds are written (an orders-only or events-only shop: the same
world, the other folders simply absent); with `order_items=False` orders carry no items (a purchase
history with amounts only). With `emit_until` only rows on or before that day are written. The simulated world depends on
(users, days, end, seed) only, so consecutive days of one world are: the history with
`emit_until=D` (monthly files), then day by day `emit_since=emit_until=D+k` with the same
(users, days, end, seed). Extending `days`/`end` instead simulates a different world (every
user's registration moves), so a "next day" made that way re-registers existing users.

Users are simulated in fixed-size chunks with one random stream per chunk, so the output depends
only on the config (same seed, same bytes) and memory stays flat at 1M users. Files this run
writes are truncated first; other files in the folder are left alone.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa

from crmflow.generator.event_lines import event_batches, event_fragments
from crmflow.generator.events import simulate_events
from crmflow.generator.format import write_lines
from crmflow.generator.order_rows import order_batches, order_ids
from crmflow.generator.registrations import registration_batches, user_ids
from crmflow.generator.table import Batch
from crmflow.generator.world import DAY, activity_spells, build_catalogue, simulate_orders, simulate_users

USERS_PER_CHUNK = 50_000  # part of the output's identity: changing it changes the bytes
GUEST_SHARE = 0.03  # guest buyers (orders without a registration) per registered user
VISITOR_SHARE = 0.3  # anonymous visitors who never sign up, per registered user
MANIFEST = "_generator_manifest.json"
SOURCES = ("events", "registrations", "orders")


@dataclass(frozen=True)
class GeneratorConfig:
    users: int
    days: int
    end: date
    seed: int
    dirty_fraction: float = 0.01
    emit_since: date | None = None  # write only rows on/after this day, into per-day files
    emit_until: date | None = None  # write only rows on/before this day (same world, earlier cut)
    sources: tuple[str, ...] = SOURCES  # kinds written; the world simulated is the same either way
    order_items: bool = True  # False: orders without items (amounts only)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.sources) - set(SOURCES))
        if unknown or not self.sources:
            raise ValueError(f"GeneratorConfig.sources must be a non-empty subset of {', '.join(SOURCES)}; "
                             f"got {', '.join(self.sources) or 'nothing'}")
        if self.users < 1:
            raise ValueError(f"GeneratorConfig.users must be >= 1, got {self.users}")
        if self.days < 1:
            raise ValueError(f"GeneratorConfig.days must be >= 1, got {self.days}")
        if not 0 <= self.dirty_fraction <= 0.5:
            raise ValueError(f"GeneratorConfig.dirty_fraction must be within [0, 0.5], got {self.dirty_fraction}")
        if self.emit_since and self.emit_until and self.emit_until < self.emit_since:
            raise ValueError(f"GeneratorConfig.emit_until ({self.emit_until}) is before emit_since ({self.emit_since})")

    @property
    def start_s(self) -> int:
        return _epoch(self.end) - (self.days - 1) * DAY

    @property
    def end_s(self) -> int:
        """Exclusive: midnight UTC after the last day."""
        return _epoch(self.end) + DAY


def _epoch(day: date) -> int:
    return int(datetime.combine(day, time(0), tzinfo=UTC).timestamp())


class LandingWriter:
    """Routes batches to <out>/<kind>/<prefix>-<period>.<ext>, opening (truncating) each file once."""

    def __init__(self, out_dir: Path, emit_since_s: int | None, emit_until_s: int | None = None) -> None:
        self.out_dir = out_dir
        self.emit_since_s = emit_since_s
        self.emit_until_s = emit_until_s  # exclusive
        self.handles: dict[Path, IO[bytes]] = {}
        self.rows: dict[Path, int] = {}

    def write(self, batch: Batch) -> int:
        t, lines = batch.t, batch.lines
        if self.emit_since_s is not None:
            keep = np.flatnonzero(t >= self.emit_since_s)
            t, lines = t[keep], lines.take(pa.array(keep))
        if self.emit_until_s is not None:
            keep = np.flatnonzero(t < self.emit_until_s)
            t, lines = t[keep], lines.take(pa.array(keep))
        if not len(t):
            return 0
        unit = "D" if self.emit_since_s is not None else "M"
        period = t.astype("datetime64[s]").astype(f"datetime64[{unit}]").astype(np.int64)
        order = np.lexsort((t, period))
        period_sorted = period[order]
        starts = np.flatnonzero(np.r_[True, period_sorted[1:] != period_sorted[:-1]])
        bounds = np.r_[starts, len(order)]
        for i, start in enumerate(starts):  # one pass per file
            label = str(np.datetime64(int(period_sorted[start]), unit))
            path = self.out_dir / batch.kind / f"{batch.prefix}-{label}.{batch.ext}"
            handle = self._open(path, batch.header)
            rows = order[start: bounds[i + 1]]
            write_lines(handle, lines.take(pa.array(rows)))
            self.rows[path] += len(rows)
        return len(t)

    def _open(self, path: Path, header: bytes | None) -> IO[bytes]:
        handle = self.handles.get(path)
        if handle is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = path.open("wb")
            if header:
                handle.write(header)
            self.handles[path] = handle
            self.rows[path] = 0
        return handle

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()


def generate_landing(config: GeneratorConfig, out_dir: Path) -> dict[str, int]:
    """Write the landing files; returns counts per kind (rows, files, dirty rows per reason)."""
    out_dir = Path(out_dir)
    emit_since_s = _epoch(config.emit_since) if config.emit_since else None
    emit_until_s = _epoch(config.emit_until) + DAY if config.emit_until else None
    writer = LandingWriter(out_dir, emit_since_s, emit_until_s)
    catalogue = build_catalogue()
    totals: dict[str, int] = {}
    written = {"events": 0, "registrations": 0, "orders": 0}
    seq = {"orders": 0, "events": 0}
    try:
        for chunk, first in enumerate(range(0, config.users, USERS_PER_CHUNK)):
            rng = np.random.default_rng([config.seed, chunk])
            n = min(USERS_PER_CHUNK, config.users - first)
            users = simulate_users(rng, first, n, config.start_s, config.days)
            spells = activity_spells(users, config.end_s)
            n_guests = int(round(GUEST_SHARE * n))
            orders = simulate_orders(rng, users, spells, catalogue, n_guests, config.start_s, config.end_s)
            events = simulate_events(rng, users, spells, orders, catalogue, int(round(VISITOR_SHARE * n)),
                                     config.start_s, config.end_s)
            uids = user_ids(users)
            oids = order_ids(orders, seq["orders"])
            fragments = event_fragments(events, users, oids, catalogue, first, seq["events"])
            seq["orders"] += len(orders)
            seq["events"] += len(events)

            batches: list[Batch] = []
            for new_batches, counts in (
                registration_batches(rng, users, config.end_s, config.dirty_fraction),
                order_batches(rng, orders, oids, uids, first, catalogue, config.dirty_fraction,
                              config.order_items),
                event_batches(rng, events, fragments, config.dirty_fraction),
            ):
                batches.extend(new_batches)
                for key, value in counts.items():
                    if not key.startswith("dirty.") or key.split(".")[1] in config.sources:
                        totals[key] = totals.get(key, 0) + value
            for batch in batches:
                if batch.kind in config.sources:
                    written[batch.kind] += writer.write(batch)
            totals["users"] = totals.get("users", 0) + n
            totals["guest_buyers"] = totals.get("guest_buyers", 0) + n_guests
    finally:
        writer.close()

    dirty = {k: v for k, v in totals.items() if k.startswith("dirty.")}
    counts = {
        "users": totals["users"],
        "guest_buyers": totals["guest_buyers"],
        "registration_rows": written["registrations"],
        "order_rows": written["orders"],
        "event_rows": written["events"],
        **{k: v for k, v in totals.items() if k not in dirty and k not in ("users", "guest_buyers")},
        "files": len(writer.rows),
        "dirty_rows": sum(dirty.values()),
        **dict(sorted(dirty.items())),
    }
    _write_manifest(out_dir, config, counts, writer.rows)
    return counts


def _write_manifest(out_dir: Path, config: GeneratorConfig, counts: dict[str, int], rows: dict[Path, int]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    config_json = {k: (v.isoformat() if isinstance(v, date) else list(v) if isinstance(v, tuple) else v)
                   for k, v in asdict(config).items()}
    dirty: dict[str, dict[str, int]] = {}
    for key, value in counts.items():
        if key.startswith("dirty."):
            _, kind, reason = key.split(".")
            dirty.setdefault(kind, {})[reason] = value
    manifest = {
        "config": config_json,
        "counts": {k: v for k, v in counts.items() if not k.startswith("dirty.")},
        "dirty_rows": dirty,
        "files": {str(p.relative_to(out_dir)): n for p, n in sorted(rows.items())},
    }
    name = MANIFEST if config.emit_since is None else f"_generator_manifest-{config.emit_since.isoformat()}.json"
    (out_dir / name).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
