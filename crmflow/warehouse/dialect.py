"""SQL pieces that differ between the engines, chosen by `warehouse.dialect` ("duckdb" | "postgres").

Portable SQL is the rule (docs/architecture.md, "Warehouse backends"); a function lands here only when
no form runs unchanged on both engines. Each takes the dialect (or the warehouse) and returns SQL text.
"""

from __future__ import annotations
