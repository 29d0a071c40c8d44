"""The report's data: every chart and header card reads one small table computed in the warehouse.

The aggregates are dbt models, the report marts (dbt_project/models/marts/report, rpt_*, built as
of var as_of by every `crmflow run` and by `crmflow report`); this module reads each with `select *`
through the warehouse interface. The uplift and A/B sections read the statistics tables Python
writes (journey_uplift, journey_ab_results). When a mart's input is missing or the mart is empty the
section says "no data yet" instead of failing (a fresh warehouse, a stage that has not run, a
failed upstream).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
import yaml

from crmflow.measurement.inputs import frame_from_arrow
from crmflow.settings import DBT_PROJECT_DIR
from crmflow.warehouse import Warehouse, as_warehouse


@dataclass(frozen=True)
class Mart:
    relation: str  # what the report reads: a report mart (dbt model) or a statistics table
    needs: tuple[str, ...] = ()  # the relations a report mart is built from (its dbt parents)
    order_by: str = ""  # the order the chart reads its rows in (a table has none of its own)


# One per chart. `needs` repeats each model's ref()/source() parents so that a missing input is
# named in the report; tests/test_report_data.py keeps it equal to the dbt manifest.
QUERIES: dict[str, Mart] = {
    "lifecycle": Mart("rpt_lifecycle", ("customer_lifecycle_history",), "week, lifecycle_stage"),
    "tiers": Mart("rpt_tiers", ("customer_value_tier",), "customer_type, grade"),
    "segments": Mart("rpt_segments", ("customer_segments",), "segment_family, users desc, segment"),
    "cohorts": Mart("rpt_cohorts", ("kpi_cohort_retention",), "cohort_month, months_since_registration"),
    "arpu": Mart("rpt_arpu", ("kpi_daily",), "date_day"),
    "ltv": Mart("rpt_ltv", ("kpi_ltv",), "dimension = 'all', ltv_per_customer desc nulls last, dimension_value"),
    "funnel": Mart("rpt_funnel", ("kpi_funnel",)),
    "journey_funnel": Mart("rpt_journey_funnel", ("journey_attribution",), "journey_id"),
    "uplift": Mart("journey_uplift", (), "journey_id"),
    "trend": Mart("rpt_trend", ("journey_conversion_trend",), "journey_id, days_since_send"),
    "ab": Mart("journey_ab_results", (), "journey_id, step_id, variant"),
    "operators": Mart("rpt_operators", ("operator_efficiency",), "tasks_assigned desc, operator_id"),
    "delivery": Mart("rpt_delivery", ("delivery_events",), "day, outcome"),
}

# The header cards: each figure is the column of the same name of a one-row mart (but for
# delivery_events: a model may name that Python table only through source(), tests/test_lineage.py).
_CUSTOMERS = Mart("rpt_customer_figures", ("customer_profile", "customer_lifecycle"))
_REVENUE = Mart("rpt_revenue_figures", ("kpi_daily",))
_JOURNEYS = Mart("rpt_journey_figures", ("journey_attribution", "delivery_events"))
FIGURES: dict[str, Mart] = {
    "customers": _CUSTOMERS, "active_customers": _CUSTOMERS, "revenue_30d": _REVENUE,
    "messages_sent": _JOURNEYS, "attributed_revenue": _JOURNEYS, "bounce_rate": _JOURNEYS,
    # Without any delivery event a bounce rate of 0 would be a guess, not a measurement.
    "delivery_events": _JOURNEYS,
}
_COLUMNS = {"delivery_events": "delivery_event_count"}
REPORT_MODELS = tuple(dict.fromkeys(m.relation for m in [*QUERIES.values(), *FIGURES.values()]
                                    if m.relation.startswith("rpt_")))


def buildable_report_models(wh: Warehouse, built: Iterable[str] = ()) -> list[str]:
    """The report marts whose inputs exist in the warehouse or are among `built` (built in the same
    dbt invocation): the ones a build of the report marts can select."""
    built = set(built)
    marts = {m.relation: m for m in [*QUERIES.values(), *FIGURES.values()] if m.relation in REPORT_MODELS}
    return [name for name, m in marts.items() if all(n in built or wh.table_exists(n) for n in m.needs)]


@dataclass
class ReportData:
    as_of: datetime
    frames: dict[str, pd.DataFrame | None]
    figures: dict[str, float | int | None]
    missing: set[str]
    currency: str  # every money amount in the warehouse is in this ISO 4217 currency

    def missing_for(self, key: str) -> list[str]:
        """What chart `key` needs that is not in the warehouse (empty: it exists, no rows): its mart's
        missing inputs, else the mart itself when it was not built."""
        mart = QUERIES[key]
        return [name for name in mart.needs if name in self.missing] or \
            [name for name in (mart.relation,) if name in self.missing]


def reporting_currency(project_file: Path = DBT_PROJECT_DIR / "dbt_project.yml") -> str:
    """The dbt var reporting_currency: stg_shop__orders converts every amount into it, so it names
    every money figure of the report."""
    config = yaml.safe_load(project_file.read_text(encoding="utf-8")) or {}
    value = (config.get("vars") or {}).get("reporting_currency")
    if not isinstance(value, str) or len(value.strip()) != 3 or not value.strip().isalpha():
        raise ValueError(f"{project_file}: vars.reporting_currency is {value!r}; expected an ISO 4217 code "
                         "such as USD or EUR (it must also have a row in dbt_project/seeds/fx_rates.csv)")
    return value.strip().upper()


def _read(wh: Warehouse, mart: Mart) -> pd.DataFrame:
    order = f" order by {mart.order_by}" if mart.order_by else ""
    return frame_from_arrow(wh.fetch_arrow(f"select * from {mart.relation}{order}"))


def _figure(key: str, value: object) -> float | int | None:
    if value is None or pd.isna(value):
        return None
    return int(value) if float(value).is_integer() and key != "bounce_rate" else float(value)


def load_report_data(con: Warehouse | object, as_of: datetime, currency: str | None = None) -> ReportData:
    """Every chart's frame and every header figure from the report marts (built as of `as_of`; `con`:
    a Warehouse or a raw DuckDB connection)."""
    wh = as_warehouse(con)
    marts = [*QUERIES.values(), *FIGURES.values()]
    needed = {name for m in marts for name in (*m.needs, m.relation)}
    missing = {name for name in needed if not wh.table_exists(name)}

    def readable(mart: Mart) -> bool:
        return not any(name in missing for name in (*mart.needs, mart.relation))

    frames: dict[str, pd.DataFrame | None] = {}
    for key, mart in QUERIES.items():
        frame = _read(wh, mart) if readable(mart) else None
        frames[key] = frame if frame is not None and len(frame) else None
    rows: dict[str, dict[str, object]] = {}
    for mart in dict.fromkeys(FIGURES.values()):
        found = wh.fetch_arrow(f"select * from {mart.relation}").to_pylist() if readable(mart) else []
        rows[mart.relation] = found[0] if found else {}
    figures: dict[str, float | int | None] = {
        key: _figure(key, rows[mart.relation].get(_COLUMNS.get(key, key))) for key, mart in FIGURES.items()}
    # Counted from journey_uplift as its section reads it (0 when it has no rows, none when it is missing).
    uplift = frames["uplift"] if frames["uplift"] is not None else pd.DataFrame(columns=["status", "significant"])
    ok = uplift["status"] == "ok"
    significant = ok & uplift["significant"].fillna(False).astype(bool)
    for key, counted in (("journeys_measured", ok), ("journeys_significant", significant)):
        figures[key] = None if "journey_uplift" in missing else int(counted.sum())
    return ReportData(as_of=as_of, frames=frames, figures=figures, missing=missing,
                      currency=currency or reporting_currency())
