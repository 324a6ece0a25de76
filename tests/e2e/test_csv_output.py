"""OutputFormat=csv (a template parameter): one CSV row with header per record, formulas escaped,
and the summary users see counts them like JSON records."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from tests.helpers import run_csv
from trawl.local.session import local_session
from trawl.stack.jobs import job_summary


def test_csv_records_and_summary(tmp_path: Path) -> None:
    with local_session(parameters={"OutputFormat": "csv"}) as local:
        text = "username,note\ncsv_one,=1+2\nghost_csv,plain\n"
        job_id = run_csv(local, tmp_path, "csv-out.csv", text, "tiktok", "account")
        s3 = local.stack.endpoint.client("s3")
        keys = [
            o["Key"]
            for o in s3.list_objects_v2(Bucket=local.stack.bucket, Prefix="output/")["Contents"]
            if job_id in o["Key"]
        ]
        assert sorted(k.rsplit("-", 1)[1] for k in keys) == ["csv_one.csv", "ghost_csv.csv"]
        body = s3.get_object(Bucket=local.stack.bucket, Key=next(k for k in keys if "csv_one" in k))["Body"]
        [row] = list(csv.DictReader(io.StringIO(body.read().decode())))
        assert row["status"] == "ok" and row["data_unique_id"] == "csv_one"
        assert row["context"] == '{"note": "=1+2"}'

        summary = job_summary(local.stack, job_id)
        assert summary is not None
        assert (summary.written_ok, summary.written_permanent, summary.records) == (1, 1, 2)
