"""Dispatch throughput per channel against a local mock provider (127.0.0.1), and the rate limiter's
accuracy at a configured rate.

    .venv/bin/python bench/bench_dispatch.py [--emails 20000] [--sms 2000] [--push 2000] [--rate 50]

Targets: email >= 5,000 msg/s (batched personalizations), SMS and push >= 500 msg/s each.
"""

from __future__ import annotations

import argparse
import time

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


def _run(name: str, channel, messages: list[OutboundMessage], provider: MockProvider, target: float) -> None:
    started = time.perf_counter()
    results = channel.send_batch(messages)
    elapsed = time.perf_counter() - started
    sent = sum(r.status == "sent" for r in results)
    rate = sent / elapsed
    print(f"{name:6} {sent:>7} sent in {elapsed:6.2f}s = {rate:9,.0f} msg/s over {provider.request_count} requests "
          f"(target >= {target:,.0f}: {'OK' if rate >= target else 'BELOW'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--emails", type=int, default=20_000)
    parser.add_argument("--sms", type=int, default=2_000)
    parser.add_argument("--push", type=int, default=2_000)
    parser.add_argument("--rate", type=float, default=50.0, help="rate-limiter accuracy run (per second)")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    with MockProvider(record_bodies=False) as provider:
        email = SendGridChannel(SendGridConfig(provider="sendgrid", from_email="bench@example.com",
                                               max_concurrency=4), "SG.bench", host=provider.url)
        _run("email", email, _messages(args.emails, "email"), provider, 5_000)
    with MockProvider(record_bodies=False) as provider:
        sms = TwilioChannel(TwilioConfig(provider="twilio", max_concurrency=args.concurrency), "AC" + "0" * 32,
                            "token", from_number="+15005550006", api_base=provider.url)
        _run("sms", sms, _messages(args.sms, "sms"), provider, 500)
    with MockProvider(record_bodies=False) as provider:
        push = FcmChannel(FcmConfig(provider="fcm", max_concurrency=args.concurrency), "bench", "token",
                          api_base=provider.url)
        _run("push", push, _messages(args.push, "push"), provider, 500)

    bucket = TokenBucket(args.rate)
    n = int(args.rate * 2)
    started = time.perf_counter()
    for _ in range(n + 1):
        bucket.acquire()
    measured = n / (time.perf_counter() - started)
    error = (measured - args.rate) / args.rate * 100
    print(f"rate limiter: configured {args.rate:.0f}/s, measured {measured:.2f}/s over {n} tokens "
          f"({error:+.2f}%, target within ±5%: {'OK' if abs(error) <= 5 else 'OUT'})")


if __name__ == "__main__":
    main()
