"""The same webhook envelopes loaded on DuckDB and on PostgreSQL give the same delivery_events,
suppression_list and delivery_event_files (order-independent, timestamps as UTC instants)."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
from helpers_channels import new_p256_key, sendgrid_envelope, twilio_envelope
from helpers_postgres import postgres_url, postgres_warehouse  # noqa: F401 - fixtures
from helpers_reliability import table_rows

from connectors.delivery.envelope import EnvelopeWriter
from crmflow.delivery_events import DeliveryKeys, load_delivery_events
from crmflow.warehouse import apply_migrations, open_warehouse

AS_OF = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
TOKEN = "twilio-auth-token"


def sg_event(i: int, event: str, **extra) -> dict:
    return {"email": f"User{i}@Example.com", "event": event, "sg_event_id": f"ev-{i}-{event}",
            "sg_message_id": f"msg{i}.filter", "timestamp": 1795000000 + i, "user_id": f"u{i}", **extra}


def landing_with_envelopes(tmp_path):
    """SendGrid events (duplicates, a blocked bounce, events without an id or an event field) and
    Twilio callbacks (joined to the ledger by sid, a STOP, a duplicate, a bad signature)."""
    private, public_b64 = new_p256_key()
    landing = tmp_path / "landing"
    writer = EnvelopeWriter(landing)
    events = [sg_event(1, "delivered", message_key="k1"), sg_event(1, "open"), sg_event(2, "bounce", reason="550"),
              sg_event(3, "bounce", type="blocked"), sg_event(4, "spamreport"), sg_event(5, "group_unsubscribe"),
              sg_event(6, "click", url="https://shop.example.com/x?a=1"),
              {"email": "anon@example.com", "event": "dropped", "timestamp": "not a time"},  # no sg_event_id
              {"email": "noevent@example.com", "sg_event_id": "ev-x"}]  # no event: counted, not loaded
    envelopes = [sendgrid_envelope(private, events), sendgrid_envelope(private, events[:3]),
                 twilio_envelope(TOKEN, {"MessageSid": "SM7", "MessageStatus": "delivered", "To": "+15005550007"},
                                 query="message_key=k7"),
                 twilio_envelope(TOKEN, {"MessageSid": "SM8", "MessageStatus": "undelivered", "To": "+15005550008",
                                         "ErrorCode": "21610"}),
                 twilio_envelope(TOKEN, {"MessageSid": "SM8", "MessageStatus": "undelivered", "To": "+15005550008",
                                         "ErrorCode": "21610"}),
                 twilio_envelope(TOKEN, {"MessageSid": "SMin1", "From": "+15005550009", "Body": " stop "},
                                 path="/twilio/inbound"),
                 twilio_envelope("wrong-token", {"MessageSid": "SM9", "MessageStatus": "delivered"})]
    for second, envelope in enumerate(envelopes):
        writer.write(envelope, datetime(2026, 11, 22, 10, 0, second, tzinfo=UTC))
    return landing, DeliveryKeys(public_b64, TOKEN)


def load_on(warehouse, landing, keys) -> dict[str, list]:
    apply_migrations(warehouse)
    warehouse.write_arrow(pa.table({"message_key": ["k7", "k8", "k1"], "user_id": ["u7", "u8", "u1"],
                                    "provider_message_id": ["SM7", "SM8", "msg1.filter"]}), "send_ledger",
                          mode="replace")
    first = load_delivery_events(warehouse, landing, keys, AS_OF)
    again = load_delivery_events(warehouse, landing, keys, AS_OF)
    stats = (first.files_loaded, first.envelopes, first.envelopes_rejected, first.events_read,
             first.events_inserted, first.duplicates_skipped, first.suppressions_added, sorted(first.rejections),
             again.files_skipped, again.events_inserted)
    return {"stats": [stats], **{t: table_rows(warehouse, t) for t in
                                 ("delivery_events", "suppression_list", "delivery_event_files")}}


def test_delivery_events_are_the_same_on_duckdb_and_postgres(tmp_path, postgres_warehouse):  # noqa: F811
    landing, keys = landing_with_envelopes(tmp_path)
    with open_warehouse(tmp_path / "w.duckdb") as duck:
        on_duckdb = load_on(duck, landing, keys)
    on_postgres = load_on(postgres_warehouse, landing, keys)
    (stats,) = on_duckdb["stats"]
    # 9 + 3 SendGrid events (one without an event field) and 4 Twilio callbacks read; 4 duplicates
    assert stats[:7] == (3, 7, 1, 15, 11, 4, 6), stats
    assert any("without an 'event' field" in r for r in stats[7]) and stats[8:] == (3, 0)
    events = {row[0]: row for row in on_duckdb["delivery_events"]}
    assert events["ev-1-open"][3] == "k1"  # joined to the ledger by sg_message_id
    assert [e for e in events if e.startswith("sg:")] and events["tw-in:SMin1"][5] == "unsubscribe"
    for table, rows in on_duckdb.items():
        assert on_postgres[table] == rows, table
