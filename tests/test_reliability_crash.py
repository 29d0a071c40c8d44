"""Crash safety: the dispatcher is SIGKILLed at seeded random moments while it sends to local
counting providers (SendGrid email, Twilio SMS), then rerun until done. No message key reaches a
provider twice; every ledger row ends in a final state with a reason; `unknown` only for messages
in flight at a kill, and `crmflow ledger status` reports them."""

import json
import os
import random
from datetime import timedelta
from pathlib import Path

from helpers_reliability import (
    AS_OF,
    FINAL_STATES,
    build_world,
    ledger_rows,
    providers_running,
    run_dispatcher,
)
from typer.testing import CliRunner

TRIALS = int(os.environ.get("CRMFLOW_CRASH_TRIALS", "5"))
USERS = int(os.environ.get("CRMFLOW_CRASH_USERS", "40"))
BATCH = 5


def check_crash_invariants(warehouse: str, accepted: dict[str, int], kills: int) -> dict[str, int]:
    rows = ledger_rows(warehouse)
    by_state: dict[str, int] = {}
    for row in rows:
        by_state[row["state"]] = by_state.get(row["state"], 0) + 1
        assert row["state"] in FINAL_STATES, row
        if row["state"] != "sent":
            assert row["reason"] or row["error"], row
        if row["state"] == "sent":
            # recorded as sent = the provider accepted it, exactly once
            assert accepted.get(row["message_key"]) == 1, row
        elif row["state"] != "unknown":
            assert row["message_key"] not in accepted, row
    assert all(count == 1 for count in accepted.values()), {k: c for k, c in accepted.items() if c > 1}
    keys = {r["message_key"] for r in rows}
    assert set(accepted) <= keys, f"the provider got keys the ledger does not know: {sorted(set(accepted) - keys)[:5]}"
    # Only the batch in flight at each kill can be unknown: one claimed batch per channel at a time.
    assert by_state.get("unknown", 0) <= kills * BATCH, by_state
    return by_state


def test_sigkill_during_dispatch_never_sends_twice(tmp_path: Path, monkeypatch) -> None:
    world = build_world(tmp_path, USERS, ("email", "sms"), batch_size=BATCH)
    world_file = world.save(tmp_path / "world.json")
    rng = random.Random(20261122)
    kills = 0
    # Each accepted request takes 15 ms at the provider, so a kill often lands mid-request. The kill
    # is timed by progress (a seeded number of further messages accepted), not by the clock, so it
    # lands while messages are being sent however fast or loaded the machine is.
    with providers_running(seed=7, delay_s=0.015) as providers:
        as_of = AS_OF
        for _trial in range(TRIALS):
            as_of += timedelta(minutes=1)
            target = sum(providers.accepted().values()) + rng.randint(1, 2 * USERS // (TRIALS + 1))
            run = run_dispatcher(world_file, as_of, providers.env(),
                                 kill_when=lambda target=target: sum(providers.accepted().values()) >= target)
            assert run.killed or run.returncode == 0, run.stderr
            kills += run.killed
        final = run_dispatcher(world_file, as_of + timedelta(minutes=1), providers.env())
        assert final.returncode == 0, final.stderr
        accepted = providers.accepted()
    assert kills >= max(1, TRIALS - 2), "the kills should land while messages are still being sent"
    by_state = check_crash_invariants(world.warehouse, accepted, kills)
    print(f"kills={kills} states={by_state}")
    assert by_state.get("sent", 0) + by_state.get("unknown", 0) == 2 * USERS, by_state

    # `crmflow ledger status` lists exactly the unknown rows, with their reason.
    from orchestration.cli import app

    monkeypatch.setenv("CRMFLOW_WAREHOUSE", world.warehouse)
    result = CliRunner().invoke(app, ["ledger", "status", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    unknown_keys = {r["message_key"] for r in ledger_rows(world.warehouse) if r["state"] == "unknown"}
    assert {r["message_key"] for r in report["unknown"]} == unknown_keys
    assert all("not resent" in r["reason"] for r in report["unknown"])
    # A rerun after everything is final sends nothing more.
    with providers_running() as providers:
        again = run_dispatcher(world_file, AS_OF + timedelta(days=1), providers.env())
        assert again.returncode == 0 and providers.accepted() == {}, again.stderr
