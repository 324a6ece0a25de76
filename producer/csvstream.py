"""Streams an input CSV from S3 row by row, never holding the file: a byte-counting line
reader under the stdlib csv module, so every row's end offset is known for checkpoints, and
no line or row longer than MAX_ROW_BYTES is ever held in memory whole."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

# A row must fit in one SQS message (256 KiB) with its envelope. Longer rows are skipped by
# byte count and rejected by name; the csv module's own field limit (global, 128 KiB by
# default) is raised so it never fires first with a less helpful message.
MAX_ROW_BYTES = 200 * 1024
csv.field_size_limit(max(csv.field_size_limit(), 2 * MAX_ROW_BYTES))

DELIMITERS = (",", ";", "\t")
TARGET_COLUMNS: dict[str, tuple[str, ...]] = {
    # In order of preference when a file has more than one.
    "tiktok": ("username", "handle", "account", "unique_id", "profile_url", "url"),
    "product": ("url", "product_url", "link"),
}
_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_SEP_LINE = re.compile(r"^sep=([,;\t|])$", re.IGNORECASE)


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
    first_row: int = 2  # the first data row's number, as a spreadsheet shows it
    newline: str = "\n"  # "\r" for a file with old Mac line endings (CR only)

    @property
    def target_column(self) -> str:
        return self.columns[self.target_index]


@dataclass(frozen=True)
class RawRow:
    row: int  # 1-based record number in the file; the header is row 1
    end_offset: int  # byte offset just past this row
    size: int
    fields: list[str] | None  # None when the row cannot be parsed; `error` says why
    error: str | None = None


@dataclass(frozen=True)
class LongLine:
    """A line longer than MAX_ROW_BYTES, read past without being held: its size, and whether it
    has an odd number of quotes (so a quoted field running over several lines is followed)."""

    size: int
    odd_quotes: bool


Line = bytes | LongLine


def iter_lines(
    stream: Readable, chunk_size: int = 1 << 16, max_line: int = MAX_ROW_BYTES, newline: str | None = None
) -> Iterator[Line]:
    """Lines with their endings, read in chunks; memory is bounded by max_line + chunk_size.
    Lines end at LF (so CRLF too), or at CR in a file whose first line ends with a lone CR (old
    Mac line endings, still written by some exports); `newline` fixes the choice when reading
    resumes mid-file."""
    pending = b""
    skipped: LongLine | None = None  # the over-long line being read past, so far
    separator = newline.encode() if newline else None
    while chunk := stream.read(chunk_size):
        pending += chunk
        if separator is None:
            separator = _line_separator(pending, final=len(pending) > max_line)
            if separator is None:
                continue  # no line ending seen yet: read on
        start = 0
        while (end := pending.find(separator, start)) != -1:
            line = pending[start : end + 1]
            if skipped is not None:
                yield _longer(skipped, line)
                skipped = None
            elif len(line) > max_line:
                yield _longer(LongLine(0, False), line)
            else:
                yield line
            start = end + 1
        pending = pending[start:]
        if skipped is not None or len(pending) > max_line:
            skipped, pending = _longer(skipped or LongLine(0, False), pending), b""
    if skipped is not None or pending:
        yield _longer(skipped, pending) if skipped is not None else pending


def _line_separator(data: bytes, final: bool) -> bytes | None:
    """b"\r" when the first line ending in `data` is a lone CR, b"\n" for LF or CRLF; None
    while no ending (or only a CR at the very end) has been seen, unless `final`."""
    ends = [i for i in (data.find(b"\n"), data.find(b"\r")) if i != -1]
    if not ends:
        return b"\n" if final else None
    first = min(ends)
    if data[first : first + 1] == b"\n":
        return b"\n"
    if first + 1 < len(data):
        return b"\n" if data[first + 1 : first + 2] == b"\n" else b"\r"
    return b"\n" if final else None


def _longer(line: LongLine, more: bytes) -> LongLine:
    return LongLine(line.size + len(more), line.odd_quotes ^ (more.count(b'"') % 2 == 1))


def canonical_header(name: str) -> str:
    """'  Product-URL ' -> 'product_url' (case, surrounding spaces, space/-/_ ignored)."""
    return re.sub(r"[\s\-_]+", "_", name.strip().lower())


def find_target_column(platform: str, columns: Iterable[str]) -> int:
    columns = list(columns)
    names = [canonical_header(c) for c in columns]
    wanted = TARGET_COLUMNS["tiktok" if platform == "tiktok" else "product"]
    for candidate in wanted:
        if candidate in names:
            return names.index(candidate)
    found = ", ".join(repr(c) for c in columns) or "none"
    hint = ""
    if any(_looks_like_data(c) for c in columns):
        hint = f"; the first row looks like data, not a header: add a header row first, e.g. '{wanted[0]}'"
    raise BadFile(
        f"no usable column: expected one of {', '.join(wanted)} (case, spaces, '-' and '_' ignored);"
        f" headers found: {found}{hint}"
    )


def _looks_like_data(cell: str) -> bool:
    """A header cell that is a handle or a link: the file most likely has no header row."""
    text = cell.strip().lower()
    # "@name", "https://...", "www.shop.com/...", "tokopedia.com/shop/item"
    return text.startswith(("@", "http://", "https://", "www.")) or (
        "/" in text and "." in text.split("/")[0]
    )


def _header_text(line: Line | None) -> str:
    if isinstance(line, LongLine):
        raise BadFile(f"header row is {line.size:,} bytes long; is this a CSV file?")
    if line is None or _blank(line):
        raise BadFile("file is empty: expected a header row, then one row per item")
    if line.startswith(_UTF16_BOMS):
        raise BadFile(
            "file is UTF-16 (as Excel's 'Unicode Text' saves it); save it as 'CSV UTF-8 (Comma delimited)'"
        )
    try:
        return line.removeprefix(_BOM).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadFile(
            f"header row is not UTF-8 ({exc.reason} at byte {exc.start}); save the file as CSV UTF-8"
        ) from exc


def _blank(line: Line | None) -> bool:
    return isinstance(line, bytes) and not line.strip(b"\r\n\t ,;" + _BOM)


def read_header(lines: Iterator[Line], platform: str) -> Header:
    # Blank lines above the header (as a spreadsheet exports empty top rows) are skipped, but
    # counted, so row numbers stay the ones the spreadsheet shows.
    first, offset, row = next(lines, None), 0, 1
    while _blank(first) and (following := next(lines, None)) is not None:
        assert isinstance(first, bytes)
        offset, row, first = offset + len(first), row + 1, following
    text = _header_text(first)
    newline = "\r" if isinstance(first, bytes) and first.endswith(b"\r") else "\n"
    offset += len(first) if isinstance(first, bytes) else 0
    # Excel's "sep=;" first line names the delimiter; the header is the line after it (Excel
    # does not show the sep line, so it is not counted).
    named = _SEP_LINE.match(text.strip())
    if named:
        second = next(lines, None)
        text = _header_text(second)
        offset += len(second) if isinstance(second, bytes) else 0
    try:
        # Otherwise the delimiter is whichever of , ; and tab splits the header into the most columns.
        delimiter = (
            named.group(1)
            if named
            else max(DELIMITERS, key=lambda d: len(next(csv.reader([text], delimiter=d))))
        )
        columns = tuple(c.strip() for c in next(csv.reader([text], delimiter=delimiter)))
    except csv.Error as exc:
        raise BadFile(f"header row is not valid CSV: {exc}") from exc
    return Header(columns, delimiter, find_target_column(platform, columns), offset, row + 1, newline)


class _RowTooLong(Exception):
    pass


class _Feed:
    """The decoded lines the csv module reads. Counts the current record's bytes and quote
    parity; once a record passes MAX_ROW_BYTES it reads past the rest of it and raises, so the
    csv module never holds more than MAX_ROW_BYTES of one row."""

    def __init__(self, lines: Iterator[Line], offset: int) -> None:
        self._lines = lines
        self.offset = offset
        self.record = 0  # bytes of the current record so far
        self._odd = False  # inside a quoted field at the end of the last line

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        line = self._take(next(self._lines))
        if self.record > MAX_ROW_BYTES:
            while self._odd and (more := next(self._lines, None)) is not None:
                self._take(more)
            raise _RowTooLong
        assert isinstance(line, bytes)
        # surrogateescape keeps undecodable bytes visible, so the row can be rejected by name
        # instead of failing the whole file.
        return line.decode("utf-8", "surrogateescape")

    def _take(self, line: Line) -> Line:
        if isinstance(line, LongLine):
            size, odd = line.size, line.odd_quotes
        else:
            size, odd = len(line), b'"' in line and line.count(b'"') % 2 == 1
        self.offset += size
        self.record += size
        self._odd ^= odd
        return line

    def next_record(self) -> int:
        """The finished record's size; starts counting the next one."""
        size, self.record, self._odd = self.record, 0, False
        return size


class RowReader:
    """Yields RawRow for every record after `start_offset`, numbering from `first_row`."""

    def __init__(self, lines: Iterator[Line], delimiter: str, start_offset: int, first_row: int) -> None:
        self._feed = _Feed(lines, start_offset)
        self._row = first_row
        self._reader = csv.reader(self._feed, delimiter=delimiter)

    def __iter__(self) -> Iterator[RawRow]:
        while True:
            error = None
            try:
                fields: list[str] | None = next(self._reader)
            except StopIteration:
                return
            except _RowTooLong:
                fields = None
                error = f"row is {self._feed.record:,} bytes; a row may be at most {MAX_ROW_BYTES:,} bytes"
            except csv.Error as exc:
                fields, error = None, f"unreadable CSV row: {exc}"
            size = self._feed.next_record()
            yield RawRow(self._row, self._feed.offset, size, fields, error)
            self._row += 1
