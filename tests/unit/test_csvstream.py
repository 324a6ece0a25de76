"""producer.csvstream: header detection and the row stream under every input shape the
contract promises to read (or to answer with a clear reason), without holding the file."""

from __future__ import annotations

import io

import pytest

from producer.csvstream import MAX_ROW_BYTES, BadFile, RawRow, RowReader, iter_lines, read_header


def _rows(data: bytes, platform: str = "tiktok", chunk: int = 1 << 16) -> list[RawRow]:
    lines = iter_lines(io.BytesIO(data), chunk_size=chunk)
    header = read_header(lines, platform)
    return list(RowReader(lines, header.delimiter, header.data_offset, first_row=2))


HEADERS = [
    (b"username,crm\n", "tiktok", ("username", "crm"), ",", "username"),
    (b"\xef\xbb\xbfUsername;Segment\r\n", "tiktok", ("Username", "Segment"), ";", "Username"),
    (b"id\tHandle\tnote\n", "tiktok", ("id", "Handle", "note"), "\t", "Handle"),
    (b"sku, Product-URL ,price\n", "shopee", ("sku", "Product-URL", "price"), ",", "Product-URL"),
    (b'"Product URL","name, long"\n', "lazada", ("Product URL", "name, long"), ",", "Product URL"),
    (b"profile_url,username\n", "tiktok", ("profile_url", "username"), ",", "username"),
    # Excel's "sep=" line names the delimiter; the header is the next line.
    (b"sep=;\r\nname,x;username\r\n", "tiktok", ("name,x", "username"), ";", "username"),
]


@pytest.mark.parametrize(("line", "platform", "columns", "delimiter", "target"), HEADERS)
def test_header_finds_delimiter_and_target_column(
    line: bytes, platform: str, columns: tuple[str, ...], delimiter: str, target: str
) -> None:
    header = read_header(iter_lines(io.BytesIO(line + b"x\n")), platform)
    assert (header.columns, header.delimiter, header.target_column) == (columns, delimiter, target)
    assert header.data_offset == len(line)


BAD_FILES = [
    (b"", "file is empty"),
    (b"\xef\xbb\xbf\r\n", "file is empty"),
    (b"name,email\nalice,a@example.com\n", "no usable column: expected one of username, handle, account,"),
    (b"name,email\n", "headers found: 'name', 'email'"),
    (b"us\xe9rname\n", "header row is not UTF-8"),
    # no header row at all: the first row is a handle or a link
    (b"@zachking\n@khaby.lame\n", "headers found: '@zachking'; the first row looks like data, not a header"),
    (
        b"https://www.tiktok.com/@nasa,x\n",
        "looks like data, not a header: add a header row first, e.g. 'username'",
    ),
    (b"a" * (MAX_ROW_BYTES + 10), f"header row is {MAX_ROW_BYTES + 10:,} bytes long"),
]


@pytest.mark.parametrize(("data", "message"), BAD_FILES)
def test_unreadable_headers_fail_the_file_with_a_message(data: bytes, message: str) -> None:
    with pytest.raises(BadFile) as failed:
        read_header(iter_lines(io.BytesIO(data)), "tiktok")
    assert message in str(failed.value)


ROWS = [
    # CRLF and a BOM: the same fields as plain LF
    (b"\xef\xbb\xbfusername,crm\r\nalice,1\r\nbob,2\r\n", [["alice", "1"], ["bob", "2"]]),
    # quoted fields holding the delimiter, quotes and newlines
    (b'username,note\nalice,"a, b"\nbob,"l1\nl2 ""q"""\n', [["alice", "a, b"], ["bob", 'l1\nl2 "q"']]),
    # ragged rows are passed on as they are; the job decides what they mean
    (b"username,a,b\nalice\nbob,1,2,3\n", [["alice"], ["bob", "1", "2", "3"]]),
    # undecodable bytes survive as surrogates, so the row can be rejected by name
    (b"username\nal\xe9x\n", [["al\udce9x"]]),
    # no newline at the end of the last row
    (b"username\nalice", [["alice"]]),
]  # fmt: skip


@pytest.mark.parametrize(("data", "fields"), ROWS)
def test_rows_are_parsed_with_numbers_and_offsets(data: bytes, fields: list[list[str]]) -> None:
    rows = _rows(data)
    assert [r.fields for r in rows] == fields
    assert [r.row for r in rows] == list(range(2, 2 + len(fields)))
    assert rows[-1].end_offset == len(data)


def test_a_line_of_several_megabytes_is_one_reject_and_the_rows_after_it_still_count() -> None:
    data = b"username\nalice\n" + b"x" * 5_000_000 + b"\nbob\n"
    rows = _rows(data, chunk=4096)
    assert [r.fields for r in rows] == [["alice"], None, ["bob"]]
    assert rows[1].error == f"row is 5,000,001 bytes; a row may be at most {MAX_ROW_BYTES:,} bytes"
    assert rows[1].size == 5_000_001


def test_an_overlong_quoted_row_over_many_lines_is_skipped_to_its_closing_quote() -> None:
    # The lines inside the quotes look like usernames: they must not become rows of their own.
    inside = b"".join(b"user%06d\n" % n for n in range(30_000))
    data = b'username,note\nalice,"' + inside + b'end"\nbob,2\n'
    rows = _rows(data)
    assert [r.fields for r in rows] == [None, ["bob", "2"]]
    assert rows[0].error is not None and rows[0].error.startswith("row is ")
    assert rows[1].row == 3 and rows[1].end_offset == len(data)


def test_an_unclosed_quote_reads_to_the_end_as_one_row() -> None:
    rows = _rows(b'username\n"alice\nbob\ncarol\n')
    assert [r.fields for r in rows] == [["alice\nbob\ncarol\n"]]


@pytest.mark.parametrize("chunk", [1, 3, 7, 64])
def test_rows_do_not_depend_on_where_reads_split_the_stream(chunk: int) -> None:
    data = b'\xef\xbb\xbfusername;note\r\n@a;"x;\r\ny"\r\nb;2\r\n\r\nc;3'
    assert [(r.row, r.end_offset, r.fields) for r in _rows(data, chunk=chunk)] == [
        (r.row, r.end_offset, r.fields) for r in _rows(data)
    ]


def test_reading_from_a_row_end_offset_continues_with_the_next_row() -> None:
    data = b'username,note\nalice,"a\nb"\nbob,2\ncarol,3\n'
    first = _rows(data)
    resumed = RowReader(iter_lines(io.BytesIO(data[first[0].end_offset :])), ",", first[0].end_offset, 3)
    assert [(r.row, r.end_offset, r.fields) for r in resumed] == [
        (r.row, r.end_offset, r.fields) for r in first[1:]
    ]


def test_lines_are_never_held_longer_than_the_row_limit() -> None:
    lines = list(iter_lines(io.BytesIO(b"a\n" + b"y" * 1_000_000 + b"\nb\n"), chunk_size=1 << 16))
    assert lines[0] == b"a\n" and lines[2] == b"b\n"
    assert not isinstance(lines[1], bytes) and lines[1].size == 1_000_001


def test_rows_after_an_excel_sep_line_keep_their_numbers() -> None:
    rows = _rows(b"sep=,\nusername,team\nalice,a\nbob,b\n")
    assert [(r.row, r.fields) for r in rows] == [(2, ["alice", "a"]), (3, ["bob", "b"])]


@pytest.mark.parametrize("chunk", [1, 2, 5, 1 << 16])
def test_old_mac_line_endings_are_lines_too(chunk: int) -> None:
    data = b'username,note\ralice,"two\rlines"\rbob,2\r'
    lines = iter_lines(io.BytesIO(data), chunk_size=chunk)
    header = read_header(lines, "tiktok")
    rows = list(RowReader(lines, header.delimiter, header.data_offset, header.first_row))
    assert (header.columns, header.newline) == (("username", "note"), "\r")
    assert [(r.row, r.fields) for r in rows] == [(2, ["alice", "two\rlines"]), (3, ["bob", "2"])]
    assert rows[-1].end_offset == len(data)
    # Resumed mid-file (a checkpoint), the file's line ending is given, not guessed again.
    resumed = RowReader(iter_lines(io.BytesIO(data[rows[0].end_offset :]), newline="\r"), ",", 0, 3)
    assert [r.fields for r in resumed] == [["bob", "2"]]


def test_a_lone_cr_inside_a_row_of_an_lf_file_stays_in_its_field() -> None:
    rows = _rows(b'username,note\nalice,"a\rb"\nbob,2\n', chunk=3)
    assert [r.fields for r in rows] == [["alice", "a\rb"], ["bob", "2"]]


def test_blank_lines_above_the_header_are_skipped_and_rows_keep_spreadsheet_numbers() -> None:
    data = b"\r\n,,\r\n  \r\nusername,team\r\nalice,a\r\nbob,b\r\n"
    lines = iter_lines(io.BytesIO(data))
    header = read_header(lines, "tiktok")
    rows = list(RowReader(lines, header.delimiter, header.data_offset, header.first_row))
    assert header.columns == ("username", "team") and header.first_row == 5
    assert [(r.row, r.fields) for r in rows] == [(5, ["alice", "a"]), (6, ["bob", "b"])]


def test_a_header_of_words_gets_no_looks_like_data_hint() -> None:
    with pytest.raises(BadFile) as failed:
        read_header(iter_lines(io.BytesIO(b"name,email,e/mail\nalice,a@example.com,x\n")), "tiktok")
    assert "headers found: 'name', 'email', 'e/mail'" in str(failed.value)
    assert "looks like data" not in str(failed.value)
