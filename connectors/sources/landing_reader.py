"""Read landing files into Arrow tables of raw lines (JSONL) or raw records (CSV), vectorised.

Each file is read once as bytes; line boundaries are found with numpy (`np.flatnonzero(block == 10)`, 32 MB at a time)
and handed to Arrow as offsets over the same buffer (zero-copy), so there is no Python loop per
line. Validation and parsing happen afterwards in DuckDB SQL (see the `*_sql` modules).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

NEWLINE = 10
QUOTE = 34
UTF8_BOM = b"\xef\xbb\xbf"
# Columns of the Arrow table handed to DuckDB: which file, which physical line, the raw bytes, and
# whether the line is pure ASCII (then it is valid UTF-8 and SQL decodes it without a try()).
LINES_SCHEMA = pa.schema(
    [("file_id", pa.int32()), ("line_number", pa.int64()), ("line", pa.large_binary()), ("ascii", pa.bool_())]
)


@dataclass(frozen=True)
class LandingFile:
    """One landing file: its path relative to the landing folder (posix, the stored name)."""

    path: Path
    rel_path: str
    fmt: str  # "jsonl" | "csv"


def list_landing_files(landing_dir: Path, source: str, formats: tuple[str, ...]) -> list[LandingFile]:
    """Files of one source in path order; names starting with "_" or "." are ignored."""
    folder = landing_dir / source
    if not folder.is_dir():
        return []
    found = []
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        rel_parts = path.relative_to(folder).parts
        if any(part.startswith(("_", ".")) for part in rel_parts):
            continue
        fmt = path.suffix.lower().lstrip(".")
        if fmt in formats:
            found.append(LandingFile(path, path.relative_to(landing_dir).as_posix(), fmt))
    return sorted(found, key=lambda f: f.rel_path)


def read_bytes(path: Path) -> tuple[bytes, str]:
    """The file's bytes and their sha256 (the incremental-load key together with the path)."""
    data = path.read_bytes()
    return data, hashlib.sha256(data).hexdigest()


def _strip_bom(data: bytes) -> int:
    return len(UTF8_BOM) if data.startswith(UTF8_BOM) else 0


def _binary_array(data: bytes, starts: np.ndarray, end: int) -> pa.Array:
    """Arrow large_binary over `data` with one value per [starts[i], starts[i+1]) slice."""
    offsets = np.empty(len(starts) + 1, dtype=np.int64)
    offsets[:-1] = starts
    offsets[-1] = end
    return pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(starts), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


# Bytes scanned per numpy call: the boolean temporaries stay this small instead of one byte per
# byte of a ~700 MB monthly file (that drove the 1M-user ingest's peak RSS).
SCAN_BLOCK = 32 * 1024 * 1024


def _positions(buf: np.ndarray, byte: int | None) -> np.ndarray:
    """Positions (int64) in buf equal to `byte`, or of every byte >= 0x80 when byte is None; found
    block by block (a loop per 32 MB block, not per line)."""
    found = []
    for offset in range(0, len(buf), SCAN_BLOCK):
        block = buf[offset:offset + SCAN_BLOCK]
        hits = np.flatnonzero(block >= 0x80 if byte is None else block == byte)
        if len(hits):
            found.append(hits + offset)
    return np.concatenate(found).astype(np.int64, copy=False) if found else np.empty(0, dtype=np.int64)


def split_lines(data: bytes, file_id: int) -> pa.Table:
    """One row per physical line (the newline stays attached; SQL trims it)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    first = _strip_bom(data)
    newlines = _positions(buf, NEWLINE)
    starts = np.concatenate(([first], newlines + 1)).astype(np.int64)
    if starts[-1] >= len(buf):  # file ends with a newline: no empty trailing line
        starts = starts[:-1]
    return _table(data, starts, np.arange(1, len(starts) + 1, dtype=np.int64), file_id)


def split_csv_records(data: bytes, file_id: int) -> pa.Table:
    """One row per CSV record; a newline inside a quoted field does not end the record.

    A newline ends a record when the number of quote characters before it is even (RFC 4180
    escapes a quote as two quotes, so parity holds). line_number is the record's first physical line.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    first = _strip_bom(data)
    newlines = _positions(buf, NEWLINE)
    # quotes before each newline, by binary search over the quote positions (a cumulative sum over
    # every byte cost an int64 per byte of the file)
    quotes = _positions(buf[first:], QUOTE) + first
    quotes_before = np.searchsorted(quotes, newlines)
    ends = newlines[(quotes_before % 2) == 0]
    starts = np.concatenate(([first], ends + 1)).astype(np.int64)
    if starts[-1] >= len(buf):
        starts = starts[:-1]
    # physical line of each record start = newlines before it + 1
    line_numbers = np.searchsorted(newlines, starts, side="left").astype(np.int64) + 1
    return _table(data, starts, line_numbers, file_id)


def _table(data: bytes, starts: np.ndarray, line_numbers: np.ndarray, file_id: int) -> pa.Table:
    n = len(starts)
    if data and not data.endswith(b"\n"):
        # every value ends with exactly one newline, so SQL can drop it with a cheap slice
        data = data + b"\n"
    return pa.Table.from_arrays(
        [
            pa.array(np.full(n, file_id, dtype=np.int32)),
            pa.array(line_numbers),
            _binary_array(data, starts, len(data)),
            pa.array(_ascii_flags(data, starts)),
        ],
        schema=LINES_SCHEMA,
    )


def _ascii_flags(data: bytes, starts: np.ndarray) -> np.ndarray:
    """True for each [starts[i], starts[i+1]) slice without a byte >= 0x80.

    Why: DuckDB's try(decode(...)) falls back to row-by-row evaluation for a whole vector as soon as
    one value in it fails, and ~0.1 % invalid lines put one in nearly every vector (6x slower
    decoding). ASCII lines are valid UTF-8 by construction and skip the try().
    """
    flags = np.ones(len(starts), dtype=bool)
    # positions of the (few) high bytes, each mapped to its line by binary search: cheaper than a
    # reduction over every byte
    high = _positions(np.frombuffer(data, dtype=np.uint8), None)
    if len(high) and len(starts):
        lines = np.searchsorted(starts, high, side="right") - 1
        flags[lines[lines >= 0]] = False
    return flags
