"""One input file -> one job: validate and normalise each row, dedupe, fan out to SQS, and
record everything in jobs/<job_id>/ (manifest, rejects). Checkpoints and continues in a new
invocation before the deadline, so no file is too large."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from models import PAIRS, JobManifest, ObjectRef, Source, WorkItem
from models.normalise import InvalidTarget, normalise
from producer.csvstream import BadFile, Header, RawRow, RowReader, iter_lines, read_header
from producer.fanout import Fanout
from producer.seen import SeenSet
from producer.settings import ProducerSettings
from producer.store import JobStore, RejectsFile

logger = Logger(service="trawl", child=True)

# A job whose manifest says "running" but was not touched for longer than the producer's
# maximum run time was abandoned by a crashed invocation: a redelivered event resumes it.
ABANDONED_AFTER = dt.timedelta(minutes=16)
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
    continuation: bool = False


@dataclass
class ProducerDeps:
    settings: ProducerSettings
    store: JobStore
    sqs: Any
    continuer: Continuer


def job_id_for(ref: ObjectRef) -> str:
    """Same bucket, key and ETag -> same job: a duplicated notification or a re-upload of the
    same bytes never makes a second copy of the output."""
    return hashlib.sha256(f"{ref.bucket}\n{ref.key}\n{ref.etag}".encode()).hexdigest()[:16]


def parse_input_key(key: str) -> tuple[str, str]:
    parts = key.split("/")
    if len(parts) != 4 or parts[0] != "input" or not parts[3]:
        raise BadFile(f"input key '{key}' must look like input/<platform>/<kind>/<name>.csv")
    platform, kind = parts[1].lower(), parts[2].lower()
    if (platform, kind) not in PAIRS:
        known = ", ".join(sorted(f"{p}/{k}" for p, k in PAIRS))
        raise BadFile(f"'{platform}/{kind}' (from key '{key}') is not a platform/kind trawl knows: {known}")
    return platform, kind


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def start_or_resume(req: JobRequest, store: JobStore) -> JobManifest | None:
    """The manifest to work on, or None when another invocation owns the job or it is done."""
    job_id = job_id_for(req.source)
    existing = store.load_manifest(job_id)
    if req.continuation:
        if existing is None or existing.status != "running" or existing.checkpoint is None:
            logger.warning("nothing to continue", job_id=job_id)
            return None
        return existing
    if existing is not None and existing.status == "failed" and existing.retryable:
        # Start over: rows sent before the error are sent again, which is harmless (outputs are
        # idempotent), and the counts are rebuilt from the first row so they still add up.
        logger.info("restarting a job that failed for a retryable reason", job_id=job_id)
        fresh = existing.model_copy(
            update={
                "status": "running",
                "message": None,
                "retryable": False,
                "checkpoint": None,
                "rows_read": 0,
                "enqueued": 0,
                "duplicates": 0,
                "rejected": 0,
                "updated_at": _now(),
            }
        )
        store.save_manifest(fresh)
        return fresh
    if existing is not None:
        abandoned = existing.status == "running" and _now() - existing.updated_at > ABANDONED_AFTER
        if not abandoned:
            logger.info("job already known", job_id=job_id, status=existing.status)
            return None
        return existing
    now = _now()
    manifest = JobManifest(
        job_id=job_id,
        input=req.source,
        platform=None,
        kind=None,
        job_date=req.event_time.date(),
        created_at=now,
        updated_at=now,
    )
    if not store.claim(manifest):
        logger.info("job claimed by another invocation", job_id=job_id)
        return None
    return manifest


def run_job(req: JobRequest, deps: ProducerDeps, remaining_ms: Callable[[], int]) -> JobManifest | None:
    manifest = start_or_resume(req, deps.store)
    if manifest is None:
        return None
    manifest.invocations += 1
    work_dir = Path(deps.settings.tmp_dir) / f"trawl-{manifest.job_id}"
    work_dir.mkdir(parents=True, exist_ok=True)
    try:
        platform, kind = parse_input_key(req.source.key)
        manifest.platform, manifest.kind = platform, kind
        queue_url = deps.settings.queue_urls.get(platform)
        if queue_url is None:
            raise BadFile(f"this stack has no queue for platform '{platform}'")
        _FanOutJob(manifest, deps, work_dir, queue_url, remaining_ms).run()
    except BadFile as exc:
        _fail(manifest, str(exc))
    except Exception as exc:
        # The manifest says what happened (its counts so far still add up), and marks the job
        # retryable: Lambda's retry of this event, or the same upload delivered again, restarts it.
        message = f"producer error after {manifest.rows_read:,} rows: {type(exc).__name__}: {exc}"
        _fail(manifest, message, retryable=True)
        raise
    finally:
        manifest.updated_at = _now()
        deps.store.save_manifest(manifest)
        if manifest.status != "running":
            shutil.rmtree(work_dir, ignore_errors=True)
    return manifest


def _fail(manifest: JobManifest, message: str, retryable: bool = False) -> None:
    manifest.status, manifest.message, manifest.checkpoint = "failed", message, None
    manifest.retryable = retryable
    logger.warning("job failed", job_id=manifest.job_id, reason=message)


class _FanOutJob:
    def __init__(
        self,
        manifest: JobManifest,
        deps: ProducerDeps,
        work_dir: Path,
        queue_url: str,
        remaining_ms: Callable[[], int],
    ) -> None:
        self.m = manifest
        self.deps = deps
        self.settings = deps.settings
        self.store = deps.store
        self.work_dir = work_dir
        self.queue_url = queue_url
        self.remaining_ms = remaining_ms

    def run(self) -> None:
        checkpoint = self.m.checkpoint
        resume = checkpoint is not None
        # /tmp outlives invocations in a warm container: start from the job's own state only.
        for name in ("seen.sqlite", "rejects.csv"):
            (self.work_dir / name).unlink(missing_ok=True)
        if resume:
            self.store.download(self.m.job_id, "checkpoint/seen.sqlite", self.work_dir / "seen.sqlite")
            self.store.download(self.m.job_id, "rejects.csv", self.work_dir / "rejects.csv")
        seen = SeenSet(self.work_dir / "seen.sqlite")
        rejects = RejectsFile(self.work_dir / "rejects.csv", resume=resume)
        fanout = Fanout(self.deps.sqs, self.queue_url, self.settings.send_threads)
        try:
            stopped_at = self._read_rows(seen, rejects, fanout)
        finally:
            fanout.close()
            self.m.enqueued += fanout.sent
            self._record_unsent(fanout, rejects)
            seen.close()
            rejects.close()
        self.store.upload(self.m.job_id, "rejects.csv", rejects.path, "text/csv")
        if stopped_at is None:
            self.m.status, self.m.checkpoint = "enqueued", None
            self.store.delete(self.m.job_id, "checkpoint/seen.sqlite")
            logger.info("job enqueued", job_id=self.m.job_id, enqueued=self.m.enqueued, rows=self.m.rows_read)
            return
        self.store.upload(self.m.job_id, "checkpoint/seen.sqlite", seen.path, "application/vnd.sqlite3")
        self.m.checkpoint = stopped_at
        self.m.updated_at = _now()
        self.store.save_manifest(self.m)
        payload = {"bucket": self.m.input.bucket, "key": self.m.input.key, "etag": self.m.input.etag}
        self.deps.continuer.continue_job({"trawl_continuation": payload})
        logger.info(
            "job checkpointed", job_id=self.m.job_id, rows=self.m.rows_read, offset=stopped_at["offset"]
        )

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
                # holds even when something fails half-way through a batch.
                self.m.rows_read += 1
            valid.clear()

        for count, raw in enumerate(reader, start=1):
            item_or_reason = self._item(raw, header)
            if isinstance(item_or_reason, str):
                rejects.add(raw.row, _target_value(raw, header), item_or_reason)
                self.m.rejected += 1
                self.m.rows_read += 1
            else:
                valid.append(item_or_reason)
            at_cap = bool(cap) and count >= cap
            if at_cap or count % CHECK_DEADLINE_EVERY == 0:
                stopping = at_cap or self.remaining_ms() < self.settings.safety_margin_ms
                if stopping or len(valid) >= DEDUPE_BATCH:
                    settle()  # before a checkpoint, every row up to it is answered
                self._record_unsent(fanout, rejects)
                if stopping:
                    return self._checkpoint(raw, header)
        settle()
        if self.m.rows_read == 0:
            raise BadFile(f"file has a header ({', '.join(header.columns)}) but no data rows")
        return None

    @staticmethod
    def _checkpoint(last: RawRow, header: Header) -> dict[str, Any]:
        return {
            "offset": last.end_offset,
            "row": last.row + 1,
            "columns": list(header.columns),
            "delimiter": header.delimiter,
            "target_index": header.target_index,
            "newline": header.newline,
        }

    def _record_unsent(self, fanout: Fanout, rejects: RejectsFile) -> None:
        for unsent in fanout.take_unsent():
            rejects.add(unsent.item.source.row, unsent.item.target, unsent.reason)
            self.m.rejected += 1

    def _item(self, raw: RawRow, header: Header) -> WorkItem | str:
        """The row's WorkItem, or the reason it is rejected."""
        if raw.fields is None:
            return raw.error or "unreadable CSV row"
        if not any(f.strip() for f in raw.fields):
            return "blank row"
        width = len(header.columns)
        if len(raw.fields) > width:
            return f"row has {len(raw.fields)} fields but the header has {width} (an unquoted delimiter?)"
        if len(raw.fields) <= header.target_index:
            where = f"'{header.target_column}' is field {header.target_index + 1}"
            return f"row has {len(raw.fields)} fields; {where}"
        if any(_undecodable(f) for f in raw.fields):
            return "row is not valid UTF-8; save the file as CSV UTF-8"
        assert self.m.platform is not None and self.m.kind is not None
        try:
            target = normalise(self.m.platform, self.m.kind, raw.fields[header.target_index])
        except InvalidTarget as exc:
            return str(exc)
        if not _ITEM_KEY.match(target.item_key) or len(target.value) > MAX_TARGET:
            return f"row cannot become a message: item key {target.item_key!r} or target is malformed"
        # The job-wide fields were validated once (_prototype); the row's own pieces just above
        # and by normalise(), so the per-row pydantic validation (a third of the CPU) is skipped.
        row = {
            "item_key": target.item_key,
            "target": target.value,
            "source": Source.model_construct(bucket=self.m.input.bucket, key=self.m.input.key, row=raw.row),
            "context": _context(header, raw.fields),
        }
        return WorkItem.model_construct(**(self._prototype.__dict__ | row))

    @functools.cached_property
    def _prototype(self) -> WorkItem:
        """A fully validated WorkItem carrying this job's fields; rows differ from it only in
        item_key, target, source row and context."""
        assert self.m.platform is not None and self.m.kind is not None
        return WorkItem(
            job_id=self.m.job_id,
            job_date=self.m.job_date,
            platform=self.m.platform,
            kind=self.m.kind,
            item_key="prototype",
            target="prototype",
            source=Source(bucket=self.m.input.bucket, key=self.m.input.key, row=2),
        )


def _target_value(raw: RawRow, header: Header) -> str:
    fields = raw.fields or []
    return fields[header.target_index] if len(fields) > header.target_index else ""


_ITEM_KEY = re.compile(r"^[A-Za-z0-9_.=-]{1,200}$")  # models.records.ItemKey
MAX_TARGET = 2048  # WorkItem.target
_SURROGATE = re.compile("[\udc80-\udcff]")


def _undecodable(text: str) -> bool:
    return _SURROGATE.search(text) is not None


def _context(header: Header, fields: list[str]) -> dict[str, str]:
    """Every other column travels with the item, so analysts can join their own ids back."""
    context: dict[str, str] = {}
    for index, name in enumerate(header.columns):
        if index == header.target_index:
            continue
        key = name or f"column_{index + 1}"
        while key in context:
            key += "_"
        context[key] = fields[index] if index < len(fields) else ""
    return context
