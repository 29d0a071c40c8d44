"""Vectorised text building for the sample-data generator (pyarrow compute, no per-row Python).

Lines are assembled by concatenating column-wise "fragments" (one string array per JSON key or CSV
field). Generated values never contain quotes, backslashes or control characters, so JSON string
values are written without escaping; CSV fields that can hold commas or quotes go through
`csv_quote`.
"""

from __future__ import annotations

from typing import IO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

Fragment = pa.Array | pa.Scalar | str | bytes


def join(*parts: Fragment) -> pa.Array:
    """Concatenate fragments element-wise; a null fragment makes the result null (use fill_null)."""
    return pc.binary_join_element_wise(*parts, "")


def int_str(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(np.asarray(values, dtype=np.int64)), pa.string())


def padded(prefix: str, values: np.ndarray, width: int) -> pa.Array:
    """Identifiers such as u00000042: prefix + zero-padded integer."""
    return join(prefix, pc.utf8_lpad(int_str(values), width, "0"))


def money_str(cents: np.ndarray) -> pa.Array:
    """Integer minor units -> "123.45" (two decimals, sign kept)."""
    cents = np.asarray(cents, dtype=np.int64)
    sign = pa.array(np.where(cents < 0, "-", ""))
    absolute = np.abs(cents)
    return join(sign, int_str(absolute // 100), ".", pc.utf8_lpad(int_str(absolute % 100), 2, "0"))


def lookup(labels: list[str] | tuple[str, ...], codes: np.ndarray) -> pa.Array:
    """Small vocabulary -> string array by integer code (vectorised take)."""
    return pa.array(list(labels), pa.string()).take(pa.array(np.asarray(codes, dtype=np.int64)))


def utc_offset_minutes(utc_s: np.ndarray, tz_codes: np.ndarray, zones: tuple[str, ...]) -> np.ndarray:
    """UTC offset in minutes at each instant for each row's zone (DST aware; one pass per zone)."""
    out = np.zeros(len(utc_s), dtype=np.int64)
    for code, zone in enumerate(zones):
        mask = tz_codes == code
        if not mask.any():
            continue
        instants = pd.DatetimeIndex(utc_s[mask].astype("datetime64[s]")).tz_localize("UTC")
        local = instants.tz_convert(zone).tz_localize(None)
        delta = local - instants.tz_localize(None)
        out[mask] = np.asarray(delta.total_seconds(), dtype=np.int64) // 60
    return out


def _offset_label(minutes: int) -> str:
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(int(minutes))
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def iso_with_offset(utc_s: np.ndarray, offset_min: np.ndarray) -> pa.Array:
    """2026-03-01T10:11:12+08:00: local wall time plus its offset."""
    local = (np.asarray(utc_s, dtype=np.int64) + offset_min * 60).astype("datetime64[s]")
    base = pc.strftime(pa.array(local), format="%Y-%m-%dT%H:%M:%S")
    uniques, inverse = np.unique(offset_min, return_inverse=True)
    labels = [_offset_label(m) for m in uniques]  # a handful of distinct offsets, not per row
    return join(base, lookup(labels, inverse))


def iso_utc(utc_s: np.ndarray) -> pa.Array:
    """2026-03-01T02:11:12Z."""
    base = pc.strftime(pa.array(np.asarray(utc_s, dtype=np.int64).astype("datetime64[s]")),
                       format="%Y-%m-%dT%H:%M:%S")
    return join(base, "Z")


def iso_date(utc_s: np.ndarray) -> pa.Array:
    return pc.strftime(pa.array(np.asarray(utc_s, dtype=np.int64).astype("datetime64[s]")), format="%Y-%m-%d")


def jstr(name: str, values: pa.Array, trailing: str = ",") -> pa.Array:
    """"name":"value", or "name":null, when the value is null."""
    quoted = join(f'"{name}":"', values, '"' + trailing)
    return pc.fill_null(quoted, f'"{name}":null{trailing}')


def jraw(name: str, values: pa.Array, trailing: str = ",") -> pa.Array:
    """"name":<raw json>, (numbers, booleans, objects); null -> "name":null."""
    return pc.fill_null(join(f'"{name}":', values, trailing), f'"{name}":null{trailing}')


def jbool(values: np.ndarray) -> pa.Array:
    return lookup(("false", "true"), np.asarray(values, dtype=np.int64))


def with_nulls(values: pa.Array, present: np.ndarray) -> pa.Array:
    """Null out the rows where `present` is False (optional fields)."""
    return pc.if_else(pa.array(np.asarray(present, dtype=bool)), values, pa.nulls(len(values), values.type))


def csv_quote(values: pa.Array) -> pa.Array:
    return join('"', pc.replace_substring(values, '"', '""'), '"')


def csv_line(fields: list[pa.Array]) -> pa.Array:
    """Comma-joined fields; nulls become empty fields."""
    return pc.binary_join_element_wise(*[pc.fill_null(f, "") for f in fields], ",")


def to_binary(values: pa.Array) -> pa.Array:
    return pc.cast(values, pa.binary())


def write_lines(handle: IO[bytes], lines: pa.Array) -> int:
    """Append the lines (each + newline) with one buffer write; returns bytes written."""
    if len(lines) == 0:
        return 0
    if lines.null_count:
        raise ValueError("generator bug: a null line would be lost")
    terminated = pc.cast(pc.binary_join_element_wise(pc.cast(lines, pa.binary()), b"\n", b""),
                         pa.large_binary())
    offsets = np.frombuffer(terminated.buffers()[1], dtype=np.int64)
    offsets = offsets[terminated.offset: terminated.offset + len(terminated) + 1]
    data = memoryview(terminated.buffers()[2])[offsets[0]: offsets[-1]]
    handle.write(data)
    return len(data)
