"""Streams an input CSV from S3 row by row, never holding the file: a byte-counting line
reader under the stdlib csv module, so every row's end offset is known for checkpoints."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

# A row must fit in one SQS message (256 KiB) with its envelope; the csv module's own field
# limit is raised far above that so an over-long line becomes a clear reject, not a crash.
MAX_ROW_BYTES = 200 * 1024
csv.field_size_limit(64 * 1024 * 1024)

DELIMITERS = (",", ";", "\t")
TARGET_COLUMNS: dict[str, tuple[str, ...]] = {
    # In order of preference when a file has more than one.
    "tiktok": ("username", "handle", "account", "unique_id", "profile_url", "url"),
    "product": ("url", "product_url", "link"),
}
_BOM = b"\xef\xbb\xbf"


class Readable(Protocol):
    def read(self, amt: int = ..., /) -> bytes: ...


class BadFile(ValueError):
    """The whole file cannot be read as a job; the message is what the manifest shows."""


@dataclass(frozen=True)
class Header:
    columns: tuple[str, ...]
    delimiter: str
    target_index: int
    data_offset: int  # byte offset of the first data row

    @property
    def target_column(self) -> str:
        return self.columns[self.target_index]


@dataclass(frozen=True)
class RawRow:
    row: int  # 1-based record number in the file; the header is row 1
    end_offset: int  # byte offset just past this row
    size: int
    fields: list[str] | None  # None when the csv module could not parse the row
    error: str | None = None


def iter_lines(stream: Readable, chunk_size: int = 1 << 16) -> Iterator[bytes]:
    """Lines with their endings, read in chunks; memory is bounded by the longest line."""
    pending = b""
    while chunk := stream.read(chunk_size):
        pending += chunk
        start = 0
        while (end := pending.find(b"\n", start)) != -1:
            yield pending[start : end + 1]
            start = end + 1
        pending = pending[start:]
    if pending:
        yield pending


def canonical_header(name: str) -> str:
    """'  Product-URL ' -> 'product_url' (case, surrounding spaces, space/-/_ ignored)."""
    return re.sub(r"[\s\-_]+", "_", name.strip().lower())


def find_target_column(platform: str, columns: Iterable[str]) -> int:
    names = [canonical_header(c) for c in columns]
    wanted = TARGET_COLUMNS["tiktok" if platform == "tiktok" else "product"]
    for candidate in wanted:
        if candidate in names:
            return names.index(candidate)
    found = ", ".join(repr(c) for c in columns) or "none"
    raise BadFile(
        f"no usable column: expected one of {', '.join(wanted)} (case, spaces, '-' and '_' ignored);"
        f" headers found: {found}"
    )


def read_header(lines: Iterator[bytes], platform: str) -> Header:
    first = next(lines, None)
    if first is None or not first.strip(b"\r\n\t ,;" + _BOM):
        raise BadFile("file is empty: expected a header row, then one row per item")
    offset = len(first)
    try:
        text = first.removeprefix(_BOM).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadFile(
            f"header row is not UTF-8 ({exc.reason} at byte {exc.start}); save the file as CSV UTF-8"
        ) from exc
    delimiter = max(DELIMITERS, key=lambda d: len(next(csv.reader([text], delimiter=d))))
    columns = tuple(c.strip() for c in next(csv.reader([text], delimiter=delimiter)))
    return Header(columns, delimiter, find_target_column(platform, columns), offset)


class RowReader:
    """Yields RawRow for every record after `start_offset`, numbering from `first_row`."""

    def __init__(self, lines: Iterator[bytes], delimiter: str, start_offset: int, first_row: int) -> None:
        self._lines = lines
        self._offset = start_offset
        self._row = first_row
        self._reader = csv.reader(self._decoded(), delimiter=delimiter)

    def _decoded(self) -> Iterator[str]:
        for line in self._lines:
            self._offset += len(line)
            # surrogateescape keeps undecodable bytes visible, so the row can be rejected by
            # name instead of failing the whole file.
            yield line.decode("utf-8", "surrogateescape")

    def __iter__(self) -> Iterator[RawRow]:
        start = self._offset
        while True:
            try:
                fields: list[str] | None = next(self._reader)
                error = None
            except StopIteration:
                return
            except csv.Error as exc:
                fields, error = None, f"unreadable CSV row: {exc}"
            yield RawRow(self._row, self._offset, self._offset - start, fields, error)
            self._row += 1
            start = self._offset
