"""`trawl query`: DuckDB views over the data dir that `trawl run` and `trawl demo` fill (a copy of
the bucket's output/ tree), shaped like the Athena tables in template.yaml, plus the three ways
a result is printed. Column names and types come from the pydantic models, so they cannot drift."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TextIO, Union, get_args, get_origin

import duckdb
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from rich.text import Text

from models import KINDS_BY_PLATFORM, OutputRecord
from models.csvsafe import FORMULA_PREFIXES, escape_cell
from workers.output import DATA_MODELS

OutputFormat = Literal["table", "csv", "json"]
FORMATS: tuple[OutputFormat, ...] = get_args(OutputFormat)
PARTITIONS = {"platform": "VARCHAR", "kind": "VARCHAR", "dt": "DATE"}
# Rendering a huge rich table is slow and unreadable; csv/json print every row.
TABLE_ROW_LIMIT = 1000
_SCALARS: dict[Any, str] = {
    str: "VARCHAR",
    int: "BIGINT",
    float: "DOUBLE",
    bool: "BOOLEAN",
    dt.datetime: "TIMESTAMPTZ",
    dt.date: "DATE",
}


class QueryError(Exception):
    """What the user sees instead of a traceback: a missing data dir or DuckDB's own message."""


@dataclass(frozen=True)
class View:
    name: str
    kind: str

    @property
    def platforms(self) -> list[str]:
        return [p for p, kinds in KINDS_BY_PLATFORM.items() if self.kind in kinds]

    @property
    def data_model(self) -> type[BaseModel]:
        return DATA_MODELS[self.kind]


VIEWS = (View("tiktok_accounts", "account"), View("tiktok_videos", "videos"), View("products", "product"))


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]


# --------------------------------------------------------------------------- types from the models


def duckdb_type(annotation: Any) -> str:
    """The DuckDB type of one pydantic field annotation (optional fields are nullable anyway)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return duckdb_type(args[0])
    if origin is Literal:
        return duckdb_type(type(args[0]))
    if origin in (Union, types.UnionType):
        present = [arg for arg in args if arg is not type(None)]
        if len(present) != 1:
            raise TypeError(f"no single DuckDB type for {annotation!r}")
        return duckdb_type(present[0])
    if origin is dict:
        return f"MAP({duckdb_type(args[0])}, {duckdb_type(args[1])})"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        fields = ", ".join(f"{ident(n)} {duckdb_type(f.annotation)}" for n, f in fields_of(annotation))
        return f"STRUCT({fields})"
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    raise TypeError(f"no DuckDB type for {annotation!r}")


def fields_of(model: type[BaseModel]) -> list[tuple[str, Any]]:
    return list(model.model_fields.items())


def record_columns(view: View) -> dict[str, str]:
    """Column -> type of one record as the files hold it; `data` is the view's kind only.
    platform and kind are left out: the partition path provides them, as on Athena."""
    columns = {}
    for name, field in fields_of(OutputRecord):
        if name in ("platform", "kind"):
            continue
        columns[name] = duckdb_type(view.data_model if name == "data" else field.annotation)
    return columns


# --------------------------------------------------------------------------- SQL text


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _struct_literal(values: dict[str, str]) -> str:
    return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in values.items()) + "}"


def _globs(data_dir: Path, view: View, suffix: str) -> list[str]:
    """Only globs that match: DuckDB refuses a glob with no files."""
    found = []
    for platform in view.platforms:
        pattern = f"output/platform={platform}/kind={view.kind}/dt=*/*.{suffix}"
        if next(iter(data_dir.glob(pattern)), None) is not None:
            found.append(literal(str(data_dir / pattern)))
    return found


def _reader_options(globs: list[str]) -> str:
    return f"[{', '.join(globs)}], hive_partitioning = true, hive_types = {_struct_literal(PARTITIONS)}"


def _json_part(view: View, globs: list[str]) -> str:
    columns = _struct_literal(record_columns(view))
    return (
        f"select * from read_json({_reader_options(globs)}, "
        f"format = 'newline_delimited', columns = {columns})"
    )


def _csv_cell(column: str, sql_type: str) -> str:
    # CSV output escapes formula-like text cells with a leading apostrophe; undo that first.
    return f"cast(trawl_unescape({ident(column)}) as {sql_type})"


def _csv_struct(prefix: str, model: type[BaseModel], nullable: bool) -> str:
    """workers.output.to_csv flattens a nested model into <prefix>_<field> columns."""
    cells = {n: _csv_cell(f"{prefix}_{n}", duckdb_type(f.annotation)) for n, f in fields_of(model)}
    packed = "struct_pack(" + ", ".join(f"{ident(n)} := {cell}" for n, cell in cells.items()) + ")"
    if not nullable:
        return packed
    # A status record (not_found, private, ...) has every data cell empty: data is null.
    raw = ", ".join(ident(f"{prefix}_{n}") for n in cells)
    return f"case when coalesce({raw}) is null then null else {packed} end"


def _csv_part(view: View, globs: list[str]) -> str:
    selected = []
    for name, sql_type in record_columns(view).items():
        field = OutputRecord.model_fields[name]
        model = view.data_model if name == "data" else field.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            expression = _csv_struct(name, model, nullable=not field.is_required())
        elif sql_type.startswith("MAP("):
            expression = f"cast(cast({ident(name)} as JSON) as {sql_type})"  # a JSON object cell
        else:
            expression = _csv_cell(name, sql_type)
        selected.append(f"{expression} as {ident(name)}")
    selected += [ident(name) for name in PARTITIONS]
    return (
        f"select {', '.join(selected)} from read_csv({_reader_options(globs)}, "
        "header = true, all_varchar = true, delim = ',', quote = '\"', escape = '\"')"
    )


def _empty_part(view: View) -> str:
    columns = record_columns(view) | PARTITIONS
    typed = ", ".join(f"cast(null as {t}) as {ident(n)}" for n, t in columns.items())
    return f"select {typed} where false"


def view_sql(data_dir: Path, view: View) -> str:
    """One view: JSON and CSV files unioned by name, data fields also as top-level columns."""
    parts = []
    if json_globs := _globs(data_dir, view, "json"):
        parts.append(_json_part(view, json_globs))
    if csv_globs := _globs(data_dir, view, "csv"):
        parts.append(_csv_part(view, csv_globs))
    source = "\nunion all by name\n".join(parts or [_empty_part(view)])
    envelope = [ident(n) for n in record_columns(view)]
    flattened = [f"data.{ident(n)} as {ident(n)}" for n, _ in fields_of(view.data_model)]
    partitions = [ident(n) for n in PARTITIONS]
    return (
        f"create or replace view {ident(view.name)} as\n"
        f"select {', '.join(envelope + flattened + partitions)}\nfrom (\n{source}\n)"
    )


def _unescape_macro() -> str:
    prefixes = ", ".join(literal(p) for p in FORMULA_PREFIXES)
    return (
        "create or replace macro trawl_unescape(cell) as "
        f"case when left(cell, 1) = '''' and substr(cell, 2, 1) in ({prefixes}) "
        "then substr(cell, 2) else cell end"
    )


# --------------------------------------------------------------------------- connect and run


def connect(data_dir: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the views over `data_dir` (which `trawl run`/`trawl demo` fill)."""
    if not data_dir.is_dir():
        raise QueryError(
            f"no data dir '{data_dir}': `trawl run FILE` or `trawl demo` fill it "
            "(or pass --data-dir DIR to point at the folder they wrote)"
        )
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")  # fetched_at is UTC; show it as such, whatever the machine
    con.execute(_unescape_macro())
    for view in VIEWS:
        con.execute(view_sql(data_dir.resolve(), view))
    return con


def run_query(data_dir: Path, sql: str) -> QueryResult:
    """Run `sql` over the views; any DuckDB error (also a malformed file) becomes a QueryError."""
    try:
        con = connect(data_dir)
    except duckdb.Error as exc:
        raise QueryError(f"cannot read the records in '{data_dir}': {exc}") from exc
    try:
        cursor = con.execute(sql)
        columns = [d[0] for d in cursor.description or []]
        return QueryResult(columns, cursor.fetchall() if columns else [])
    except duckdb.Error as exc:
        raise QueryError(str(exc)) from exc
    finally:
        con.close()


# --------------------------------------------------------------------------- output


def _plain(value: Any) -> Any:
    """JSON-ready: dates and times as ISO strings, decimals as strings (never a rounded float)."""
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _cell(value: Any) -> str:
    if isinstance(value, dict | list | tuple):
        return json.dumps(_plain(value), ensure_ascii=False)
    plain = _plain(value)
    return "" if plain is None else str(plain).lower() if isinstance(plain, bool) else str(plain)


def to_json(result: QueryResult) -> str:
    objects = [dict(zip(result.columns, map(_plain, row), strict=True)) for row in result.rows]
    return json.dumps(objects, ensure_ascii=False, indent=2) + "\n"


def to_csv(result: QueryResult) -> str:
    """Header + rows; text a spreadsheet would run as a formula is escaped, as in CSV records."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(result.columns)
    for row in result.rows:
        writer.writerow([_csv_value(v) for v in row])
    return buffer.getvalue()


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool | int | float | decimal.Decimal):
        return _cell(value)  # a number is never a formula, and "-5" must stay a number
    return escape_cell(_cell(value))


def to_table(result: QueryResult, limit: int = TABLE_ROW_LIMIT) -> Table:
    shown = result.rows[:limit]
    caption = f"{len(result.rows)} row{'s' if len(result.rows) != 1 else ''}"
    if len(shown) < len(result.rows):
        caption += f" (first {limit} shown; --format csv or json prints all)"
    table = Table(*result.columns, caption=caption)
    for row in shown:
        # Text(), not str: scraped values like "[bold]" must not be read as rich markup.
        table.add_row(*(_table_cell(v) for v in row))
    return table


def _table_cell(value: Any) -> Text:
    return Text("NULL", style="dim") if value is None else Text(_cell(value))


def write_result(result: QueryResult, fmt: str, out: TextIO) -> None:
    if fmt == "json":
        out.write(to_json(result))
    elif fmt == "csv":
        out.write(to_csv(result))
    elif fmt == "table":
        Console(file=out, soft_wrap=False).print(to_table(result))
    else:
        raise ValueError(f"unknown output format {fmt!r}; expected one of {', '.join(FORMATS)}")
