"""Accepted timestamps: history from 1900 on, configurable bounds, no event after as-of + clock skew."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from helpers_ingest import (
    AS_OF,
    ORDER_HEADER,
    REGISTRATION_HEADER,
    event,
    ingest,
    order,
    quarantine,
    registration,
    rows,
    warehouse,
    write_csv,
    write_jsonl,
)

from connectors.sources.time_range import AcceptedTimes
from crmflow.settings import load_settings
from orchestration.resources import CrmflowSettingsResource


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_1990s_orders_and_registrations_are_loaded(tmp_path):
    landing = tmp_path / "landing"
    write_csv(landing / "orders" / "o.csv", ORDER_HEADER, [
        order("o1997", ordered_at="1997-01-01 00:00:00", updated_at="1997-01-01 00:00:00"),
        order("o1900", ordered_at="1900-01-01T00:00:00Z", updated_at=None),
        order("o1899", ordered_at="1899-12-31T23:59:59Z"),
    ])
    write_csv(landing / "registrations" / "r.csv", REGISTRATION_HEADER, [
        registration("u1", registered_at="1996-12-31T23:00:00Z", updated_at="1998-06-30T00:00:00Z"),
    ])
    with warehouse(tmp_path) as con:
        assert ingest(con, "orders", landing).rows_loaded == 2
        assert ingest(con, "registrations", landing).rows_loaded == 1
        assert rows(con, "select order_id, ordered_at from raw_orders order by ordered_at") == [
            ("o1900", datetime(1900, 1, 1, tzinfo=UTC)), ("o1997", datetime(1997, 1, 1, tzinfo=UTC))]
        assert quarantine(con, "orders") == [("orders/o.csv", 4, "timestamp_out_of_range", "ordered_at")]


def test_events_after_as_of_plus_skew_are_out_of_range(tmp_path):
    landing = tmp_path / "landing"
    write_jsonl(landing / "events" / "e.jsonl", [
        event("in-1990s", timestamp="1997-05-01T10:00:00Z"),
        event("skewed", timestamp=_iso(AS_OF + timedelta(hours=23, minutes=59))),
        event("at-edge", timestamp=_iso(AS_OF + timedelta(days=1))),
        event("future", timestamp=_iso(AS_OF + timedelta(days=1, seconds=1))),
    ])
    with warehouse(tmp_path) as con:
        assert ingest(con, "events", landing).rows_loaded == 3
        assert quarantine(con, "events") == [("events/e.jsonl", 4, "timestamp_out_of_range", "timestamp")]
        assert rows(con, "select count(*) from raw_events where message_id = 'future'") == [(0,)]


def test_orders_are_not_bound_by_the_event_skew(tmp_path):
    """Only events are records of the past; an order's updated_at a week ahead is still accepted."""
    landing = tmp_path / "landing"
    write_csv(landing / "orders" / "o.csv", ORDER_HEADER, [order("o1", updated_at=_iso(AS_OF + timedelta(days=7)))])
    with warehouse(tmp_path) as con:
        assert ingest(con, "orders", landing).rows_loaded == 1


def test_configured_bounds_and_skew_are_applied(tmp_path):
    landing = tmp_path / "landing"
    write_csv(landing / "orders" / "o.csv", ORDER_HEADER, [
        order("o1", ordered_at="1999-12-31T23:59:59Z", updated_at=None),
        order("o2", ordered_at="2000-01-01T00:00:00Z", updated_at=None),
        order("o3", ordered_at="2031-01-01T00:00:00Z", updated_at=None),
    ])
    write_jsonl(landing / "events" / "e.jsonl", [
        event("e1", timestamp=_iso(AS_OF + timedelta(minutes=30))),
        event("e2", timestamp=_iso(AS_OF + timedelta(hours=2))),
    ])
    accepted = AcceptedTimes.parse("2000-01-01", "2030-12-31T23:59:59+00:00", event_skew_hours=1)
    with warehouse(tmp_path) as con:
        ingest(con, "orders", landing, accepted=accepted)
        ingest(con, "events", landing, accepted=accepted)
        assert rows(con, "select order_id from raw_orders") == [("o2",)]
        assert rows(con, "select message_id from raw_events") == [("e1",)]
        assert [q[2] for q in quarantine(con, "orders")] == ["timestamp_out_of_range"] * 2


def test_settings_resource_reads_the_range_from_the_environment(tmp_path):
    settings = load_settings({"CRMFLOW_LANDING_DIR": str(tmp_path)})
    env = {"CRMFLOW_TIMESTAMP_MIN": "1950-06-01", "CRMFLOW_EVENT_CLOCK_SKEW_HOURS": "6"}
    accepted = CrmflowSettingsResource.from_settings(settings, env).accepted_times
    assert accepted == AcceptedTimes(datetime(1950, 6, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC),
                                     timedelta(hours=6))
    default = CrmflowSettingsResource.from_settings(settings, {}).accepted_times
    assert default.earliest == datetime(1900, 1, 1, tzinfo=UTC)
    assert default.latest_event(AS_OF) == AS_OF + timedelta(days=1)


@pytest.mark.parametrize(("env", "message"), [
    ({"CRMFLOW_TIMESTAMP_MIN": "the nineties"}, "CRMFLOW_TIMESTAMP_MIN: 'the nineties' is not an ISO-8601"),
    ({"CRMFLOW_EVENT_CLOCK_SKEW_HOURS": "a day"}, "CRMFLOW_EVENT_CLOCK_SKEW_HOURS: 'a day' is not a number"),
    ({"CRMFLOW_EVENT_CLOCK_SKEW_HOURS": "-1"}, "CRMFLOW_EVENT_CLOCK_SKEW_HOURS must be >= 0"),
    ({"CRMFLOW_TIMESTAMP_MIN": "2100-01-01"}, "CRMFLOW_TIMESTAMP_MAX (2100-01-01T00:00:00+00:00) must be after"),
])
def test_bad_range_settings_fail_with_one_clear_line(env, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        AcceptedTimes.from_env(env)
