"""Loading webhook envelopes into delivery_events and suppression_list (set-based, deduplicated,
verified again at load time), the ledger join and dead-address suppression from dispatch results."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pytest
from helpers_channels import new_p256_key, sendgrid_envelope, twilio_envelope

from connectors.delivery.envelope import EnvelopeWriter
from crmflow.delivery_events import DeliveryKeys, load_delivery_events
from crmflow.warehouse import ensure_ops_tables

AS_OF = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
TOKEN = "twilio-auth-token"


def sg_event(i: int, event: str, **extra) -> dict:
    return {"email": f"User{i}@Example.com", "event": event, "sg_event_id": f"ev-{i}-{event}",
            "sg_message_id": f"msg{i}.filter", "timestamp": 1795000000 + i, "message_key": f"j1:s1:u{i}",
            "user_id": f"u{i}", **extra}


@pytest.fixture
def env(tmp_path):
    private, public_b64 = new_p256_key()
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("set TimeZone='UTC'")
    ensure_ops_tables(con)
    yield con, tmp_path / "landing", private, DeliveryKeys(public_b64, TOKEN)
    con.close()


def write(landing, envelope, second=0):
    return EnvelopeWriter(landing).write(envelope, datetime(2026, 11, 22, 10, 0, second, tzinfo=UTC))


def test_sendgrid_events_load_dedupe_and_suppress(env):
    con, landing, private, keys = env
    events = [sg_event(1, "delivered"), sg_event(1, "open"), sg_event(2, "bounce", type="bounce", reason="550"),
              sg_event(3, "bounce", type="blocked"), sg_event(4, "spamreport"), sg_event(5, "group_unsubscribe"),
              sg_event(6, "click", url="https://shop.example.com/x")]
    write(landing, sendgrid_envelope(private, events), 1)
    write(landing, sendgrid_envelope(private, events[:2]), 2)  # provider re-sent two events
    stats = load_delivery_events(con, landing, keys, AS_OF)
    assert (stats.files_loaded, stats.envelopes_rejected, stats.events_read, stats.events_inserted) == (2, 0, 9, 7)
    assert stats.duplicates_skipped == 2
    rows = con.execute("select event_id, message_key, address, user_id, event from delivery_events "
                       "order by event_id").fetchall()
    assert rows[0] == ("ev-1-delivered", "j1:s1:u1", "user1@example.com", "u1", "delivered")
    assert con.execute("select url from delivery_events where event = 'click'").fetchone()[0].startswith("https://")
    suppressed = con.execute("select address, reason, source from suppression_list order by address").fetchall()
    assert suppressed == [("user2@example.com", "bounce", "sendgrid"), ("user4@example.com", "spamreport", "sendgrid"),
                          ("user5@example.com", "unsubscribe", "sendgrid")]  # 'blocked' bounce is not suppressed
    again = load_delivery_events(con, landing, keys, AS_OF)  # idempotent: files already loaded
    assert again.files_skipped == 2 and again.events_inserted == 0


def test_tampered_and_unsigned_envelopes_are_rejected(env):
    con, landing, private, keys = env
    good = sendgrid_envelope(private, [sg_event(1, "delivered")])
    tampered = sendgrid_envelope(private, [sg_event(2, "delivered")])
    tampered = type(tampered)(tampered.provider, tampered.received_at, tampered.url, tampered.headers,
                              tampered.body.replace("delivered", "bounce"))
    unsigned = type(good)("sendgrid", good.received_at, good.url, {}, good.body.replace("ev-1", "ev-9"))
    for n, envelope in enumerate((good, tampered, unsigned)):
        write(landing, envelope, n)
    (landing / "delivery_events" / "sendgrid" / "broken.json").write_text("{not json")
    stats = load_delivery_events(con, landing, keys, AS_OF)
    assert stats.envelopes == 4 and stats.envelopes_rejected == 3 and stats.events_inserted == 1
    assert any("signature does not verify" in r for r in stats.rejections)
    assert any("broken.json" in r for r in stats.rejections)
    assert con.execute("select count(*) from suppression_list").fetchone()[0] == 0


def test_missing_key_leaves_files_waiting(env):
    con, landing, private, keys = env
    write(landing, sendgrid_envelope(private, [sg_event(1, "delivered")]))
    stats = load_delivery_events(con, landing, DeliveryKeys(None, None), AS_OF)
    assert stats.files_waiting == 1 and stats.events_inserted == 0
    assert load_delivery_events(con, landing, keys, AS_OF).events_inserted == 1


def test_twilio_callbacks_stop_and_ledger_join(env):
    con, landing, private, keys = env
    con.execute("create table send_ledger (message_key varchar, user_id varchar, provider_message_id varchar)")
    con.execute("insert into send_ledger values ('j1:s1:u7', 'u7', 'SM7'), ('j1:s1:u8', 'u8', 'SM8')")
    callbacks = [
        twilio_envelope(TOKEN, {"MessageSid": "SM7", "MessageStatus": "delivered", "To": "+15005550007"},
                        query="message_key=j1%3As1%3Au7"),
        twilio_envelope(TOKEN, {"MessageSid": "SM8", "MessageStatus": "undelivered", "To": "+15005550008",
                                "ErrorCode": "21610"}),  # no message_key in the URL: joined by sid
        twilio_envelope(TOKEN, {"MessageSid": "SM8", "MessageStatus": "undelivered", "To": "+15005550008",
                                "ErrorCode": "21610"}),  # duplicate callback
        twilio_envelope(TOKEN, {"MessageSid": "SMin1", "From": "+15005550009", "Body": " stop "},
                        path="/twilio/inbound"),
        twilio_envelope("wrong-token", {"MessageSid": "SM9", "MessageStatus": "delivered", "To": "+15005550010"}),
    ]
    for envelope in callbacks:
        write(landing, envelope)
    path = landing / "delivery_events" / "twilio"
    with next(path.glob("*.jsonl")).open("a") as handle:
        handle.write('{"envelope": "crmflow.webhook/v1", "provider": "twi')  # being written right now
    stats = load_delivery_events(con, landing, keys, AS_OF)
    assert stats.envelopes == 5 and stats.envelopes_rejected == 1 and stats.events_inserted == 3
    rows = con.execute("select provider_message_id, message_key, user_id, event, reason from delivery_events "
                       "order by provider_message_id").fetchall()
    assert rows == [("SM7", "j1:s1:u7", "u7", "delivered", None), ("SM8", "j1:s1:u8", "u8", "undelivered", "21610"),
                    ("SMin1", None, None, "unsubscribe", None)]
    assert con.execute("select address, channel, reason, user_id from suppression_list order by 1").fetchall() == [
        ("+15005550008", "sms", "unsubscribe", "u8"), ("+15005550009", "sms", "unsubscribe", None)]
    # the partial last line kept the file "unfinished": it is read again next time, without duplicates
    assert load_delivery_events(con, landing, keys, AS_OF).events_inserted == 0


def test_invalid_utf8_envelopes_are_rejected_not_fatal(tmp_path):
    """A Twilio callback file with a line of invalid UTF-8 and a SendGrid file that is not UTF-8:
    both are rejected with a reason; the run goes on."""
    from crmflow.delivery_events import _read_envelopes

    twilio = tmp_path / "callbacks.jsonl"
    twilio.write_bytes(b'{"broken": "\xff\xfe"}\n')
    (result, partial) = _read_envelopes(twilio, "twilio")
    assert partial is False
    assert result == [(1, "invalid UTF-8 at byte 12")]  # the 0xff after `{"broken": "`

    sendgrid = tmp_path / "events.json"
    sendgrid.write_bytes(b"\xc3\x28[]")
    assert _read_envelopes(sendgrid, "sendgrid") == ([(1, "invalid UTF-8 at byte 0")], False)
