"""The files a data-subject request covers besides the warehouse: export files (banners, tasks: CSV,
JSON lines, JSON, Parquet) and outbox files (<outbox>/<channel>.jsonl, one OutboundMessage per line).

Read and rewritten in Python / pyarrow, whatever the warehouse engine. A row is the person's when its
`user_id` (as text) is theirs; an outbox line also when its `to` is one of their addresses. Rewrites
are atomic (temp file + rename) and leave every other row's line byte-for-byte the same (JSON lines).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

EXPORT_SUFFIXES = (".csv", ".jsonl", ".json", ".parquet")
# What an erased person's outbox line keeps: message_key, channel, journey/step, variant, locale.
OUTBOX_REDACT = ("to", "subject", "body", "html", "title", "deep_link", "metadata")


def _files(folder: Path | None, suffixes: tuple[str, ...]) -> list[Path]:
    if folder is None or not Path(folder).is_dir():
        return []
    return sorted(p for p in Path(folder).rglob("*")
                  if p.is_file() and p.suffix in suffixes and not p.name.startswith("."))


def export_files(export_dir: Path | None) -> list[Path]:
    return _files(export_dir, EXPORT_SUFFIXES)


def outbox_files(outbox_dir: Path | None) -> list[Path]:
    return _files(outbox_dir, (".jsonl",))


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _json_lines(path: Path) -> Iterator[tuple[str, Any]]:
    """(line, parsed object or None when the line is not a JSON object) for each non-empty line."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            parsed = json.loads(line)
        except ValueError:
            parsed = None
        yield line, parsed if isinstance(parsed, dict) else None


def _records(path: Path) -> list[dict[str, Any]] | None:
    """The file's rows as dicts (CSV values as text), or None when it is not tabular or has no user_id."""
    try:
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            return table.to_pylist() if "user_id" in table.column_names else None
        if path.suffix == ".csv":
            with path.open(newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                rows = list(reader)
                return rows if "user_id" in (reader.fieldnames or []) else None
        if path.suffix == ".jsonl":
            rows = [obj for _, obj in _json_lines(path) if obj is not None]
        else:
            data = json.loads(path.read_text(encoding="utf-8"))
            rows = [data] if isinstance(data, dict) else [r for r in data if isinstance(r, dict)] \
                if isinstance(data, list) else []
    except (OSError, ValueError, pa.ArrowException):
        return None  # empty or not tabular: nothing about a person in it
    return rows if any("user_id" in r for r in rows) else None


def rows_of(path: Path, user_id: str) -> list[dict[str, Any]]:
    """The export file's rows whose user_id is `user_id`."""
    return [r for r in _records(path) or [] if _text(r.get("user_id")) == user_id]


def _replace(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.erase.tmp")
    write(tmp)
    os.replace(tmp, path)


def erase_from_file(path: Path, user_id: str) -> int:
    """Rewrite an export file without the person's rows; returns how many were removed."""
    removed = len(rows_of(path, user_id))
    if not removed:
        return 0
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        ids = pc.cast(table["user_id"], pa.string())
        keep = pc.or_kleene(pc.is_null(ids), pc.not_equal(ids, user_id))
        _replace(path, lambda tmp: pq.write_table(table.filter(pc.fill_null(keep, True)), tmp))
    elif path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            fields, rows = reader.fieldnames or [], [r for r in reader if _text(r.get("user_id")) != user_id]

        def write_csv(tmp: Path) -> None:
            with tmp.open("w", newline="", encoding="utf-8") as out:
                writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
                writer.writeheader()
                writer.writerows(rows)
        _replace(path, write_csv)
    elif path.suffix == ".jsonl":
        kept = [line for line, obj in _json_lines(path) if obj is None or _text(obj.get("user_id")) != user_id]
        _replace(path, lambda tmp: tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8"))
    else:
        rows = [r for r in _records(path) or [] if _text(r.get("user_id")) != user_id]
        _replace(path, lambda tmp: tmp.write_text(json.dumps(rows, ensure_ascii=False, default=str),
                                                  encoding="utf-8"))
    return removed


def _is_theirs(message: dict[str, Any] | None, user_id: str, addresses: set[str]) -> bool:
    return message is not None and (_text(message.get("user_id")) == user_id
                                    or _text(message.get("to")) in addresses)


def outbox_lines_of(path: Path, user_id: str, addresses: list[str]) -> list[dict[str, Any]]:
    """The outbox messages about the person: theirs by user_id, or sent to one of their addresses."""
    wanted = set(addresses)
    return [obj for _, obj in _json_lines(path) if _is_theirs(obj, user_id, wanted)]


def redact_outbox(path: Path, user_id: str, addresses: list[str], pseudonym: str) -> int:
    """Rewrite an outbox file with the person's lines redacted (user_id -> pseudonym, address and
    rendered content gone; the line stays: it records that a message went out)."""
    wanted = set(addresses)
    lines, hits = [], 0
    for line, obj in _json_lines(path):
        if _is_theirs(obj, user_id, wanted):
            hits += 1
            redacted = {k: v for k, v in obj.items() if k not in OUTBOX_REDACT}
            line = json.dumps({**redacted, "user_id": pseudonym}, ensure_ascii=False, sort_keys=True)
        lines.append(line)
    if hits:
        _replace(path, lambda tmp: tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8"))
    return hits
