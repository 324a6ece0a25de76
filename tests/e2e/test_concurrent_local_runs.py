"""Two local runs of the same file at the same time (two terminals, or parallel tests): the
same input key and content give the same job id, and each run's producer keeps its work files
(the dedupe set, rejects) in a /tmp of its own, as each Lambda execution environment does."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.helpers import manifest, records
from trawl.local.session import LocalSession, local_session
from trawl.stack.submit import submit, wait_for_jobs

ROWS_PER_INVOCATION = 50
ROWS = 2 * ROWS_PER_INVOCATION + 20  # three producer invocations: two checkpoints


def test_two_runs_of_one_file_each_enqueue_every_row(tmp_path: Path) -> None:
    path = tmp_path / "same.csv"
    path.write_text("username\n" + "".join(f"user_{n:04d}\n" for n in range(ROWS)))
    with local_session() as first, local_session() as second:

        def run(session: LocalSession) -> str:
            session.runtime.producer_env_overrides["MAX_ROWS_PER_INVOCATION"] = str(ROWS_PER_INVOCATION)
            job_id = submit(session, path, "tiktok", "account")
            wait_for_jobs(session, [job_id], timeout_s=120)
            return job_id

        with ThreadPoolExecutor(2) as pool:
            job_ids = list(pool.map(run, (first, second)))
        assert job_ids[0] == job_ids[1]
        for session in (first, second):
            done = manifest(session, job_ids[0])
            assert (done.rows_read, done.enqueued, done.duplicates, done.rejected) == (ROWS, ROWS, 0, 0)
            assert len(records(session, job_ids[0])) == ROWS
