"""Spreadsheet-safe CSV cells: a text cell a spreadsheet would run as a formula gets a leading
apostrophe (OWASP "CSV injection"). Used for rejects.csv and CSV output records."""

from __future__ import annotations

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def escape_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return str(value).lower() if isinstance(value, bool) else str(value)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text
