"""Parallel dispatch workers on PostgreSQL against a mock Twilio with 50 ms latency per request:
messages per second with 1 worker and with N workers (target: N=4 sends >= 3.5x), and the provider
rate limit shared by the N workers (target: within 5 % of the configured rate, measured at the mock).

    .venv/bin/python bench/bench_dispatch_workers.py [--messages 4800] [--workers 4] [--rate 40] [--concurrency 2]

The defaults are the run in docs/reliability.md (about 6 minutes); fewer messages let the workers'
start weigh more, a higher concurrency needs more CPU than a shared 2-core box has.

Needs the PostgreSQL server of the tests (127.0.0.1:5432, CRMFLOW_TEST_PG_*); creates and drops its
own database. Figures go to docs/reliability.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from helpers_dispatch import build_dispatch_world  # noqa: E402
from helpers_postgres import fresh_database  # noqa: E402
from helpers_reliability import AS_OF, ENVIRONMENT, FAKE_SECRETS, policies_yaml  # noqa: E402

from connectors.channels.config import load_channels_config  # noqa: E402
from connectors.channels.factory import build_channels  # noqa: E402
from connectors.channels.mock_server import Action, MockProvider  # noqa: E402
from crmflow.journeys.runner import JourneyConfig, dispatch_all  # noqa: E402
from crmflow.warehouse import open_warehouse  # noqa: E402

LATENCY_S = 0.05
CONCURRENCY = 2  # default requests in flight per worker (--concurrency)


def channels_yaml(rate: float | None, concurrency: int = CONCURRENCY) -> str:
    limit = f", rate_limit_per_s: {rate}" if rate else ""
    return f"""environments:
  {ENVIRONMENT}:
    email: {{provider: outbox}}
    sms: {{provider: twilio, max_concurrency: {concurrency}, timeout_s: 5{limit}}}
    push: {{provider: outbox}}
    webhook: {{provider: outbox}}
"""


def replan(url: str) -> None:
    with open_warehouse(url) as wh:
        wh.execute("""update send_ledger set state = 'planned', attempts = 0, outcome = null, worker_id = null,
                      lease_until = null, sent_at = null, provider_message_id = null, reason = null""")
        wh.execute("delete from dispatch_channels")


class Latency:
    """The mock's script: every request is accepted after LATENCY_S; arrival times are kept (for the
    rate). No bodies recorded, so the mock itself stays cheap next to the workers."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []

    def __bool__(self) -> bool:
        return True

    def popleft(self) -> Action:
        self.arrivals.append(time.monotonic())
        return Action("hang", delay_s=LATENCY_S)


def run(url: str, marketing: Path, outbox: Path, workers: int, rate: float | None, minute: int,
        concurrency: int = CONCURRENCY) -> dict[str, Any]:
    (marketing / "channels.yaml").write_text(channels_yaml(rate, concurrency))
    replan(url)
    script = Latency()
    with MockProvider(record_bodies=False) as twilio:
        twilio.script = script  # type: ignore[assignment]
        environ = {**FAKE_SECRETS, "TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_FROM": "+15005550006",
                   "TWILIO_API_BASE": twilio.url}
        channels = build_channels(load_channels_config(marketing / "channels.yaml"), ENVIRONMENT, outbox,
                                  environ=environ)
        with open_warehouse(url) as wh:
            started = time.perf_counter()
            report = dispatch_all(wh, JourneyConfig(marketing), AS_OF + timedelta(minutes=minute), channels, None,
                                  workers=workers)
            elapsed = time.perf_counter() - started
        arrivals = sorted(script.arrivals)
        accepted = dict(twilio.accepted)
    assert report.sent == len(accepted) and all(c == 1 for c in accepted.values()), report.metadata()
    figures: dict[str, Any] = {"workers": workers, "sent": report.sent, "seconds": round(elapsed, 2),
                               "msg_per_s": round(report.sent / elapsed, 1)}
    measured = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else 0.0
    # the same count over the first to the last request the mock received: the sending phase
    # without the dispatch's start (reconcile, policies, forking, staging)
    figures["at_mock_per_s"] = round(measured, 1)
    if rate and len(arrivals) > 1:
        figures.update(rate_limit_per_s=rate, measured_per_s=round(measured, 2),
                       error_pct=round((measured - rate) / rate * 100, 2))
    print(figures, flush=True)
    return figures


def measure(messages: int = 4800, workers: int = 4, rate: float = 40.0, concurrency: int = CONCURRENCY) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder, fresh_database("crmflow_bench_dispatch") as url:
        root = Path(folder)
        world = build_dispatch_world(root, url, messages, ("sms",), policies_yaml(batch_size=500),
                                     channels_yaml(None))
        marketing, outbox = Path(world.marketing_dir), Path(world.outbox_dir)
        one = run(url, marketing, outbox, 1, None, 1, concurrency)
        many = run(url, marketing, outbox, workers, None, 2, concurrency)
        limited = run(url, marketing, outbox, workers, rate, 3, concurrency)
    speedup = many["msg_per_s"] / one["msg_per_s"]
    result = {"one_worker": one, "workers": many, "speedup": round(speedup, 2), "rate_limited": limited,
              "speedup_at_mock": round(many["at_mock_per_s"] / one["at_mock_per_s"], 2),
              "speedup_ok": speedup >= 3.5, "rate_ok": abs(limited["error_pct"]) <= 5}
    print(f"{workers} workers: {speedup:.2f}x one worker (target >= 3.5x: {'OK' if result['speedup_ok'] else 'BELOW'}; "
          f"{result['speedup_at_mock']:.2f}x first to last request at the mock); "
          f"rate limit {rate}/s shared by {workers} workers: measured {limited['measured_per_s']}/s "
          f"({limited['error_pct']:+.2f}%, target within 5%: {'OK' if result['rate_ok'] else 'OUT'})", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=4800)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rate", type=float, default=40.0, help="below what the workers reach unlimited")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help="requests in flight per worker")
    args = parser.parse_args()
    measure(args.messages, args.workers, args.rate, args.concurrency)


if __name__ == "__main__":
    main()
