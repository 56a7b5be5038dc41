"""docs/settings.md has one row per variable of the declaration table, and says what the
table says (default, accepted values, meaning, attribute)."""

from __future__ import annotations

import re
from pathlib import Path

from wn_persist_plugin.settings import SETTINGS, Setting

DOCS = Path(__file__).resolve().parent.parent / "docs" / "settings.md"
VARIABLE_ROW = re.compile(r"^\| `[A-Z][A-Z0-9_]*` \|")


def expected_row(setting: Setting) -> list[str]:
    default = f"`{setting.shown_default}`" if setting.shown_default else ""
    values = setting.kind.describe()
    if setting.secret:
        values = f"{values}; secret" if values else "secret"
    attribute = f"`settings.{setting.attribute}`" if setting.attribute else ""
    return [f"`{setting.name}`", default, values, setting.help, attribute]


def documented_rows() -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in DOCS.read_text().splitlines():
        if VARIABLE_ROW.match(line):
            cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
            rows[cells[0].strip("`")] = cells
    return rows


def test_every_variable_has_a_row_and_every_row_a_variable():
    documented = documented_rows()
    assert sorted(documented) == sorted(s.name for s in SETTINGS)


def test_rows_say_what_the_table_says():
    documented = documented_rows()
    wrong = [
        "| " + " | ".join(expected_row(s)) + " |"
        for s in SETTINGS
        if documented.get(s.name) != expected_row(s)
    ]
    assert not wrong, "docs/settings.md rows to update:\n" + "\n".join(wrong)


def test_rows_follow_the_table_order():
    assert list(documented_rows()) == [s.name for s in SETTINGS]
