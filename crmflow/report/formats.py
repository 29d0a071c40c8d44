"""One number format for the whole report, in the text (cards, tables, notes) and in the charts.

Counts: thousands separators, no decimals (12,345). Money: thousands separators, always two
decimals, the currency code after the number (12,345.60 USD). Shares: percent with one decimal
(12.3 %). Differences of shares: percentage points with a sign and one decimal (+1.2 pp). A value
that does not exist is an en dash, never 0. The D3 format strings below give plotly the same rules
for axes and hover labels (plotly's default separators are the same "." and ",").
"""

from __future__ import annotations

import math

MISSING = "–"

COUNT_D3 = ",d"
COUNT_AXIS_D3 = ","  # ticks may fall between integers (0.5 on a 0..2 axis); ",d" would print 0, 1, 1, 2
MONEY_D3 = ",.2f"
PERCENT_D3 = ".1f"  # the chart values are already multiplied by 100


def is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def count(value: object) -> str:
    return MISSING if is_missing(value) else f"{round(float(value)):,d}"


def money(value: object, currency: str) -> str:
    return MISSING if is_missing(value) else f"{float(value):,.2f} {currency}"


def percent(share: object) -> str:
    """A share in 0..1 as a percentage: 0.1234 -> '12.3 %'."""
    return MISSING if is_missing(share) else f"{float(share) * 100:,.1f} %"


def points(diff: object) -> str:
    """A difference of two shares in percentage points: 0.012 -> '+1.2 pp'."""
    return MISSING if is_missing(diff) else f"{float(diff) * 100:+,.1f} pp"


def p_value(value: object) -> str:
    if is_missing(value):
        return MISSING
    return "< 0.001" if float(value) < 0.001 else f"{float(value):.3f}"


def money_hover(axis: str, currency: str) -> str:
    """A plotly hovertemplate fragment for a money value on `axis` ('x' or 'y')."""
    return f"%{{{axis}:{MONEY_D3}}} {currency}"


def percent_hover(axis: str) -> str:
    return f"%{{{axis}:{PERCENT_D3}}} %"


def count_hover(axis: str) -> str:
    return f"%{{{axis}:{COUNT_D3}}}"
