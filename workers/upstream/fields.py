"""Lenient reading of an upstream's optional data fields. An upstream that sends a value trawl
cannot use ("1.2k" for a count, a string where an object belongs) costs that one field, not the
item: the field is None in the record and its name is kept, so the worker can say so. Fields
that identify the item are read by the adapters themselves, and their absence is the item's
(retryable) failure instead."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal, InvalidOperation
from typing import Any


class Fields:
    """Reads the fields of one upstream object; `unparsed` names those left None."""

    def __init__(self) -> None:
        self.unparsed: list[str] = []

    def _bad(self, name: str) -> None:
        self.unparsed.append(name)

    def text(self, value: Any, name: str) -> str | None:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)  # an id or a name sent as a number is still the same text
        self._bad(name)
        return None

    def integer(self, value: Any, name: str) -> int | None:
        """An int, an integral float, or a string of digits (TikTok's statsV2 sends those)."""
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
            return int(value.strip())
        self._bad(name)
        return None

    def number(self, value: Any, name: str) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool):
            self._bad(name)
            return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            self._bad(name)
            return None
        if not math.isfinite(number):
            self._bad(name)
            return None
        return number

    def flag(self, value: Any, name: str) -> bool | None:
        if value is None or isinstance(value, bool):
            return value
        self._bad(name)
        return None

    def price(self, value: Any, name: str) -> str | None:
        """A decimal string ('10500.99'); anything else is left out rather than guessed."""
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self._bad(name)
            return None
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            self._bad(name)
            return None
        if not number.is_finite() or number < 0:
            self._bad(name)
            return None
        return format(number, "f")  # never exponent notation: '1E+3' is not a price

    def epoch_seconds(self, value: Any, name: str) -> dt.datetime | None:
        seconds = self.integer(value, name)
        if seconds is None:
            return None
        try:
            return dt.datetime.fromtimestamp(seconds, dt.UTC)
        except (OverflowError, OSError, ValueError):
            self._bad(name)
            return None

    def mapping(self, value: Any, name: str) -> dict[str, Any]:
        """An object's members; {} (and `name` noted) when the value is not an object."""
        if value is None:
            return {}
        if isinstance(value, dict):
            return value
        self._bad(name)
        return {}
