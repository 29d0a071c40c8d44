"""Settling `unknown` outcomes: delivery events that carry the message key, then the grace period.

An `unknown` row (the request went out and no answer came back, or a worker died after starting it)
is never resent by default. Two things close it, both set-based and portable (DuckDB and PostgreSQL):

1. `settle_from_events`: a provider event carrying its message key (SendGrid custom_args, Twilio
   StatusCallback ?message_key=) proves the provider took the message: the row becomes `sent`, with
   the event's id in event_id and the delivery outcome (delivered / bounced / sent) in `outcome`. A
   row recorded `failed` or closed `lost` that an event contradicts is corrected the same way.
   Runs when delivery events load and again in every dispatch (after its reconcile), so an event
   settles its row within the next tick.
2. `close_after_grace`: an `unknown` row with no event `unknown_grace` after it became unknown is
   probably not delivered: per channel (`after_grace` in marketing/policies.yaml) closed as `lost`
   with the reason (the default), or resent once (`resend_once`; a second unknown is then `lost`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crmflow.journeys.policy_config import DispatchConfig
    from crmflow.warehouse import Warehouse

BOUNCED_EVENTS = ("bounce", "dropped", "undelivered", "failed")
SETTLED_STATES = ("unknown", "lost", "failed")


def settle_from_events(wh: Warehouse, as_of: datetime) -> int:
    """Rows in unknown/lost/failed with a delivery event carrying their key -> `sent`; returns how many."""
    if not (wh.table_exists("delivery_events") and wh.table_exists("send_ledger")):
        return 0
    columns = {r[0] for r in wh.fetch_rows(
        "select column_name from information_schema.columns where table_name = 'send_ledger'")}
    if not {"state", "outcome", "event_id"} <= columns:  # another stage's stand-in ledger (tests)
        return 0
    bounced = ", ".join(f"'{e}'" for e in BOUNCED_EVENTS)
    states = ", ".join(f"'{s}'" for s in SETTLED_STATES)
    return len(wh.fetch_rows(f"""update send_ledger l set state = 'sent', outcome = e.outcome,
            event_id = e.event_id, settled_at = $as_of, sent_at = coalesce(l.sent_at, $as_of),
            reason = 'settled by delivery event ' || e.event || ' (was ' || l.state || ')',
            worker_id = null, lease_until = null, updated_at = $as_of
        from (select message_key, event, event_id,
                     case when event in ({bounced}) then 'bounced' when event = 'delivered' then 'delivered'
                          else 'sent' end as outcome,
                     row_number() over (partition by message_key
                                        order by case when event in ({bounced}) then 0
                                                      when event = 'delivered' then 1 else 2 end,
                                                 occurred_at desc, event_id) as pick
              from delivery_events
              where message_key is not null and provider in ('sendgrid', 'twilio')
                and event not in ('inbound', 'unsubscribe')) e
        where e.pick = 1 and l.message_key = e.message_key and l.state in ({states})
        returning l.message_key""", {"as_of": as_of}))


def describe_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def close_after_grace(wh: Warehouse, as_of: datetime, config: DispatchConfig) -> tuple[int, int]:
    """`unknown` rows older than the grace period: (closed as lost, resent once)."""
    grace = describe_duration(config.unknown_grace)
    cutoff = as_of - config.unknown_grace
    lost = resent = 0
    channels = wh.fetch_rows("select distinct channel from send_ledger where state = 'unknown' order by channel")
    for (channel,) in channels:
        params = {"as_of": as_of, "cutoff": cutoff, "channel": channel}
        if config.grace_policy(channel) == "resend_once":
            resent += len(wh.fetch_rows(f"""update send_ledger set state = 'planned', resends = coalesce(resends, 0) + 1,
                    outcome = null, worker_id = null, lease_until = null, updated_at = $as_of,
                    reason = 'resent once: no delivery event within {grace} after an unknown outcome'
                where state = 'unknown' and channel = $channel and updated_at <= $cutoff
                  and coalesce(resends, 0) = 0
                returning message_key""", params))
        lost += len(wh.fetch_rows(f"""update send_ledger set state = 'lost', outcome = 'lost', updated_at = $as_of,
                reason = 'lost: no delivery event within {grace} after an unknown outcome '
                         || '(probably not delivered); not resent'
            where state = 'unknown' and channel = $channel and updated_at <= $cutoff
            returning message_key""", params))
    return lost, resent
