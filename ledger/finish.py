"""When a job settles (done, or failed with items dead-lettered or stale), an EventBridge event
`trawl` / `Job Finished` carrying its summary goes to the default bus, once per state it
settles in: a job re-driven from failed to done is announced again."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from aws_lambda_powertools import Logger

from ledger.view import JobView, read_job
from models.ledger import job_key

logger = Logger(service="trawl", child=True)

SOURCE = "trawl"
DETAIL_TYPE = "Job Finished"


def summary(view: JobView, state: str, stack: str) -> dict[str, Any]:
    """The event's detail: the job's ledger counts, items and records apart."""
    counts = view.counts
    job = view.job
    return {
        "stack": stack,
        "job_id": job.get("job_id"),
        "state": state,
        "platform": job.get("platform"),
        "kind": job.get("kind"),
        "input_key": job.get("input_key"),
        "rows": int(job.get("rows", 0)),
        "enqueued": view.enqueued,
        "duplicates": int(job.get("duplicates", 0)),
        "rejected": int(job.get("rejected", 0)),
        "written_ok": counts.ok,
        "written_permanent": counts.permanent,
        "dead_lettered": counts.dead_lettered,
        "stale": counts.stale,
        "in_flight": view.in_flight,
        "records": counts.records,
        "failure_reasons": dict(counts.top_reasons(10)),
    }


class Finisher:
    def __init__(self, dynamodb: Any, events: Any, table: str, stack: str) -> None:
        self._db = dynamodb
        self._events = events
        self._table = table
        self._stack = stack

    def check(self, job_ids: set[str], producer_states: dict[str, str] | None = None) -> list[str]:
        """Announce every job of `job_ids` that has settled since it was last announced; the
        ones announced."""
        announced = []
        for job_id in sorted(job_ids):
            view = read_job(self._db, self._table, job_id)
            if view is not None and self.announce(view, (producer_states or {}).get(job_id)):
                announced.append(job_id)
        return announced

    def announce(self, view: JobView, producer_state: str | None = None) -> bool:
        """Announce the job if it has settled since it was last announced."""
        job_id = str(view.job["job_id"])
        state = view.state(producer_state)
        if state not in ("done", "failed") or view.job.get("finished_state") == state:
            return False
        detail = summary(view, state, self._stack)
        # Announce first, then note it: a crash between the two announces twice, never not at all.
        self._events.put_events(
            Entries=[
                {
                    "Source": SOURCE,
                    "DetailType": DETAIL_TYPE,
                    "Detail": json.dumps(detail, default=str),
                    "EventBusName": "default",
                }
            ]
        )
        self._db.update_item(
            TableName=self._table,
            Key={k: {"S": v} for k, v in job_key(job_id).items()},
            UpdateExpression="SET finished_state = :state, finished_at = :now",
            ExpressionAttributeValues={
                ":state": {"S": state},
                ":now": {"S": dt.datetime.now(dt.UTC).isoformat()},
            },
        )
        logger.info("job finished", job_id=job_id, state=state, summary=detail)
        return True
