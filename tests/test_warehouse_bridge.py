"""The bridge between raw DuckDB connections and the warehouse interface (used while modules move)."""

from __future__ import annotations

import duckdb

from crmflow.warehouse import DuckDBWarehouse, as_warehouse, connect


def test_wrapped_connection_is_a_warehouse_on_the_same_file(tmp_path):
    path = tmp_path / "w.duckdb"
    with connect(path) as con:
        con.execute("create table t (a integer); insert into t values (1), (2), (5)")
        warehouse = as_warehouse(con)
        assert isinstance(warehouse, DuckDBWarehouse)
        assert warehouse.target.path == path
        assert warehouse.native is con
        assert warehouse.scalar("select sum(a) from t where a >= $low", {"low": 2}) == 7
        assert warehouse.scalar("select a from t where a > 10") is None
        warehouse.execute("insert into t values ($a)", {"a": 9})
        # the caller's connection sees the write: one connection, not a copy
        assert con.execute("select count(*) from t").fetchone()[0] == 4


def test_as_warehouse_returns_a_warehouse_unchanged_and_wraps_memory_connections():
    con = duckdb.connect()
    warehouse = as_warehouse(con)
    assert str(warehouse.target.path) == ":memory:"
    assert as_warehouse(warehouse) is warehouse
