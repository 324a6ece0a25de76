"""Chaos run (`python -m bench.chaos [--items 2000]`, `make chaos`): the whole local pipeline
under injected upstream faults, latency spikes and one worker crashing mid-batch, then a re-drive
of the dead-letter queues with the faults turned off. It asserts the failure semantics users
rely on (docs/contract.md): every row accounted for, exactly one record per valid item, none lost, no
duplicate objects, empty DLQs. The e2e smoke test (tests/e2e/test_chaos_smoke.py) runs the
same harness with a few dozen items."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import logging
import random
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from bench.common import quiet_handlers
from models.ledger import SETTLED, item_of
from models.normalise import InvalidTarget, normalise
from trawl.local.runtime import CrashedBatch
from trawl.local.session import LocalSession, local_session
from trawl.sandbox import Call, Faults, decode_sec_uid, video_count
from trawl.stack.describe import queue_depth
from trawl.stack.jobs import JobSummary, job_summary, load_manifest
from trawl.stack.ops import redrive
from trawl.stack.submit import message_body, release, submit, wait_for_jobs

_deserialise = TypeDeserializer().deserialize
# ~20% of upstream calls fail retryably (429/503 throttle; 500/520/timeout/reset are "unavailable",
# which the worker retries once in-process), plus 3% latency spikes.
DEFAULT_FAULTS = "429=0.06,500=0.04,503=0.03,520=0.03,timeout=0.02,reset=0.02,slow=0.03"
MAX_VIDEOS_PER_ACCOUNT = 100  # WorkerSettings.max_videos_per_account's default
# A receive makes at most 2 calls for an item that fails with a 5xx, a timeout or a reset, so 4
# such draws fail 2 receives. A 429 or 503 is waited out within the receive (more calls), so a
# doomed item's first draws are none of those.
DOOMED_DRAWS = 4
WAITED_OUT = ("429", "503", "slow")
UPSTREAM_CALL = {"tiktok": ("GET", "/public/check"), "product": ("POST", "/v1/extract")}


@dataclass(frozen=True)
class ChaosConfig:
    items: int = 2000  # distinct valid items across the five inputs
    seed: int = 2024
    faults: str = DEFAULT_FAULTS
    latency_ms: int = 20
    slow_ms: int = 1500
    max_receive_count: int = 2  # template parameter MaxReceiveCount: low, so items dead-letter
    doomed: int = 4  # items whose first DOOMED_DRAWS calls all fault: they must dead-letter
    crash_platform: str = "tokopedia"  # its queue's VisibilityTimeout is 1080 s
    timeout_s: float = 600


@dataclass(frozen=True)
class Expected:
    """What one distinct valid item must end as."""

    item_key: str
    target: str
    status: str  # ok, not_found, private
    row: int  # the first row it appears on (the header is row 1)
    ref: str  # the row's `ref` column, which must travel into the record's context
    videos: int = 0  # tiktok/videos with status ok: exactly this many video records


@dataclass
class ChaosInput:
    platform: str
    kind: str
    name: str
    rows: list[str] = field(default_factory=list)  # the target column, in file order
    duplicates: int = 0
    rejects: int = 0
    expected: dict[str, Expected] = field(default_factory=dict)
    doomed: set[str] = field(default_factory=set)  # item keys that must reach the DLQ

    def write(self, folder: Path) -> Path:
        path = folder / self.name
        column = "username" if self.platform == "tiktok" else "url"
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([column, "ref"])
            writer.writerows([value, f"r{n}"] for n, value in enumerate(self.rows, start=2))
        return path


@dataclass
class JobOutcome:
    platform: str
    kind: str
    job_id: str
    rows: int
    enqueued: int
    duplicates: int
    rejected: int
    dead_lettered: int  # in the DLQ after the faulty phase, before the re-drive
    ok: int
    permanent: int
    objects: int
    lost: int
    doubled: int  # items with more than one output object (under different keys)
    ledger_items: int  # the ledger's count of the job's items: ok + permanent + dead-lettered + in flight
    refetched: int  # items fetched from the upstream again after their outcome had settled


@dataclass
class ChaosReport:
    config: ChaosConfig
    jobs: list[JobOutcome]
    faults: dict[str, int]
    calls_per_item: list[int]  # upstream requests per distinct item, across all jobs
    crash: CrashedBatch | None
    fast_forwarded: int
    redriven: dict[str, int]
    timings: dict[str, float]
    violations: list[str]


# --------------------------------------------------------------------------- inputs


def _doomed(faults: Faults, kind: str, target: str) -> bool:
    method, path = UPSTREAM_CALL[kind]
    draws = [faults.decide(method, path, target, n) for n in range(DOOMED_DRAWS)]
    return all(d is not None and d not in WAITED_OUT for d in draws)


def _find_doomed(faults: Faults, kind: str, make: Any, count: int) -> list[str]:
    found: list[str] = []
    n = 0
    while len(found) < count:
        if _doomed(faults, kind, make(n)):
            found.append(make(n))
        n += 1
    return found


def _split(total: int, shares: dict[str, float]) -> dict[str, int]:
    counts = {name: max(2, round(total * share)) for name, share in shares.items()}
    counts["tiktok/account"] += total - sum(counts.values())
    return counts


def make_inputs(config: ChaosConfig, faults: Faults) -> list[ChaosInput]:
    """Five CSVs holding `config.items` distinct valid items, ~2% of them permanent failures,
    plus duplicates and off-domain rows (rejects); `config.doomed` items must dead-letter."""
    rng = random.Random(config.seed)
    counts = _split(
        config.items,
        {"tiktok/account": 0.45, "tiktok/videos": 0.01, "tokopedia": 0.18, "shopee": 0.18, "lazada": 0.18},
    )
    doomed_tiktok = config.doomed - config.doomed // 2
    s = config.seed
    raw: dict[tuple[str, str], tuple[list[str], list[str], list[str]]] = {}  # valid, dupes, rejects
    doomed_rows: dict[tuple[str, str], list[str]] = {}

    n = counts["tiktok/account"]
    ghosts = max(1, n // 50)
    privates = max(1, n // 100)
    doomed = _find_doomed(faults, "tiktok", lambda k: f"doomed{s}_{k}", doomed_tiktok)
    doomed_rows["tiktok", "account"] = doomed
    plain = n - ghosts - privates - len(doomed)
    names = [f"u{s}_{k:05d}" for k in range(plain)] + doomed
    names += [f"ghost{s}_{k}" for k in range(ghosts)] + [f"private{s}_{k}" for k in range(privates)]
    dupes = ["@" + name.upper() for name in names[: max(1, n // 100)]]
    raw["tiktok", "account"] = (names, dupes, ["https://www.youtube.com/@someone", "not a username!"])

    n = counts["tiktok/videos"]
    small = rng.sample(range(0, 40), max(0, n - 2))
    # videos_95 needs 4 pages: 3 in its first message, the 4th in a continuation message
    videos = ["videos_95", *(f"videos_{k}" for k in small), f"ghost{s}_videos"][:n]
    raw["tiktok", "videos"] = (videos, [f"https://www.tiktok.com/@{videos[0]}"], ["https://vimeo.com/@x"])

    # (product URL for number k and a word in its path, another spelling of it, an off-domain row)
    shops: dict[str, tuple[Any, Any, str]] = {
        "tokopedia": (
            lambda k, word: f"https://www.tokopedia.com/chaosshop{s}/{word}-{k}",
            lambda url: url + "?utm_source=chaos",
            "https://www.amazon.com/dp/B0CHAOS1",
        ),
        "shopee": (
            lambda k, word: f"https://shopee.co.id/Chaos-{word}-{k}-i.{s}.{k}",
            lambda url: f"https://shopee.co.id/product/{s}/{url.rsplit('.', 1)[1]}",
            "https://www.lazada.co.id/products/wrong-shop-i1-s1.html",
        ),
        "lazada": (
            lambda k, word: f"https://www.lazada.co.id/products/chaos-{word}-i{s}{k:08d}-s1.html",
            lambda url: url + "?spm=chaos.home",
            "https://evil.example.com/products/x-i1-s1.html",
        ),
    }
    for platform, (product, duplicate, off_domain) in shops.items():
        n = counts[platform]
        notfound = max(1, n // 50)
        doomed_here = (config.doomed // 2) if platform == "tokopedia" else 0
        doomed = _find_doomed(faults, "product", lambda k, p=product: p(10**6 + k, "item"), doomed_here)
        doomed_rows[platform, "product"] = doomed
        urls = [product(k, "item") for k in range(n - notfound - len(doomed))] + doomed
        urls += [product(10**7 + k, "notfound") for k in range(notfound)]
        dupes = [duplicate(url) for url in urls[: max(1, n // 100)]]
        raw[platform, "product"] = (urls, dupes, [off_domain, "https://127.0.0.1/admin"])

    inputs = []
    for (platform, kind), (valid, dupes, rejects) in raw.items():
        rows = valid + dupes + rejects
        rng.shuffle(rows)
        item = ChaosInput(platform, kind, f"chaos_{platform}_{kind}.csv", rows, len(dupes), len(rejects))
        for row, value in enumerate(rows, start=2):
            try:
                target = normalise(platform, kind, value)
            except InvalidTarget:
                continue
            if target.item_key not in item.expected:
                item.expected[target.item_key] = _expect(kind, target.value, target.item_key, row)
        item.doomed = {normalise(platform, kind, v).item_key for v in doomed_rows.get((platform, kind), [])}
        inputs.append(item)
    return inputs


def _expect(kind: str, target: str, item_key: str, row: int) -> Expected:
    if target.rsplit("/", 1)[-1].startswith(("ghost", "missing")) or "notfound" in target:
        status = "not_found"
    elif target.startswith("private"):
        status = "private"
    else:
        status = "ok"
    videos = min(video_count(target), MAX_VIDEOS_PER_ACCOUNT) if kind == "videos" and status == "ok" else 0
    return Expected(item_key, target, status, row, f"r{row}", videos)


# --------------------------------------------------------------------------- the run


class CrashFastForward:
    """Stands in for the VisibilityTimeout elapsing on a crashed invocation's batch (360 s for
    TikTok, 1080 s for the marketplaces): sets those messages' visibility to 0, so SQS hands
    them out again now rather than in 18 minutes. Nothing else is changed."""

    def __init__(self, session: LocalSession) -> None:
        self._session = session
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="crash-fast-forward", daemon=True)
        self.forwarded = 0

    def __enter__(self) -> CrashFastForward:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        sqs = self._session.stack.endpoint.client("sqs")
        done = 0
        while not self._stop.wait(0.1):
            for batch in self._session.runtime.crashed[done:]:
                done += 1
                for start in range(0, len(batch.receipt_handles), 10):
                    handles = batch.receipt_handles[start : start + 10]
                    entries = [
                        {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                        for i, h in enumerate(handles)
                    ]
                    answer = sqs.change_message_visibility_batch(QueueUrl=batch.queue_url, Entries=entries)
                    self.forwarded += len(answer.get("Successful", []))


def run_chaos(config: ChaosConfig, workdir: Path) -> ChaosReport:
    faults = Faults.parse(
        config.faults, latency_ms=config.latency_ms, seed=config.seed, slow_ms=config.slow_ms
    )
    inputs = make_inputs(config, faults)
    timings: dict[str, float] = {}
    started = time.monotonic()
    with local_session(
        faults=faults, parameters={"MaxReceiveCount": str(config.max_receive_count)}
    ) as session:
        stack = session.stack
        timings["stack start"] = time.monotonic() - started
        session.runtime.crash_next_worker_invocation(stack.queue_url(config.crash_platform))
        phase = time.monotonic()
        with CrashFastForward(session) as forward:
            jobs = [submit(session, item.write(workdir), item.platform, item.kind) for item in inputs]
            wait_for_jobs(session, jobs, timeout_s=config.timeout_s)
        timings["faulty run"] = time.monotonic() - phase

        dead = {p: dead_letters(stack, p) for p in stack.platforms}
        in_dlq = Counter(body.get("job_id") for found in dead.values() for body in found)
        dead_keys = {(b.get("job_id"), b.get("item_key")) for found in dead.values() for b in found}

        phase = time.monotonic()
        session.sandbox.set_faults(Faults({}))
        redriven = {p: redrive(stack, p).moved for p in stack.platforms}
        wait_for_jobs(session, jobs, timeout_s=config.timeout_s)
        timings["re-drive"] = time.monotonic() - phase

        phase = time.monotonic()
        calls = session.sandbox.call_log()
        outcomes, violations = verify(session, inputs, jobs, in_dlq, calls)
        for item, job_id in zip(inputs, jobs, strict=True):
            missing = sorted(k for k in item.doomed if (job_id, k) not in dead_keys)
            if missing:
                violations.append(f"{item.name}: doomed items did not reach the DLQ: {missing}")
        crash = session.runtime.crashed[0] if session.runtime.crashed else None
        if crash is None:
            violations.append("the injected worker crash never happened")
        elif forward.forwarded == 0:
            violations.append("the crashed batch was never made visible again")
        timings["verify"] = time.monotonic() - phase
        stats = session.sandbox.stats
    timings["wall"] = time.monotonic() - started
    per_item = calls_per_item(calls, inputs)
    return ChaosReport(
        config, outcomes, stats, per_item, crash, forward.forwarded, redriven, timings, violations
    )


# --------------------------------------------------------------------------- the checks


def dead_letters(stack: Any, platform: str) -> list[dict[str, Any]]:
    """The body of every message in the platform's DLQ, read by receiving them all (what the
    ledger says is checked against it); all are visible again on return."""
    sqs = stack.endpoint.client("sqs")
    url = stack.dlq_url(platform)
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60).get(
            "Messages", []
        )
        fresh = [m for m in messages if m["MessageId"] not in found]
        if not fresh:
            break
        for m in fresh:
            found[m["MessageId"]] = (m["ReceiptHandle"], message_body(m["Body"]))
    release(sqs, url, [handle for handle, _ in found.values()])
    return [body for _, body in found.values()]


def _output_objects(session: LocalSession) -> list[str]:
    s3 = session.stack.endpoint.client("s3")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=session.stack.bucket, Prefix="output/")
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def _read_records(session: LocalSession, keys: list[str]) -> list[dict[str, Any]]:
    s3 = session.stack.endpoint.client("s3")

    def read(key: str) -> dict[str, Any]:
        record: dict[str, Any] = json.loads(
            s3.get_object(Bucket=session.stack.bucket, Key=key)["Body"].read()
        )
        return record

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(read, keys))


def verify(
    session: LocalSession, inputs: list[ChaosInput], jobs: list[str], in_dlq: Counter[Any], calls: list[Call]
) -> tuple[list[JobOutcome], list[str]]:
    """Every row accounted for; exactly one record per item (per video for tiktok/videos) with
    the expected status, row and context, under one key; the ledger's counts equal the distinct
    items and each item's row holds its outcome; no item fetched again once settled; empty queues."""
    stack = session.stack
    violations: list[str] = []
    sqs = stack.endpoint.client("sqs")
    for platform in stack.platforms:
        for name, url in (("work queue", stack.queue_url(platform)), ("DLQ", stack.dlq_url(platform))):
            if depth := queue_depth(sqs, url):
                violations.append(f"{platform} {name} still holds {depth} messages")

    keys = _output_objects(session)
    objects = Counter(_job_and_item(key)[0] for key in keys)
    records_by_job: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in _read_records(session, keys):
        records_by_job[record["job_id"]].append(record)
    rows_by_job = ledger_items(stack)

    outcomes = []
    for item, job_id in zip(inputs, jobs, strict=True):
        m = load_manifest(stack, job_id)
        summary = job_summary(stack, job_id)
        if m is None or summary is None:
            violations.append(f"{item.name}: no manifest")
            continue
        where = f"{item.name} (job {job_id})"
        if m.rows_read != m.enqueued + m.duplicates + m.rejected:
            violations.append(f"{where}: rows {m.rows_read} != {m.enqueued}+{m.duplicates}+{m.rejected}")
        wanted = (len(item.rows), len(item.expected), item.duplicates, item.rejects)
        if (m.rows_read, m.enqueued, m.duplicates, m.rejected) != wanted:
            got = (m.rows_read, m.enqueued, m.duplicates, m.rejected)
            violations.append(f"{where}: (rows, enqueued, duplicates, rejected) {got} != {wanted}")
        records = records_by_job.get(job_id, [])
        lost, doubled = check_records(item, records, violations, where)
        rows = rows_by_job.get(job_id, {})
        check_ledger(item, summary, rows, objects[job_id], violations, where)
        refetched = check_refetches(item, job_id, rows, calls, violations, where)
        statuses = Counter(r["status"] for r in records)
        outcomes.append(
            JobOutcome(
                item.platform,
                item.kind,
                job_id,
                m.rows_read,
                m.enqueued,
                m.duplicates,
                m.rejected,
                in_dlq[job_id],
                statuses["ok"],
                sum(n for s, n in statuses.items() if s != "ok"),
                objects[job_id],
                lost,
                doubled,
                summary.written_ok + summary.written_permanent + summary.dead_lettered + summary.in_flight,
                refetched,
            )
        )
    return outcomes, violations


def ledger_items(stack: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """job_id -> item_key -> the item's ledger row (outcome, info, ...), read with a Scan."""
    dynamodb = stack.endpoint.client("dynamodb")
    found: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    pages = dynamodb.get_paginator("scan").paginate(
        TableName=stack.ledger_table,
        FilterExpression="begins_with(pk, :item)",
        ExpressionAttributeValues={":item": {"S": "ITEM#"}},
    )
    for page in pages:
        for raw in page["Items"]:
            row = {name: _deserialise(value) for name, value in raw.items()}
            job_id, key = item_of(str(row["pk"]))
            found[job_id][key] = row
    return found


def check_ledger(
    item: ChaosInput,
    summary: JobSummary,
    rows: dict[str, dict[str, Any]],
    objects: int,
    violations: list[str],
    where: str,
) -> None:
    """The ledger's counts equal the job's distinct items, each item's row holds the outcome its
    record says, and the records it counted are the objects in S3."""
    ok = sum(e.status == "ok" for e in item.expected.values())
    wanted = {"state": "done", "ok": ok, "permanent": len(item.expected) - ok, "dead-lettered": 0}
    wanted |= {"in flight": 0, "records": objects}
    got = {
        "state": summary.state,
        "ok": summary.written_ok,
        "permanent": summary.written_permanent,
        "dead-lettered": summary.dead_lettered,
        "in flight": summary.in_flight,
        "records": summary.records,
    }
    if got != wanted:
        violations.append(f"{where}: the ledger counts {got}, the job holds {wanted}")
    outcomes = {key: row.get("outcome") for key, row in rows.items()}
    expected = {key: e.status for key, e in item.expected.items()}
    if outcomes != expected:
        wrong = sorted(k for k in outcomes.keys() | expected.keys() if outcomes.get(k) != expected.get(k))
        shown = [(k, outcomes.get(k), expected.get(k)) for k in wrong[:5]]
        violations.append(f"{where}: {len(wrong)} ledger rows differ (item, ledger, wanted): {shown}")


def _call_target(call: Call) -> str:
    """The item target an upstream request was for: a /public/posts page names its account by
    secUid."""
    if call.path.endswith("/posts"):
        sec_uid = call.target.split(":", 1)[0]
        return decode_sec_uid(sec_uid) or sec_uid
    return call.target


def check_refetches(
    item: ChaosInput,
    job_id: str,
    rows: dict[str, dict[str, Any]],
    calls: list[Call],
    violations: list[str],
    where: str,
) -> int:
    """Items the upstream was asked for after the ledger had settled them (ok or a permanent
    status): a worker must see the settled row and skip the message. Returns how many."""
    settled_at = {
        item.expected[key].target: dt.datetime.fromisoformat(row["info"]["updated_at"]).timestamp()
        for key, row in rows.items()
        if row.get("outcome") in SETTLED and key in item.expected
    }
    late = Counter(
        target
        for call in calls
        if (target := _call_target(call)) in settled_at and call.at > settled_at[target]
    )
    if late:
        violations.append(
            f"{where}: {len(late)} items fetched again after they settled (job {job_id}), e.g."
            f" {sorted(late)[:5]}"
        )
    return len(late)


def calls_per_item(calls: list[Call], inputs: list[ChaosInput]) -> list[int]:
    """Upstream requests per distinct item of the inputs (0 for an item never fetched)."""
    per_target = Counter(_call_target(call) for call in calls)
    return [per_target[e.target] for item in inputs for e in item.expected.values()]


def _job_and_item(key: str) -> tuple[str, str]:
    job_id, _, rest = key.rsplit("/", 1)[1].partition("-")
    return job_id, rest.rsplit(".", 1)[0]


def check_records(
    item: ChaosInput, records: list[dict[str, Any]], violations: list[str], where: str
) -> tuple[int, int]:
    """Violations for one job's records; returns how many expected items have none, and how many
    have more objects than they should (one, or one per video)."""
    by_target: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_target[record["target"]].append(record)
    lost = doubled = 0
    for expected in item.expected.values():
        found = by_target.pop(expected.target, [])
        doubled += len(found) > max(1, expected.videos)
        if not found:
            lost += 1
            violations.append(f"{where}: {expected.item_key} has no record (lost)")
            continue
        wrong = [
            r["item_key"]
            for r in found
            if r["source"]["row"] != expected.row or r["context"].get("ref") != expected.ref
        ]
        if wrong:
            violations.append(f"{where}: {expected.item_key}: records with the wrong row or context {wrong}")
        if expected.videos:
            ids = {r["item_key"] for r in found}
            if len(found) != expected.videos or len(ids) != expected.videos:
                violations.append(
                    f"{where}: {expected.target} has {len(found)} videos, {expected.videos} wanted"
                )
            if {r["status"] for r in found} != {"ok"}:
                violations.append(f"{where}: {expected.target} has video records that are not ok")
        elif [(r["item_key"], r["status"]) for r in found] != [(expected.item_key, expected.status)]:
            got = [(r["item_key"], r["status"]) for r in found]
            violations.append(f"{where}: {expected.item_key} wanted one {expected.status} record, got {got}")
    for target in by_target:
        violations.append(f"{where}: records for {target!r}, which is not an item of this job")
    return lost, doubled


# --------------------------------------------------------------------------- the report


def render(report: ChaosReport) -> str:
    c = report.config
    lines = [
        f"trawl chaos: {c.items} items, faults {c.faults} (latency {c.latency_ms} ms, slow +{c.slow_ms} ms,"
        f" seed {c.seed}), MaxReceiveCount {c.max_receive_count}",
        "",
        f"{'platform/kind':<18}{'rows':>6}{'enq':>6}{'dup':>5}{'rej':>5}{'DLQ':>5}{'ok':>6}{'perm':>6}"
        f"{'objects':>9}{'lost':>6}{'doubled':>8}{'ledger':>8}{'refetch':>8}",
    ]
    total = Counter[str]()
    for j in report.jobs:
        row = {
            "rows": j.rows,
            "enq": j.enqueued,
            "dup": j.duplicates,
            "rej": j.rejected,
            "dlq": j.dead_lettered,
            "ok": j.ok,
            "perm": j.permanent,
            "objects": j.objects,
            "lost": j.lost,
            "doubled": j.doubled,
            "ledger": j.ledger_items,
            "refetch": j.refetched,
        }
        total.update(row)
        lines.append(_row(f"{j.platform}/{j.kind}", row))
    lines.append(_row("total", total))
    stats = dict(report.faults)
    requests = stats.pop("requests", 0)
    injected = sum(n for kind, n in stats.items() if kind != "slow")
    share = injected / requests if requests else 0.0
    per_item = report.calls_per_item
    mean = sum(per_item) / len(per_item) if per_item else 0.0
    lines += [
        "",
        f"upstream calls {requests}; injected faults {injected} ({share:.1%}): "
        + ", ".join(f"{k} {v}" for k, v in sorted(stats.items())),
        f"upstream calls per item: mean {mean:.2f}, max {max(per_item, default=0)}"
        f" ({len(per_item)} items; tiktok/videos accounts count their profile check and every page)",
    ]
    if report.crash:
        lines.append(
            f"worker crash: one {c.crash_platform} execution environment's process was killed after handling"
            f" {report.crash.handled} of {len(report.crash.receipt_handles)} messages of its batch; nothing"
            " was deleted, and a new environment took over. The queue's"
            f" VisibilityTimeout would return them after 1080 s (360 s for TikTok): {report.fast_forwarded}"
            " were made visible at once instead (ChangeMessageVisibility 0),"
            " standing for that timeout elapsing."
        )
    lines.append(
        "re-drive with faults off (trawl.stack.ops.redrive): "
        + ", ".join(f"{p} {n}" for p, n in report.redriven.items())
        + f" messages moved; DLQ'd items were {'all' if not report.violations else 'NOT all'} recovered"
    )
    lines.append("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in report.timings.items()))
    if report.violations:
        lines += [
            "",
            f"FAILED: {len(report.violations)} violations",
            *(f"  - {v}" for v in report.violations),
        ]
    else:
        lines += [
            "",
            "PASSED: rows = enqueued + duplicates + rejected for every job; every item has exactly one record"
            " (tiktok/videos: its videos or one status record) with its row and context; 0 lost;"
            " no item under two keys; the ledger's counts equal the distinct items and every item's row"
            " holds its outcome; no item fetched again once settled; work queues and DLQs empty.",
        ]
    return "\n".join(lines)


def _row(label: str, v: Any) -> str:
    return (
        f"{label:<18}{v['rows']:>6}{v['enq']:>6}{v['dup']:>5}{v['rej']:>5}{v['dlq']:>5}{v['ok']:>6}"
        f"{v['perm']:>6}{v['objects']:>9}{v['lost']:>6}{v['doubled']:>8}{v['ledger']:>8}{v['refetch']:>8}"
    )


def quiet_logs() -> None:
    """The handlers' retry warnings are the point of the run, not its output."""
    quiet_handlers(logging.CRITICAL)
    logging.basicConfig(level=logging.CRITICAL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=ChaosConfig.items)
    parser.add_argument("--seed", type=int, default=ChaosConfig.seed)
    parser.add_argument("--faults", default=ChaosConfig.faults)
    parser.add_argument("--max-receive-count", type=int, default=ChaosConfig.max_receive_count)
    args = parser.parse_args(argv)
    quiet_logs()
    config = ChaosConfig(
        items=args.items, seed=args.seed, faults=args.faults, max_receive_count=args.max_receive_count
    )
    with tempfile.TemporaryDirectory(prefix="trawl-chaos-") as folder:
        report = run_chaos(config, Path(folder))
    print(render(report))
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
