"""Dispatch throughput per channel against a local mock provider (127.0.0.1), and the rate limiter's
accuracy at a configured rate.

    .venv/bin/python bench/bench_dispatch.py [--emails 20000] [--sms 2000] [--push 2000] [--rate 50]

Targets: email >= 5,000 msg/s (batched personalizations), SMS and push >= 500 msg/s each.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from connectors.channels.base import OutboundMessage
from connectors.channels.config import FcmConfig, SendGridConfig, TwilioConfig
from connectors.channels.fcm import FcmChannel
from connectors.channels.mock_server import MockProvider
from connectors.channels.ratelimit import TokenBucket
from connectors.channels.sendgrid import SendGridChannel
from connectors.channels.twilio import TwilioChannel


def _messages(n: int, channel: str) -> list[OutboundMessage]:
    to = {"email": lambda i: f"user{i}@example.com", "sms": lambda i: f"+1500{i:07d}",
          "push": lambda i: f"token-{i:08d}"}[channel]
    return [OutboundMessage(message_key=f"bench:{channel}:{i}", channel=channel, user_id=f"u{i}", to=to(i),  # type: ignore[arg-type]
                            journey_id="bench", step_id="s1", subject=f"Hello {i}", body=f"Hi {i}, new offers",
                            title="Offer") for i in range(n)]


TARGETS = {"email": 5_000.0, "sms": 500.0, "push": 500.0}


def _run(name: str, channel, messages: list[OutboundMessage], provider: MockProvider) -> dict[str, Any]:
    started = time.perf_counter()
    results = channel.send_batch(messages)
    elapsed = time.perf_counter() - started
    sent = sum(r.status == "sent" for r in results)
    rate = sent / elapsed
    figures = {"sent": sent, "messages": len(messages), "seconds": elapsed, "msg_per_s": rate,
               "requests": provider.request_count, "target_msg_per_s": TARGETS[name],
               "meets_target": rate >= TARGETS[name]}
    print(f"{name:6} {sent:>7} sent in {elapsed:6.2f}s = {rate:9,.0f} msg/s over {provider.request_count} requests "
          f"(target >= {TARGETS[name]:,.0f}: {'OK' if figures['meets_target'] else 'BELOW'})", flush=True)
    return figures


def rate_limiter_accuracy(rate: float) -> dict[str, Any]:
    """Take 2 s worth of tokens from a fresh bucket; the measured rate should be the configured one."""
    bucket = TokenBucket(rate)
    n = int(rate * 2)
    started = time.perf_counter()
    for _ in range(n + 1):  # the first token is free (a full bucket of one): n intervals follow
        bucket.acquire()
    measured = n / (time.perf_counter() - started)
    error = (measured - rate) / rate * 100
    print(f"rate limiter: configured {rate:.0f}/s, measured {measured:.2f}/s over {n} tokens "
          f"({error:+.2f}%, target within ±5%: {'OK' if abs(error) <= 5 else 'OUT'})", flush=True)
    return {"configured_per_s": rate, "measured_per_s": measured, "error_pct": error, "tokens": n,
            "within_5_pct": abs(error) <= 5}


def measure(emails: int = 20_000, sms: int = 2_000, push: int = 2_000, rates: tuple[float, ...] = (50.0,),
            concurrency: int = 16) -> dict[str, Any]:
    """Throughput per channel against a fresh 127.0.0.1 mock provider each, then rate-limiter runs."""
    channels: dict[str, Any] = {}
    with MockProvider(record_bodies=False) as provider:
        email = SendGridChannel(SendGridConfig(provider="sendgrid", from_email="bench@example.com",
                                               max_concurrency=4), "SG.bench", host=provider.url)
        channels["email"] = _run("email", email, _messages(emails, "email"), provider)
    with MockProvider(record_bodies=False) as provider:
        twilio = TwilioChannel(TwilioConfig(provider="twilio", max_concurrency=concurrency), "AC" + "0" * 32,
                               "token", from_number="+15005550006", api_base=provider.url)
        channels["sms"] = _run("sms", twilio, _messages(sms, "sms"), provider)
    with MockProvider(record_bodies=False) as provider:
        fcm = FcmChannel(FcmConfig(provider="fcm", max_concurrency=concurrency), "bench", "token",
                         api_base=provider.url)
        channels["push"] = _run("push", fcm, _messages(push, "push"), provider)
    return {"channels": channels, "rate_limiter": [rate_limiter_accuracy(r) for r in rates]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--emails", type=int, default=20_000)
    parser.add_argument("--sms", type=int, default=2_000)
    parser.add_argument("--push", type=int, default=2_000)
    parser.add_argument("--rate", type=float, action="append", help="rate-limiter accuracy run(s), per second "
                        "(default: 50 and 500)")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    measure(args.emails, args.sms, args.push, tuple(args.rate or (50.0, 500.0)), args.concurrency)


if __name__ == "__main__":
    main()
