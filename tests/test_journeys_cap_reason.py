"""The frequency-cap reason echoes the window as the marketer wrote it (docs/journeys.md, Policies):
a cap configured `window: 7d` writes `cap:email:1/7d`, not the equal `1w`."""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from helpers_journeys import EMAIL_TEMPLATE, journey_from_yaml, ledger, make_customer_tables, profile, ts

from connectors.channels.outbox import OutboxChannel
from crmflow.journeys.dispatch import dispatch
from crmflow.journeys.durations import format_duration, parse_duration
from crmflow.journeys.engine import run_tick
from crmflow.journeys.policy_config import Policies

T0 = ts("2026-03-01T12:00")
SEGMENT_HISTORY = {"user_id": "u1", "segment_family": "lifecycle", "segment": "new",
                   "valid_from": ts("2026-03-01T10:00"), "valid_to": None}


def test_durations_keep_the_written_text_through_copies():
    for text, written in (("7d", "7d"), ("1w", "1w"), (" 14 d ", "14d"), ("90min", "90min"), ("24h", "24h")):
        duration = parse_duration(text)
        assert format_duration(duration) == written
        assert format_duration(copy.deepcopy(duration)) == written
    assert parse_duration("7d") == parse_duration("1w") == timedelta(days=7)
    assert format_duration(timedelta(days=14)) == "2w"  # built in code: no text, largest whole unit


def test_default_caps_read_as_the_docs_write_them():
    assert [f"{c.channel} {c.max}/{format_duration(c.window)}" for c in Policies().frequency_caps] == [
        "email 3/7d", "sms 2/7d", "push 1/1d"]


@pytest.mark.parametrize(("window", "journey_window"), [("7d", "2d"), ("1w", "48h")])
def test_cap_reasons_in_the_ledger_echo_the_configured_window(tmp_path: Path, window: str, journey_window: str):
    con = duckdb.connect()
    journey = journey_from_yaml(
        "id: capped\nname: capped\nowner: qa\ntrigger: {type: segment, family: lifecycle, segment: new}\n"
        f"frequency_cap: {{max: 2, window: {journey_window}}}\ntemplates:{EMAIL_TEMPLATE}steps:\n"
        + "".join(f"  - {{id: s{i}, type: send, channel: email, template: hello}}\n" for i in range(4)))
    make_customer_tables(con, customer_profile=[profile("u1")], customer_segment_history=[SEGMENT_HISTORY])
    run_tick(con, journey, T0)
    policies = Policies.model_validate({"quiet_hours": {"channels": []},
                                        "frequency_caps": [{"channel": "email", "max": 3, "window": window}]})
    dispatch(con, T0, {c: OutboxChannel(c, tmp_path) for c in ("email", "sms", "push", "webhook")},
             {"capped": journey}, policies)
    # Four due at once: the global cap (3) takes one, then the journey cap (2) another.
    reasons = sorted(str(r[5]) for r in ledger(con, "capped"))
    assert reasons == sorted([f"cap:email:3/{window}", f"journey_cap:capped:2/{journey_window}", "None", "None"])
    con.close()
