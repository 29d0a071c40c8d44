"""The report's one number format (crmflow/report/formats.py)."""

from __future__ import annotations

import math

import pytest

from crmflow.report import formats


@pytest.mark.parametrize(("value", "text"), [(0, "0"), (7, "7"), (1234, "1,234"), (1234567, "1,234,567"),
                                             (12.0, "12"), (None, "–"), (math.nan, "–")])
def test_counts_have_thousands_separators_and_no_decimals(value, text):
    assert formats.count(value) == text


@pytest.mark.parametrize(("value", "text"), [(0, "0.00 EUR"), (5, "5.00 EUR"), (1234.5, "1,234.50 EUR"),
                                             (198612.404, "198,612.40 EUR"), (-12.5, "-12.50 EUR"),
                                             (1_250_000, "1,250,000.00 EUR"), (None, "–"), (math.nan, "–")])
def test_money_has_two_decimals_separators_and_names_the_currency(value, text):
    assert formats.money(value, "EUR") == text


@pytest.mark.parametrize(("share", "text"), [(0, "0.0 %"), (0.1234, "12.3 %"), (0.00049, "0.0 %"), (1, "100.0 %"),
                                             (0.025, "2.5 %"), (None, "–"), (math.nan, "–")])
def test_percent_has_one_decimal(share, text):
    assert formats.percent(share) == text


@pytest.mark.parametrize(("diff", "text"), [(0.012, "+1.2 pp"), (-0.3, "-30.0 pp"), (0, "+0.0 pp"), (None, "–")])
def test_points_are_signed_percentage_points(diff, text):
    assert formats.points(diff) == text


@pytest.mark.parametrize(("value", "text"), [(0.0004, "< 0.001"), (0.0123, "0.012"), (1.0, "1.000"), (None, "–")])
def test_p_values(value, text):
    assert formats.p_value(value) == text


def test_plotly_hover_formats_match_the_text_formats():
    """The charts use D3 strings with the same rules as the text functions."""
    assert formats.money_hover("y", "USD") == "%{y:,.2f} USD"
    assert formats.percent_hover("x") == "%{x:.1f} %"
    assert formats.count_hover("y") == "%{y:,d}"
