"""One definition of the order status groups: the dbt vars, read by the Python stages too."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from crmflow.intelligence.config import FeatureConfig
from crmflow.measurement.config import MeasurementConfig
from crmflow.order_statuses import DBT_PROJECT_FILE, paid_order_statuses, read_order_status_groups

GOOD = {"paid_order_statuses": ["paid"], "refunded_order_statuses": ["refunded"],
        "cancelled_order_statuses": ["cancelled", "overdue"]}


def project(tmp_path: Path, **overrides) -> Path:
    path = tmp_path / "dbt_project.yml"
    path.write_text(yaml.safe_dump({"name": "x", "vars": {**GOOD, **overrides}}), encoding="utf-8")
    return path


def test_python_stages_read_the_dbt_var_not_a_list_of_their_own():
    dbt_vars = yaml.safe_load(DBT_PROJECT_FILE.read_text(encoding="utf-8"))["vars"]
    assert paid_order_statuses() == tuple(dbt_vars["paid_order_statuses"])
    assert MeasurementConfig().paid_statuses == paid_order_statuses()
    assert FeatureConfig().paid_statuses == paid_order_statuses()


def test_groups_are_read_in_order(tmp_path):
    assert read_order_status_groups(project(tmp_path)) == {
        "paid": ("paid",), "refunded": ("refunded",), "cancelled": ("cancelled", "overdue")}


@pytest.mark.parametrize(("overrides", "message"), [
    ({"paid_order_statuses": ["paid", "shipped"]},
     "vars.paid_order_statuses: 'shipped' is not an order status ingestion accepts "
     "(allowed: paid, refunded, cancelled, overdue"),
    ({"refunded_order_statuses": ["refunded", "paid"]},
     "vars.refunded_order_statuses: 'paid' is already in paid_order_statuses"),
    ({"cancelled_order_statuses": ["cancelled"]}, "order statuses in no *_order_statuses var: overdue"),
    ({"paid_order_statuses": "paid"}, "vars.paid_order_statuses must be a list of order statuses, got 'paid'"),
    ({"paid_order_statuses": [], "cancelled_order_statuses": ["cancelled", "overdue", "paid"]},
     "vars.paid_order_statuses is empty"),
])
def test_a_wrong_list_is_one_line_naming_the_file_var_and_status(tmp_path, overrides, message):
    path = project(tmp_path, **overrides)
    with pytest.raises(ValueError) as error:
        read_order_status_groups(path)
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)
    assert "\n" not in str(error.value)
