"""Which producer invocation works on a job: a lease in the job's manifest, taken and renewed
with S3 conditional writes (If-Match on the manifest's ETag), so two invocations can never
both believe they own one job.

Why a lease, and why deliveries wait instead of being dropped: Lambda delivers an event at
least once and retries a failed or crashed invocation (same request id) a minute or two
later. A delivery that finds the job leased to someone else cannot tell a working holder
from a dead one, so it watches the manifest:
- the holder renews the lease (every lease_s / 3) or moves the job on: it is alive, and this
  delivery can stop. Should that holder die later, its own event is retried by Lambda, and that
  retry finds the lease its own (same request id) or lapsed;
- the lease lapses with nobody renewing it: the holder is dead, and this delivery takes the job
  over from its last checkpoint.
So a delivery is only ever dropped after it has seen another invocation at work, and no
window exists in which every delivery is dropped while nobody works on the job."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aws_lambda_powertools import Logger

from models import JobManifest, Lease
from producer.store import JobStore, ManifestChanged

logger = Logger(service="trawl", child=True)

# Reads and conditional writes racing with other deliveries before giving up (then Lambda retries).
CLAIM_TRIES = 10


class LeaseLost(Exception):
    """Another invocation took the job over (this one was too slow to renew): stop, write nothing."""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Claim:
    """This invocation's hold on a job: the manifest as last written, and its ETag."""

    manifest: JobManifest
    etag: str
    request_id: str
    renewed_at: float = field(default_factory=time.monotonic)

    @property
    def attempt(self) -> int:
        return self.manifest.attempts.get(self.request_id, 1)


class Leases:
    def __init__(
        self,
        store: JobStore,
        lease_s: float,
        clock: Callable[[], dt.datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
        mirror: Callable[[JobManifest], None] | None = None,
    ) -> None:
        self._store = store
        self._lease_s = lease_s
        self._clock = clock
        self._sleep = sleep
        # Told of every manifest this invocation writes (the job's row in the ledger).
        self._mirror = mirror or (lambda manifest: None)

    def _lease(self, request_id: str) -> Lease:
        return Lease(owner=request_id, expires_at=self._clock() + dt.timedelta(seconds=self._lease_s))

    def claim(
        self, job_id: str, request_id: str, continuation: bool, new: Callable[[], JobManifest]
    ) -> Claim | None:
        """The job, leased to this invocation; None when there is nothing for it to do (the job
        is finished, or another invocation was seen working on it)."""
        for _ in range(CLAIM_TRIES):
            found = self._store.read_manifest(job_id)
            if found is None:
                if continuation:
                    logger.warning("nothing to continue: the job has no manifest", job_id=job_id)
                    return None
                manifest = new()
                etag = None
            else:
                manifest, etag = found
                if manifest.status == "enqueued" or (manifest.status == "failed" and not manifest.retryable):
                    logger.info("job already known", job_id=job_id, status=manifest.status)
                    return None
                lease = manifest.lease
                if lease is not None and lease.owner != request_id and lease.expires_at > self._clock():
                    if self._holder_alive(job_id, etag, lease):
                        logger.info("another invocation is working on the job", job_id=job_id)
                        return None
                    continue  # the lease lapsed, or the job moved on: look again
            manifest = self._taken(manifest, request_id)
            try:
                etag = self._store.write_manifest(manifest, etag)
            except ManifestChanged:
                continue  # another delivery got there first: look again
            self._mirror(manifest)
            return Claim(manifest, etag, request_id)
        raise RuntimeError(f"job {job_id}: the manifest kept changing under {CLAIM_TRIES} claims")

    def _taken(self, manifest: JobManifest, request_id: str) -> JobManifest:
        attempts = dict(manifest.attempts)
        attempts[request_id] = attempts.get(request_id, 0) + 1
        return manifest.model_copy(
            update={
                "status": "running",
                "message": None,
                "retryable": False,
                "lease": self._lease(request_id),
                "attempts": attempts,
                "invocations": manifest.invocations + 1,
                "updated_at": self._clock(),
            }
        )

    def _holder_alive(self, job_id: str, etag: str, lease: Lease) -> bool:
        """Watch the manifest until its holder shows a sign of life (True) or its lease lapses
        unrenewed (False)."""
        step = max(0.05, min(1.0, self._lease_s / 10))
        while self._clock() <= lease.expires_at:
            self._sleep(step)
            found = self._store.read_manifest(job_id)
            if found is None:
                return True  # the job's state is gone: nothing to take over
            changed, new_etag = found
            if new_etag != etag:
                # Renewed, or finished, by a live holder. Released for a continuation, or
                # failed: the caller looks again and may take it over.
                return changed.lease is not None or changed.status == "enqueued"
        return False

    def due(self, claim: Claim) -> bool:
        return time.monotonic() - claim.renewed_at > self._lease_s / 3

    def write(self, claim: Claim, manifest: JobManifest, hold: bool) -> None:
        """Write `manifest` as this invocation's, renewing the lease (hold) or releasing it.
        LeaseLost if another invocation took the job over meanwhile."""
        manifest.lease = self._lease(claim.request_id) if hold else None
        manifest.updated_at = self._clock()
        try:
            claim.etag = self._store.write_manifest(manifest, claim.etag)
        except ManifestChanged as exc:
            raise LeaseLost(manifest.job_id) from exc
        claim.manifest, claim.renewed_at = manifest, time.monotonic()
        self._mirror(manifest)
