"""Writes one record per item to S3. The key depends only on (job_id, item_key) and the job's
date, so a redelivered, duplicated or re-driven message overwrites the same object."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from models import AccountData, OutputRecord, ProductData, VideoData
from models.csvsafe import escape_cell

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DATA_MODELS: dict[str, type[AccountData | VideoData | ProductData]] = {
    "account": AccountData,
    "videos": VideoData,
    "product": ProductData,
}
_BASE_COLUMNS = (
    "schema_version",
    "job_id",
    "platform",
    "kind",
    "item_key",
    "target",
    "status",
    "fetched_at",
    "source_bucket",
    "source_key",
    "source_row",
    "context",
    "detail",
)


def field_counts(found: Iterable[AccountData | VideoData | ProductData]) -> dict[str, int]:
    """Per data field, how many of these records' data have a value (not null): what the job
    ledger sums into the job's field coverage."""
    counts: Counter[str] = Counter()
    for data in found:
        counts.update(name for name, value in data if value is not None)
    return dict(counts)


def output_key(record: OutputRecord, job_date: str, fmt: str) -> str:
    return (
        f"output/platform={record.platform}/kind={record.kind}/dt={job_date}/"
        f"{record.job_id}-{record.item_key}.{fmt}"
    )


def csv_columns(kind: str) -> list[str]:
    return [*_BASE_COLUMNS, *(f"data_{name}" for name in DATA_MODELS[kind].model_fields)]


def to_csv(record: OutputRecord) -> bytes:
    """One CSV row with header; text cells a spreadsheet would run as a formula are escaped."""
    dumped: dict[str, Any] = record.model_dump(mode="json")
    row: dict[str, Any] = {k: dumped[k] for k in _BASE_COLUMNS if k in dumped}
    row |= {
        "source_bucket": record.source.bucket,
        "source_key": record.source.key,
        "source_row": record.source.row,
    }
    row["context"] = json.dumps(record.context, ensure_ascii=False, sort_keys=True)
    for name, value in (dumped.get("data") or {}).items():
        row[f"data_{name}"] = value
    columns = csv_columns(record.kind)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerow([escape_cell(row.get(column)) for column in columns])
    return buffer.getvalue().encode("utf-8")


class RecordWriter:
    def __init__(self, s3: S3Client, bucket: str, fmt: str) -> None:
        # botocore sends every PutObject with "Expect: 100-continue" and waits for the server's
        # go-ahead before the body: a round trip worth it for large uploads. A record is a few
        # KB, so the body goes with the headers. (Imported here: botocore loads with the first
        # client, in build_deps, not at the handler's import.)
        from botocore.handlers import add_expect_header

        s3.meta.events.unregister("before-call.s3", add_expect_header)
        self._s3 = s3
        self._bucket = bucket
        self._fmt = fmt

    def put(self, record: OutputRecord, job_date: str) -> str:
        key = output_key(record, job_date, self._fmt)
        if self._fmt == "csv":
            body, content_type = to_csv(record), "text/csv"
        else:
            body, content_type = (record.model_dump_json() + "\n").encode(), "application/json"
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType=content_type)
        return key
