"""Last-touch attribution of paid orders to journey messages, per-step/variant counts and the daily
conversion trend after each send: dbt models (dbt_project/models/marts/measurement:
journey_order_attribution, journey_attribution, journey_conversion_trend over
int_measurement__sent_messages). This module only reads their sizes for the run summary.

The rule (docs/measurement.md): a paid order is credited to the latest message sent to the same user
before the order whose journey goal window still covers the order (sent_at < ordered_at <= sent_at
+ window). One order gives credit to at most one message; a message may collect several orders.
"""

from __future__ import annotations

from crmflow.warehouse import Warehouse

ATTRIBUTION_MODELS = ("journey_order_attribution", "journey_attribution", "journey_conversion_trend")


def attribution_counts(wh: Warehouse) -> dict[str, int]:
    """Messages sent, orders attributed and funnel rows, as the dbt models hold them."""
    return {
        "messages_sent": wh.scalar("select count(*) from int_measurement__sent_messages"),
        "orders_attributed": wh.scalar("select count(*) from journey_order_attribution"),
        "attribution_rows": wh.scalar("select count(*) from journey_attribution"),
    }
