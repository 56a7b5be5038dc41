"""ISK as people write it."""

from decimal import Decimal

import pytest

from wn_persist_plugin.charts.isk import format_isk


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (1_200_000_000, "1.2b"),
        (350_000_000, "350m"),
        (12_500, "12.5k"),
        (0, "0"),
        (Decimal("0.00"), "0"),
        (999, "999"),
        (1_000, "1k"),
        (999_950_000, "1b"),
        (2_500_000_000_000, "2.5t"),
        (-5_000_000, "-5m"),
        (123_456_789.99, "123m"),
        (Decimal("1234567.89"), "1.2m"),
    ],
)
def test_format_isk(value, shown):
    assert format_isk(value) == shown
