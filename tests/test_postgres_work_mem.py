"""crmflow's PostgreSQL sessions run with work_mem from CRMFLOW_PG_WORK_MEM (default 64MB), so the
journey engine's uncorrelated `in (select ...)` sets are hashed once instead of rescanned per row."""

from __future__ import annotations

import pytest
from helpers_postgres import postgres_url  # noqa: F401  (fixture)

from crmflow.warehouse import WarehouseConnectionError, open_warehouse


def test_sessions_get_the_default_and_the_configured_work_mem(postgres_url: str, monkeypatch) -> None:  # noqa: F811
    monkeypatch.delenv("CRMFLOW_PG_WORK_MEM", raising=False)
    with open_warehouse(postgres_url) as wh:
        assert wh.scalar("select current_setting('work_mem')") == "64MB"
    monkeypatch.setenv("CRMFLOW_PG_WORK_MEM", "12MB")
    with open_warehouse(postgres_url) as wh:
        assert wh.scalar("select current_setting('work_mem')") == "12MB"


def test_a_work_mem_that_is_not_a_size_is_one_error_before_connecting(postgres_url: str, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setenv("CRMFLOW_PG_WORK_MEM", "64MB -c statement_timeout=1")
    with pytest.raises(WarehouseConnectionError, match="CRMFLOW_PG_WORK_MEM=.* is not a PostgreSQL memory size"):
        with open_warehouse(postgres_url):
            pass
