"""ISK as people write it: `1.2b`, `350m`, `12.5k`, `0`."""

from __future__ import annotations

from decimal import Decimal

_UNITS = ((Decimal(10) ** 12, "t"), (Decimal(10) ** 9, "b"), (Decimal(10) ** 6, "m"),
          (Decimal(10) ** 3, "k"))  # fmt: skip


def _short(number: Decimal) -> str:
    """At most one decimal below 100, none above; a trailing `.0` dropped."""
    text = f"{number:.1f}" if number < 100 else f"{number:.0f}"
    return text[:-2] if text.endswith(".0") else text


def format_isk(value: Decimal | float | int) -> str:
    """`value` ISK in three significant figures or fewer with a unit suffix
    (k, m, b, t); below 1,000 the whole number."""
    amount = Decimal(str(value))
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    for index, (size, suffix) in enumerate(_UNITS):
        if amount >= size:
            text = _short(amount / size)
            if Decimal(text) >= 1000 and index > 0:  # 999.95m rounds to 1000m: say 1b
                bigger, bigger_suffix = _UNITS[index - 1]
                text, suffix = _short(amount / bigger), bigger_suffix
            return f"{sign}{text}{suffix}"
    whole = f"{amount:.0f}"
    if whole == "1000":
        return f"{sign}1k"
    return "0" if whole == "0" else f"{sign}{whole}"
