"""The producer's side of the job ledger: the job's row, written each time the producer writes
the job's manifest, so the ledger knows what was enqueued (its counts are the manifest's) and
whether the producer is done. The item rows and the job's outcome counts are not the
producer's to write."""

from __future__ import annotations

from typing import Any

from models import JobManifest
from models.ledger import job_key, watch_index_key
from producer import watch


class JobRows:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table

    def last_watch_job(self, name: str) -> dict[str, Any] | None:
        return watch.last_job(self._db, self._table, name)

    def still_running(self, job: dict[str, Any]) -> bool:
        return watch.still_running(self._db, self._table, job)

    def write(self, m: JobManifest) -> None:
        values: dict[str, Any] = {
            ":job": {"S": m.job_id},
            ":bucket": {"S": m.input.bucket},
            ":input": {"S": m.input.key},
            ":date": {"S": m.job_date.isoformat()},
            ":created": {"S": m.created_at.isoformat()},
            ":updated": {"S": m.updated_at.isoformat()},
            ":status": {"S": m.status},
            ":rows": {"N": str(m.rows_read)},
            ":enqueued": {"N": str(m.enqueued)},
            ":duplicates": {"N": str(m.duplicates)},
            ":rejected": {"N": str(m.rejected)},
            ":recent_pk": {"S": "JOBS"},
            ":recent_sk": {"S": f"{m.created_at.isoformat()}#{m.job_id}"},
        }
        sets = [
            "job_id = :job",
            "input_bucket = :bucket",
            "input_key = :input",
            "job_date = :date",
            "created_at = :created",
            "updated_at = :updated",
            "producer = :status",
            "#rows = :rows",
            "enqueued = :enqueued",
            "duplicates = :duplicates",
            "rejected = :rejected",
            "recent_pk = :recent_pk",
            "recent_sk = :recent_sk",
        ]
        if m.watch is not None:
            # The sparse `watch` index: a watch list's jobs, newest first (`trawl watch list`).
            sets += ["watch_pk = :watch_pk", "watch_sk = :recent_sk"]
            values[":watch_pk"] = {"S": watch_index_key(m.watch)}
        removes = []
        for name, value in (
            ("platform", m.platform),
            ("kind", m.kind),
            ("message", m.message),
            ("watch", m.watch),
            ("run_tag", m.run),
            ("rerun_of", m.rerun_of),
        ):
            if value is None:
                removes.append(name)
            else:
                sets.append(f"{name} = :{name}")
                values[f":{name}"] = {"S": value}
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        self._db.update_item(
            TableName=self._table,
            Key={k: {"S": v} for k, v in job_key(m.job_id).items()},
            UpdateExpression=expression,
            ExpressionAttributeNames={"#rows": "rows"},
            ExpressionAttributeValues=values,
        )
