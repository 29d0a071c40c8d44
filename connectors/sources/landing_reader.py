"""Read landing files into Arrow tables of raw lines (JSONL) or raw records (CSV), vectorised.

Each file is read once as bytes; line boundaries are found with numpy (`np.flatnonzero(block < 32)`, 32 MB at a time)
and handed to Arrow as offsets over the same buffer (zero-copy), so there is no Python loop per
line. Validation and parsing happen afterwards in DuckDB SQL (see the `*_sql` modules).

Hostile input is marked here, before SQL sees it (docs/data-contracts.md, section 2):
- a line (CSV: a record) over `max_line_bytes` is handed over as NULL (an Arrow null over the same
  bytes, still zero-copy) with problem `too_large` and a short `preview`: it is never parsed, so one
  50 MB line cannot run DuckDB out of memory;
- a CSV quote that is not closed within `max_field_lines` lines (or by the end of the file) makes
  its first line a record of its own with problem `unclosed_quote`, and the next line starts a new
  record: a stray `"` costs one line, not every record after it;
- `ctrl` flags lines that may hold a control character (a raw byte, or in JSON a `\u0000`-style
  or `\b`/`\f` escape); SQL checks only those lines field by field.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from crmflow.settings import INGEST_MAX_CSV_FIELD_LINES, INGEST_MAX_LINE_BYTES

NEWLINE = 10
QUOTE = 34
UTF8_BOM = b"\xef\xbb\xbf"
BACKSLASH = 92
DEL = 127
# Bytes of a too-large line kept as its quarantine raw_content (the whole line stays in the file).
PREVIEW_BYTES = 1000
TOO_LARGE = "too_large"
UNCLOSED_QUOTE = "unclosed_quote"
# Columns of the Arrow table handed to DuckDB: which file, which physical line, the raw bytes (NULL
# when too large), whether the line is pure ASCII (then it is valid UTF-8 and SQL decodes it without
# a try()), the problem found here (NULL for most lines), the first bytes of a too-large line, and
# whether the line may hold a control character.
LINES_SCHEMA = pa.schema([
    ("file_id", pa.int32()), ("line_number", pa.int64()), ("line", pa.large_binary()), ("ascii", pa.bool_()),
    ("problem", pa.string()), ("preview", pa.large_binary()), ("ctrl", pa.bool_()),
])


@dataclass(frozen=True)
class ReadLimits:
    """Hostile-input limits (settings CRMFLOW_INGEST_MAX_LINE_BYTES, CRMFLOW_INGEST_MAX_CSV_FIELD_LINES)."""

    max_line_bytes: int = INGEST_MAX_LINE_BYTES
    max_field_lines: int = INGEST_MAX_CSV_FIELD_LINES

    def __post_init__(self) -> None:
        if self.max_line_bytes < 1 or self.max_field_lines < 1:
            raise ValueError(f"ingest limits must be >= 1, got {self}")


DEFAULT_LIMITS = ReadLimits()


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


def _binary_array(data: bytes, starts: np.ndarray, end: int, valid: np.ndarray | None = None) -> pa.Array:
    """Arrow large_binary over `data` with one value per [starts[i], starts[i+1]) slice; a slice
    where `valid` is False is NULL (Arrow lets a null slot keep its bytes, so this stays zero-copy)."""
    offsets = np.empty(len(starts) + 1, dtype=np.int64)
    offsets[:-1] = starts
    offsets[-1] = end
    bitmap = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(starts), [bitmap, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


# Bytes scanned per numpy call: the boolean temporaries stay this small instead of one byte per
# byte of a ~700 MB monthly file (that drove the 1M-user ingest's peak RSS).
SCAN_BLOCK = 32 * 1024 * 1024
_EMPTY = np.empty(0, dtype=np.int64)


def _concat(found: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(found).astype(np.int64, copy=False) if found else _EMPTY


def _positions(buf: np.ndarray, byte: int) -> np.ndarray:
    """Positions (int64) in buf equal to `byte`, found block by block (a loop per 32 MB block, not per line)."""
    found = []
    for offset in range(0, len(buf), SCAN_BLOCK):
        hits = np.flatnonzero(buf[offset:offset + SCAN_BLOCK] == byte)
        if len(hits):
            found.append(hits + offset)
    return _concat(found)


@dataclass(frozen=True)
class _Scan:
    newlines: np.ndarray  # positions of \n
    controls: np.ndarray  # positions of control bytes other than \t \n \r, and of DEL (sorted)
    high: np.ndarray  # positions of bytes >= 0x80 (not ASCII)


def _scan(buf: np.ndarray) -> _Scan:
    """Newlines, control bytes and non-ASCII bytes in two comparisons per byte (`< 32`, `>= 127`):
    the hits are few, so telling them apart costs nothing next to the scan."""
    newlines, controls, high = [], [], []
    for offset in range(0, len(buf), SCAN_BLOCK):
        block = buf[offset:offset + SCAN_BLOCK]
        low = np.flatnonzero(block < 32)
        values = block[low]
        newlines.append(low[values == NEWLINE] + offset)
        controls.append(low[(values != NEWLINE) & (values != 9) & (values != 13)] + offset)
        top = np.flatnonzero(block >= DEL)
        values = block[top]
        controls.append(top[values == DEL] + offset)
        high.append(top[values != DEL] + offset)
    return _Scan(_concat(newlines), np.sort(_concat(controls)), _concat(high))


def _escaped_controls(buf: np.ndarray) -> np.ndarray:
    """Positions of JSON escapes that decode to a control character: \\b, \\f, \\u0000-\\u001f, \\u007f.
    An escaped backslash before them (`\\\\b`) matches too; SQL checks the decoded values."""
    slashes = _positions(buf, BACKSLASH)
    if not len(slashes):
        return _EMPTY
    window = buf[np.minimum(slashes[:, None] + np.arange(1, 6), len(buf) - 1)]
    c = [window[:, i] for i in range(5)]
    unicode_control = (
        (c[0] == ord("u")) & (c[1] == ord("0")) & (c[2] == ord("0"))
        & ((c[3] == ord("0")) | (c[3] == ord("1")) | ((c[3] == ord("7")) & ((c[4] == ord("f")) | (c[4] == ord("F")))))
    )
    return slashes[(c[0] == ord("b")) | (c[0] == ord("f")) | unicode_control]


def _flags(starts: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """True for each [starts[i], starts[i+1]) slice holding one of `positions` (binary search per
    position: cheaper than a reduction over every byte)."""
    flags = np.zeros(len(starts), dtype=bool)
    if len(positions) and len(starts):
        lines = np.searchsorted(starts, positions, side="right") - 1
        flags[lines[lines >= 0]] = True
    return flags


def split_lines(data: bytes, file_id: int, limits: ReadLimits = DEFAULT_LIMITS) -> pa.Table:
    """One row per physical line (the newline stays attached; SQL trims it)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    first = _strip_bom(data)
    scan = _scan(buf)
    starts = np.concatenate(([first], scan.newlines + 1)).astype(np.int64)
    if starts[-1] >= len(buf):  # file ends with a newline: no empty trailing line
        starts = starts[:-1]
    controls = np.concatenate((scan.controls, _escaped_controls(buf)))
    line_numbers = np.arange(1, len(starts) + 1, dtype=np.int64)
    return _table(data, starts, line_numbers, file_id, scan.high, controls, limits, unclosed=None)


def split_csv_records(data: bytes, file_id: int, limits: ReadLimits = DEFAULT_LIMITS) -> pa.Table:
    """One row per CSV record; a newline inside a quoted field does not end the record.

    A newline ends a record when the number of quote characters since the record's start is even
    (RFC 4180 escapes a quote as two quotes, so parity holds), unless the record would span more
    than `limits.max_field_lines` lines or run to the end of the file open: then its first line
    alone is a record (problem unclosed_quote) and the next line starts afresh (record_start_lines).
    line_number is the record's first physical line.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    first = _strip_bom(data)
    scan = _scan(buf)
    line_ends = scan.newlines
    if len(buf) > first and (not len(line_ends) or line_ends[-1] != len(buf) - 1):
        line_ends = np.append(line_ends, len(buf))  # the last line has no newline (_table adds one)
    # quotes up to each line end, by binary search over the quote positions (a cumulative sum over
    # every byte cost an int64 per byte of the file)
    quotes = _positions(buf[first:], QUOTE) + first
    start_lines, unclosed_lines = record_start_lines(np.searchsorted(quotes, line_ends), limits.max_field_lines)
    line_starts = np.concatenate(([first], line_ends[:-1] + 1)).astype(np.int64)
    starts = line_starts[start_lines]
    unclosed = np.isin(start_lines, unclosed_lines) if len(unclosed_lines) else None
    return _table(data, starts, start_lines + 1, file_id, scan.high, scan.controls, limits, unclosed)


def record_start_lines(quotes_through: np.ndarray, max_lines: int) -> tuple[np.ndarray, np.ndarray]:
    """(first line of every record, the lines that are records of their own as unclosed_quote), as
    0-based line indices, from the number of quotes up to the end of each line.

    A record starting at line s (after q quotes) ends at the first line e >= s whose count has q's
    parity. Walked segment by segment, not line by line: within a segment the record ends are the
    lines of one parity, and a segment ends at the first record longer than max_lines (found by
    binary search in the precomputed long gaps) or at the end; the loop runs once per unclosed line.
    """
    n = len(quotes_through)
    parity = quotes_through & 1
    ends_of = [np.flatnonzero(parity == p) for p in (0, 1)]
    long_gaps_of = [np.flatnonzero(np.diff(ends) > max_lines) + 1 for ends in ends_of]
    starts: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]  # in line order: no sort needed
    unclosed: list[int] = []
    line, p = 0, 0
    while line < n:
        ends, long_gaps = ends_of[p], long_gaps_of[p]
        k = int(np.searchsorted(ends, line))
        if k < len(ends) and ends[k] - line < max_lines:
            g = int(np.searchsorted(long_gaps, k + 1))
            stop = int(long_gaps[g]) if g < len(long_gaps) else len(ends)
            starts.append(ends[k:stop] + 1)
            line = int(ends[stop - 1]) + 1  # the next record: too long, never closed, or past the end
            if line >= n:
                break
        unclosed.append(line)
        p = int(parity[line])  # the next record starts after this line's quotes
        line += 1
        starts.append(np.array([line], dtype=np.int64))
    all_starts = _concat(starts)
    return all_starts[all_starts < n], np.array(unclosed, dtype=np.int64)


def _table(data: bytes, starts: np.ndarray, line_numbers: np.ndarray, file_id: int, high: np.ndarray,
           controls: np.ndarray, limits: ReadLimits, unclosed: np.ndarray | None) -> pa.Table:
    n = len(starts)
    if data and not data.endswith(b"\n"):
        # every value ends with exactly one newline, so SQL can drop it with a cheap slice
        data = data + b"\n"
    ends = np.append(starts[1:], len(data)) if n else _EMPTY
    too_large = (ends - starts - 1) > limits.max_line_bytes  # without the newline
    any_too_large = bool(too_large.any())
    return pa.Table.from_arrays(
        [
            pa.array(np.full(n, file_id, dtype=np.int32)),
            pa.array(line_numbers),
            _binary_array(data, starts, len(data), ~too_large if any_too_large else None),
            # ASCII lines are valid UTF-8 by construction and SQL decodes them without try(): DuckDB's
            # try(decode(...)) falls back to row-by-row evaluation for a whole vector as soon as one
            # value in it fails, and ~0.1 % invalid lines put one in nearly every vector (6x slower).
            pa.array(~_flags(starts, high)),
            _problems(n, too_large if any_too_large else None, unclosed),
            _previews(data, starts, ends, too_large) if any_too_large else pa.nulls(n, pa.large_binary()),
            pa.array(_flags(starts, controls)),
        ],
        schema=LINES_SCHEMA,
    )


def _problems(n: int, too_large: np.ndarray | None, unclosed: np.ndarray | None) -> pa.Array:
    """The problem code per row (too_large wins: that line is not read at all), NULL for the rest."""
    if too_large is None and unclosed is None:
        return pa.nulls(n, pa.string())
    codes = np.full(n, -1, dtype=np.int8)
    if unclosed is not None:
        codes[unclosed] = 1
    if too_large is not None:
        codes[too_large] = 0
    indices = pa.array(codes, mask=codes < 0)
    return pa.DictionaryArray.from_arrays(indices, pa.array([TOO_LARGE, UNCLOSED_QUOTE])).cast(pa.string())


def _previews(data: bytes, starts: np.ndarray, ends: np.ndarray, too_large: np.ndarray) -> pa.Array:
    """The first PREVIEW_BYTES of each too-large line (cut at a UTF-8 character boundary), NULL for
    the others. A Python loop over the too-large lines only: each is over the size limit, so few."""
    pieces = []
    lengths = np.zeros(len(starts), dtype=np.int64)
    for i in np.flatnonzero(too_large):
        start = int(starts[i])
        cut = min(PREVIEW_BYTES, int(ends[i]) - start - 1)
        while cut > 0 and data[start + cut] & 0xC0 == 0x80:  # a UTF-8 continuation byte
            cut -= 1
        pieces.append(data[start:start + cut])
        lengths[i] = cut
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    return pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(starts),
        [pa.py_buffer(np.packbits(too_large, bitorder="little")), pa.py_buffer(offsets), pa.py_buffer(b"".join(pieces))],
    )
