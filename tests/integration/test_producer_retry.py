"""A producer invocation that fails on an AWS error leaves a retrying manifest; the next
delivery of the same upload (Lambda's own retry) runs the job again to the end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.common import LocalContext
from producer import handler as producer_handler
from producer.store import JobStore
from tests.helpers import NoContinuation, manifest, rejects, uploaded
from trawl.local.session import LocalSession, local_session


class _FailingOnce(JobStore):
    """S3 refuses the first rejects.csv upload, as a throttled or failing PutObject would."""

    failed = False

    def upload(self, job_id: str, name: str, path: Path, content_type: str) -> None:
        if not self.failed:
            self.failed = True
            raise RuntimeError("SlowDown: please reduce your request rate")
        super().upload(job_id, name, path, content_type)


@pytest.fixture(scope="module")
def local() -> Iterator[LocalSession]:
    with local_session() as session:
        session.runtime.stop()
        yield session


def test_a_job_that_died_on_an_aws_error_runs_again_on_the_next_delivery(local: LocalSession) -> None:
    key = "input/tiktok/account/retry-me.csv"
    event = uploaded(local, key, b"username\nretry_a\nretry_b\nretry_a\n!!\n")
    function = local.stack.producer()
    env = local.stack.function_env(function)

    deps = producer_handler.build_deps(env, continuer=NoContinuation())
    deps.store = _FailingOnce(local.stack.endpoint.client("s3"), local.stack.bucket)

    with pytest.raises(RuntimeError, match="SlowDown"):
        producer_handler.handle(event, LocalContext(function), deps)
    job_id = producer_handler.job_id_for(producer_handler.requests_from(event, "r")[0].source)
    failed = manifest(local, job_id)
    assert failed.status == "retrying" and failed.retryable
    assert failed.message is not None and "SlowDown" in failed.message

    [result] = producer_handler.handle(event, LocalContext(function), deps)["jobs"]
    done = manifest(local, job_id)
    assert result["status"] == done.status == "enqueued"
    assert (done.rows_read, done.enqueued, done.duplicates, done.rejected) == (4, 2, 1, 1)
    assert done.job_date == failed.job_date and not done.retryable and done.message is None
    assert [r["row"] for r in rejects(local, job_id)] == ["5"]
    # A third delivery finds the job done and does nothing.
    assert producer_handler.handle(event, LocalContext(function), deps) == {"jobs": []}
