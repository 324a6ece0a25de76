"""One input file -> one job: validate and normalise each row, dedupe, fan out to SQS, and
record everything in jobs/<job_id>/ (manifest, rejects). Checkpoints as it goes and continues
in a new invocation before the deadline, so no file is too large and a crash loses little.

What a failure leaves (docs/contract.md, "Producer failures"):
- the file's fault (BadFile): the job is failed for good, with a message saying what is wrong;
- anything else (an AWS error, SQS refusing sends, a crash): the last checkpoint stays, the job
  reads `retrying`, and Lambda's retry of the event resumes from that checkpoint. The attempt
  after the last retry marks it `failed`; its event is then in the failure queue, and a replay
  (`trawl replay`) resumes it the same way."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from models import JobManifest, ObjectRef, WorkItem, pair_problem
from producer.csvstream import BadFile, Header, RawRow, RowReader, iter_lines, read_header
from producer.fanout import Fanout
from producer.lease import Claim, LeaseLost, Leases, utcnow
from producer.ledger import JobRows
from producer.rows import RowClassifier
from producer.seen import SeenSet
from producer.settings import ProducerSettings
from producer.store import JobStore, RejectsFile

logger = Logger(service="trawl", child=True)

CHECK_DEADLINE_EVERY = 100
# Valid rows are deduped (SQLite) in batches of about this many: each call into SQLite gives up
# the GIL, and winning it back from the sender threads costs a few milliseconds, whatever the
# batch size. 1,000 rows wait at most a few milliseconds of reading before they are sent.
DEDUPE_BATCH = 1000


class Continuer(Protocol):
    def continue_job(self, payload: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class JobRequest:
    source: ObjectRef
    event_time: dt.datetime
    request_id: str  # Lambda keeps it when it retries the same event
    continuation: bool = False
    run: str | None = None  # a re-run's or a watch firing's tag: part of the job's identity
    job_date: dt.date | None = None  # the records' dt; else the event's date (UTC)
    watch: str | None = None
    rerun_of: str | None = None

    @property
    def job_id(self) -> str:
        return job_id_for(self.source, self.run)


@dataclass
class ProducerDeps:
    settings: ProducerSettings
    store: JobStore
    sqs: Any
    continuer: Continuer
    jobs: JobRows | None = None  # the job's row in the ledger; None only in benchmarks


def job_id_for(ref: ObjectRef, run: str | None = None) -> str:
    """Same bucket, key and ETag -> same job: a duplicated notification or a re-upload of the
    same bytes never makes a second copy of the output. A run tag makes another job of the same
    key: a re-run ("rerun:<nonce>"), or a watch list's firing ("watch:<date>"), whose identity
    is the list and the date alone, so an edit of the list that day makes no second job."""
    identity = f"{ref.bucket}\n{ref.key}\n" + (ref.etag if run is None else f"run:{run}")
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def parse_input_key(key: str) -> tuple[str, str]:
    parts = key.split("/")
    if len(parts) != 4 or parts[0] not in ("input", "watch") or not parts[3]:
        raise BadFile(f"input key '{key}' must look like input/<platform>/<kind>/<name>.csv (or watch/...)")
    platform, kind = parts[1].lower(), parts[2].lower()
    problem = pair_problem(platform, kind, f"key '{key}'")
    if problem:
        raise BadFile(problem)
    return platform, kind


def _new_manifest(req: JobRequest, settings: ProducerSettings) -> JobManifest:
    now = utcnow()
    return JobManifest(
        job_id=req.job_id,
        input=req.source,
        platform=None,
        kind=None,
        job_date=req.job_date or req.event_time.date(),
        run=req.run,
        watch=req.watch,
        rerun_of=req.rerun_of,
        created_at=now,
        updated_at=now,
        max_attempts=settings.max_retry_attempts + 1,
        retry_horizon_s=settings.retry_horizon_s,
    )


def run_job(req: JobRequest, deps: ProducerDeps, remaining_ms: Callable[[], int]) -> JobManifest | None:
    settings = deps.settings
    leases = Leases(deps.store, settings.lease_s, mirror=deps.jobs.write if deps.jobs else None)
    job_id = req.job_id
    claim = leases.claim(job_id, req.request_id, req.continuation, lambda: _new_manifest(req, settings))
    if claim is None:
        return None
    work_dir = Path(settings.tmp_dir) / f"trawl-{job_id}"
    work_dir.mkdir(parents=True, exist_ok=True)
    try:
        platform, kind = parse_input_key(req.source.key)
        queue_url = settings.queue_urls.get(platform)
        claim.manifest.platform, claim.manifest.kind = platform, kind
        if queue_url is None:
            raise BadFile(f"this stack has no queue for platform '{platform}'")
        _FanOutJob(claim, leases, deps, work_dir, queue_url, remaining_ms).run()
    except LeaseLost:
        logger.warning("another invocation took the job over; this one stops", job_id=job_id)
        return None
    except BadFile as exc:
        _fail(claim, leases, str(exc), final=True, retryable=False)
    except Exception as exc:
        # Not the file's fault: keep the last checkpoint, so Lambda's retry of this event (or a
        # replay of it) resumes there; only the last attempt reads "failed".
        m = claim.manifest
        resumes = f"row {m.checkpoint['row']}" if m.checkpoint else "the first row"
        message = f"producer error: {type(exc).__name__}: {exc} (a retry resumes from {resumes})"
        _fail(claim, leases, message, final=claim.attempt >= m.max_attempts, retryable=True)
        raise
    finally:
        if claim.manifest.status != "running":
            shutil.rmtree(work_dir, ignore_errors=True)
    return claim.manifest


def _fail(claim: Claim, leases: Leases, message: str, final: bool, retryable: bool) -> None:
    m = claim.manifest.model_copy(deep=True)
    m.status, m.message, m.retryable = ("failed" if final else "retrying"), message, retryable
    if not retryable:
        m.checkpoint = None
    elif final:
        m.message = f"{message} (no retries left: `trawl replay` resumes the job from its checkpoint)"
    try:
        leases.write(claim, m, hold=False)
    except LeaseLost:
        return  # someone else owns the job now; its state is theirs to write
    logger.warning("job failed", job_id=m.job_id, reason=message, status=m.status, attempt=claim.attempt)


class _FanOutJob:
    """One invocation's share of a job: from the claim's checkpoint (or the header) on, until
    the file ends, the row cap or the deadline."""

    def __init__(
        self,
        claim: Claim,
        leases: Leases,
        deps: ProducerDeps,
        work_dir: Path,
        queue_url: str,
        remaining_ms: Callable[[], int],
    ) -> None:
        self.claim = claim
        self.leases = leases
        # The working copy: its counts run ahead of the manifest last written (the checkpoint's).
        self.m = claim.manifest.model_copy(deep=True)
        self.deps = deps
        self.settings = deps.settings
        self.store = deps.store
        self.work_dir = work_dir
        self.queue_url = queue_url
        self.remaining_ms = remaining_ms
        self._sent_before = self.m.enqueued
        self._checkpointed_at = time.monotonic()

    def run(self) -> None:
        checkpoint = self.m.checkpoint
        # /tmp outlives invocations in a warm container: start from the job's own state only.
        for name in ("seen.sqlite", "rejects.csv"):
            (self.work_dir / name).unlink(missing_ok=True)
        if checkpoint is not None:
            n = checkpoint.get("n", 0)
            for name, local in ((f"seen-{n}.sqlite", "seen.sqlite"), (f"rejects-{n}.csv", "rejects.csv")):
                if not self.store.download(self.m.job_id, f"checkpoint/{name}", self.work_dir / local):
                    raise RuntimeError(f"checkpoint file jobs/{self.m.job_id}/checkpoint/{name} is missing")
        seen = SeenSet(self.work_dir / "seen.sqlite")
        rejects = RejectsFile(self.work_dir / "rejects.csv", resume=checkpoint is not None)
        fanout = Fanout(self.deps.sqs, self.queue_url, self.settings.send_threads)
        try:
            stopped_at = self._read_rows(seen, rejects, fanout)
            self._sent(fanout)
            if stopped_at is None:
                self._finish(rejects, seen)
            else:
                self._save_checkpoint(stopped_at, seen, rejects, hold=False)
        except BadFile:
            # The file's fault, for good: the job ends with what it answered so far, and the
            # rows rejected so far are there to see.
            fanout.flush()
            self.m.enqueued = self._sent_before + fanout.sent
            self.claim.manifest = self.m
            self._show_rejects(rejects)
            raise
        finally:
            fanout.close()
            seen.close()
            rejects.close()
        if stopped_at is not None:
            payload = {"bucket": self.m.input.bucket, "key": self.m.input.key, "etag": self.m.input.etag}
            if self.m.run is not None:
                payload["run"] = self.m.run
            self.deps.continuer.continue_job({"trawl_continuation": payload})
            logger.info(
                "job checkpointed", job_id=self.m.job_id, rows=self.m.rows_read, offset=stopped_at["offset"]
            )

    def _finish(self, rejects: RejectsFile, seen: SeenSet) -> None:
        self.store.upload(self.m.job_id, "rejects.csv", rejects.flush(), "text/csv")
        # The job's distinct item keys, kept: the ledger's reconcile pass names from them any
        # item that left the queue with no worker seeing it.
        self.store.upload(self.m.job_id, "items.sqlite", seen.save(), "application/vnd.sqlite3")
        self.m.status, self.m.checkpoint = "enqueued", None
        self.leases.write(self.claim, self.m, hold=False)
        # Every checkpoint's files, including any an invocation uploaded before it died.
        try:
            self.store.delete_all(self.m.job_id, "checkpoint/")
        except Exception:  # a leftover file costs cents; failing the job for it would not
            logger.warning("could not delete the job's checkpoint files", job_id=self.m.job_id)
        logger.info("job enqueued", job_id=self.m.job_id, enqueued=self.m.enqueued, rows=self.m.rows_read)

    def _show_rejects(self, rejects: RejectsFile) -> None:
        try:
            self.store.upload(self.m.job_id, "rejects.csv", rejects.flush(), "text/csv")
        except Exception:
            logger.warning("could not upload rejects.csv", job_id=self.m.job_id)

    def _sent(self, fanout: Fanout) -> None:
        """Wait for every send; the job's enqueued count then includes them. EnqueueFailed if
        SQS refused any after every retry: those rows are not the file's fault, so they are
        never rejects, and the job is retried from its last checkpoint."""
        fanout.flush()
        fanout.raise_if_refused()
        self.m.enqueued = self._sent_before + fanout.sent

    def _save_checkpoint(self, at: dict[str, Any], seen: SeenSet, rejects: RejectsFile, hold: bool) -> None:
        """Commit the job's state up to `at`: the dedupe file and rejects under a new number,
        then the manifest naming them (the commit point: a crash before it resumes from the
        previous checkpoint, whose files are untouched)."""
        previous = self.m.checkpoint.get("n", 0) if self.m.checkpoint else None
        n = 0 if previous is None else previous + 1
        job_id = self.m.job_id
        self.store.upload(job_id, f"checkpoint/seen-{n}.sqlite", seen.save(), "application/vnd.sqlite3")
        self.store.upload(job_id, f"checkpoint/rejects-{n}.csv", rejects.flush(), "text/csv")
        self.store.upload(job_id, "rejects.csv", rejects.path, "text/csv")  # what analysts read
        self.m.checkpoint = at | {"n": n}
        self.leases.write(self.claim, self.m.model_copy(deep=True), hold=hold)
        self._checkpointed_at = time.monotonic()
        if previous is not None:
            self._drop_checkpoint_files(previous)

    def _drop_checkpoint_files(self, n: int) -> None:
        for name in (f"checkpoint/seen-{n}.sqlite", f"checkpoint/rejects-{n}.csv"):
            try:
                self.store.delete(self.m.job_id, name)
            except Exception:  # a leftover file costs cents; failing the job for it would not
                logger.warning("could not delete a checkpoint file", job_id=self.m.job_id, name=name)

    def _open(self) -> tuple[Header, RowReader]:
        ck = self.m.checkpoint
        body = self.store.open_input(self.m.input, offset=ck["offset"] if ck else 0)
        if ck:
            newline = ck.get("newline", "\n")  # checkpoints written before CR files were read lack it
            lines = iter_lines(body, newline=newline)
            header = Header(
                tuple(ck["columns"]), ck["delimiter"], ck["target_index"], ck["offset"], ck["row"], newline
            )
        else:
            assert self.m.platform is not None
            lines = iter_lines(body)
            header = read_header(lines, self.m.platform)
            self.m.target_column = header.target_column
        return header, RowReader(lines, header.delimiter, header.data_offset, header.first_row)

    def _read_rows(self, seen: SeenSet, rejects: RejectsFile, fanout: Fanout) -> dict[str, Any] | None:
        """Returns the checkpoint to continue from, or None when the file is done."""
        header, reader = self._open()
        rows = RowClassifier(self.m, header)
        cap = self.settings.max_rows_per_invocation
        valid: list[WorkItem] = []  # rows whose duplicate check waits for the next batch

        def settle() -> None:
            """Dedupe the waiting rows in one batch (in file order), then fan them out."""
            for item, new in zip(valid, seen.add_many([i.item_key for i in valid]), strict=True):
                if new:
                    fanout.add(item)
                else:
                    self.m.duplicates += 1
                # Counted only once classified, so rows_read = enqueued + duplicates + rejected
                # holds at every checkpoint.
                self.m.rows_read += 1
            valid.clear()

        for count, raw in enumerate(reader, start=1):
            item_or_reason = rows.item(raw)
            if isinstance(item_or_reason, str):
                rejects.add(raw.row, rows.value(raw), item_or_reason)
                self.m.rejected += 1
                self.m.rows_read += 1
            else:
                valid.append(item_or_reason)
            at_cap = bool(cap) and count >= cap
            if at_cap or count % CHECK_DEADLINE_EVERY == 0:
                stopping = at_cap or self.remaining_ms() < self.settings.safety_margin_ms
                if stopping:
                    settle()  # before a checkpoint, every row up to it is answered
                    return _position(raw, header)
                if len(valid) >= DEDUPE_BATCH:
                    settle()
                self._keep_going(raw, header, settle, seen, rejects, fanout)
        settle()
        if self.m.rows_read == 0:
            raise BadFile(f"file has a header ({', '.join(header.columns)}) but no data rows")
        return None

    def _keep_going(
        self,
        raw: RawRow,
        header: Header,
        settle: Callable[[], None],
        seen: SeenSet,
        rejects: RejectsFile,
        fanout: Fanout,
    ) -> None:
        """Between rows: a checkpoint now and then, and the lease renewed (the heartbeat)."""
        if time.monotonic() - self._checkpointed_at > self.settings.checkpoint_every_s:
            settle()
            self._sent(fanout)
            self._save_checkpoint(_position(raw, header), seen, rejects, hold=True)
        elif self.leases.due(self.claim):
            self.leases.write(self.claim, self.claim.manifest.model_copy(deep=True), hold=True)


def _position(last: RawRow, header: Header) -> dict[str, Any]:
    return {
        "offset": last.end_offset,
        "row": last.row + 1,
        "columns": list(header.columns),
        "delimiter": header.delimiter,
        "target_index": header.target_index,
        "newline": header.newline,
    }
