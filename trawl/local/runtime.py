"""The local stand-in for the Lambda service: invokes the functions the way their triggers would
on AWS. S3 upload events (and the producer's own continuations) go to the producer as
asynchronous invocations; each SQS event source mapping is polled with its batch size and
maximum concurrency, and its partial batch responses decide what is deleted; the ledger's stream
and schedule are served too. moto's redrive policy moves messages to the DLQ after
maxReceiveCount, exactly as SQS does.

Every function runs in execution environments of its own, each a process holding only its
staged artifact and speaking Lambda's Runtime API (trawl/local/environment.py); a worker poller
keeps its environment warm, as Lambda does, and one idle for long is reclaimed."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from trawl.local.artifacts import Artifact, stage
from trawl.local.environment import ContainerDied, Environment
from trawl.local.events import s3_object_created, sqs_event
from trawl.local.invoke import LOCAL_RETRY_DELAYS_S, AsyncInvocations, Invocation, InvokeServer
from trawl.local.schedules import LOCAL_SCALE, RuleRunner, ScheduleRunner, scheduled_rules, stack_schedules
from trawl.local.streams import StreamPoller
from trawl.stack.describe import EventSource, FunctionInfo, Stack, queue_depth

log = logging.getLogger(__name__)

# Producer invocations may send this many rows before they checkpoint and continue; a
# continuation starts only when the work queues are below LOW_WATER (checked every PACE_S).
# moto's SQS slows down with queue depth (every call scans the queue), so this keeps the
# embedded queues shallow; and deep enough that the workers do not run dry while the next
# producer invocation starts in its environment (an Invoke, the manifest, the lease, the
# checkpoint) before it sends.
LOCAL_ROWS_PER_INVOCATION = 400
LOW_WATER = 200
PACE_S = 0.05
# The producer's lease locally (60 s on AWS): a delivery that finds a dead holder's lease waits
# at most this long before it takes the job over.
LOCAL_PRODUCER_LEASE_S = 5
# Set by set_handler_log_level, and passed on to every environment.
_LOG_SETTINGS = ("POWERTOOLS_LOG_LEVEL", "POWERTOOLS_METRICS_DISABLED")
# A worker environment no batch has used for this long is closed (its process ends), as
# Lambda reclaims idle execution environments; the next batch starts a new one.
IDLE_ENVIRONMENT_S = 300.0


def set_handler_log_level(level: int) -> None:
    """The handlers' log level, in this process and in the execution environments it starts
    (they inherit this environment). The producer runs in this process, and its Powertools
    loggers (named trawl.<module>, each with its own level) may exist already, so their levels
    are set here too."""
    os.environ["POWERTOOLS_LOG_LEVEL"] = logging.getLevelName(level)
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "false" if level <= logging.INFO else "true"
    for name, found in list(logging.Logger.manager.loggerDict.items()):
        if (name == "trawl" or name.startswith("trawl.")) and isinstance(found, logging.Logger):
            found.setLevel(level)
    logging.getLogger("trawl").setLevel(level)
    logging.getLogger("botocore").setLevel(max(level, logging.ERROR))


@dataclass(frozen=True)
class CrashedBatch:
    """A worker invocation killed by `crash_next_worker_invocation`: its whole batch stays
    in flight on `queue_url` until the queue's VisibilityTimeout, as after a runtime crash."""

    queue_url: str
    receipt_handles: list[str]
    handled: int  # messages the handler processed (records written) before the crash


@dataclass
class Progress:
    processed: Counter[str]  # job_id -> first-page messages deleted
    continuations: Counter[str]  # job_id -> continuation (page > 0) messages deleted
    invocations: int = 0
    errors: int = 0


class LocalRuntime:
    def __init__(
        self,
        stack: Stack,
        env_overrides: dict[str, str] | None = None,
        idle_s: float = IDLE_ENVIRONMENT_S,
        retry_delays_s: tuple[float, ...] = LOCAL_RETRY_DELAYS_S,
        schedule_scale: float = LOCAL_SCALE,
        deliver_twice: bool = False,
        artifacts: Mapping[str, Artifact] | None = None,
    ) -> None:
        self.stack = stack
        # Tests only: every worker batch is delivered twice, as SQS's at-least-once may.
        self._deliver_twice = deliver_twice
        self._idle_s = idle_s
        self._schedule_scale = schedule_scale
        self.stream_pollers: list[StreamPoller] = []
        self.rules: dict[str, RuleRunner] = {}
        self.schedules: dict[str, ScheduleRunner] = {}
        self.warm_environments = 0  # worker environment processes alive now
        self.sqs = stack.endpoint.client("sqs")
        self._overrides = env_overrides or {}
        self._stop = threading.Event()
        self._busy = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.progress = Progress(processed=Counter(), continuations=Counter())
        self._work_queues = [s.queue_url for f in stack.workers() for s in f.event_sources]
        self._crash_next: str | None = None  # queue name whose next invocation crashes (chaos hook)
        self.crashed: list[CrashedBatch] = []
        # Each Lambda execution environment has a /tmp of its own; the producer's here is private
        # to this runtime, so two local runs of the same file (same job id) can't share work files.
        self._producer_tmp = tempfile.TemporaryDirectory(prefix="trawl-producer-tmp-")
        self._producer: Environment | None = None  # started on the first invocation, as on Lambda
        # logical id -> artifact: given ones (e.g. what `make build-<LogicalId>` built) are used
        # as they are; the others are staged on first use.
        self._artifacts: dict[str, Artifact] = dict(artifacts or {})
        # Tests only: settings for the producer's environment (set before its first invocation),
        # and calls made as each of its invocations starts.
        self.producer_env_overrides: dict[str, str] = {}
        self.on_producer_invocation: list[Callable[[Invocation], None]] = []
        self._pacing = True
        self._retry_delays = retry_delays_s
        producer = stack.producer()
        self.producer_calls = AsyncInvocations(
            producer, self._invoke_producer, self.sqs, stack.endpoint.region, retry_delays_s, self._pace
        )
        self.invoke_server = InvokeServer({producer.name: self.producer_calls})

    # ------------------------------------------------------------------ lifecycle
    def start(self, workers: bool = True) -> LocalRuntime:
        """Serve the producer's asynchronous invocations, the ledger's stream, the stack's
        schedules, and (workers) the workers' event source mappings."""
        self.invoke_server.start()
        self._pacing = workers  # with no workers to drain the queues, waiting for them would hang
        self._spawn("producer", self.producer_calls.run, self._stop)
        for function in self.stack.workers() if workers else []:
            for source in function.event_sources:
                for n in range(source.max_concurrency):
                    self._spawn(f"{function.name}-{n}", self._poller, function, source)
        for function in self.stack.functions.values():
            for stream in function.stream_sources:
                poller = StreamPoller(self.stack, function, stream, self.start_environment, self._stop)
                self.stream_pollers.append(poller)
                self._spawn(f"{function.name}-stream", poller.run)
        for rule in scheduled_rules(self.stack):
            runner = RuleRunner(self.stack, rule, self.start_environment, self._stop, self._schedule_scale)
            self.rules[rule.name] = runner
            self._spawn(f"{rule.name}-schedule", runner.run)
        for scheduled in stack_schedules(self.stack):
            if scheduled.function.name != self.stack.producer().name:
                log.warning("schedule %s: only schedules of the producer are fired locally", scheduled.name)
                continue
            schedule_runner = ScheduleRunner(scheduled, self.deliver, self._stop)
            self.schedules[scheduled.name] = schedule_runner
            self._spawn(f"{scheduled.name}-scheduler", schedule_runner.run)
        return self

    def fire_schedule(self, at: dt.datetime | None = None) -> str:
        """Fire the stack's (watch) schedule now, as if it were due at `at`: the test's clock."""
        (runner,) = self.schedules.values()
        return runner.fire(at)

    def reconcile(self, at: dt.datetime | None = None) -> Any:
        """Run the ledger's reconcile pass now, as if its schedule were due at `at`."""
        ledger = self.stack.ledger().name
        runner = next(r for r in self.rules.values() if r.rule.function.name == ledger)
        return runner.fire(at)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        if self._producer is not None:
            self._producer.close()
        self.invoke_server.stop()
        self._producer_tmp.cleanup()

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _env(self, function: FunctionInfo) -> dict[str, str]:
        # The CLI's log level (--verbose or not) wins over the template's LogLevel locally.
        levels = {k: os.environ[k] for k in _LOG_SETTINGS if k in os.environ}
        return self.stack.function_env(function) | levels | self._overrides

    def artifact(self, function: FunctionInfo) -> Artifact:
        """The function's artifact, staged once per runtime (and cached across runs)."""
        with self._lock:
            if function.logical_id not in self._artifacts:
                self._artifacts[function.logical_id] = stage(function.logical_id)
            return self._artifacts[function.logical_id]

    def start_environment(self, function: FunctionInfo, env: dict[str, str] | None = None) -> Environment:
        """A new execution environment for the function, its init done."""
        return Environment(function, self._env(function) if env is None else env, self.artifact(function))

    # ------------------------------------------------------------------ producer
    def upload_event(self, bucket: str, key: str) -> dict[str, Any]:
        """The S3 ObjectCreated:Put notification S3 would send for an object now in the bucket."""
        head = self.stack.endpoint.client("s3").head_object(Bucket=bucket, Key=key)
        return s3_object_created(bucket, key, head["ContentLength"], head["ETag"], self.stack.endpoint.region)

    def watch_uploads(self, interval_s: float = 0.5) -> None:
        """Stand in for the bucket's s3:ObjectCreated notification on input/, for files that
        arrive from other processes (`trawl up`): each new key or new ETag is one event."""
        self._spawn("s3-notifications", self._watch_uploads, interval_s)

    def _watch_uploads(self, interval_s: float) -> None:
        s3 = self.stack.endpoint.client("s3")
        seen: dict[str, str] = {}
        while not self._stop.wait(interval_s):
            try:
                for page in s3.get_paginator("list_objects_v2").paginate(
                    Bucket=self.stack.bucket, Prefix="input/"
                ):
                    for obj in page.get("Contents", []):
                        if seen.get(obj["Key"]) != obj["ETag"]:
                            seen[obj["Key"]] = obj["ETag"]
                            self.deliver(self.upload_event(self.stack.bucket, obj["Key"]))
            except Exception:
                self._log_failure("listing input/ failed; retrying", exc_info=True)

    def announce_finished_jobs(self, show: Callable[[dict[str, Any]], None]) -> None:
        """Show every `trawl` / `Job Finished` event as it is sent (for `trawl up`'s log): a rule
        on the default bus sends them to a queue of this runtime's, as a user's rule would send
        them to e-mail or Slack."""
        endpoint = self.stack.endpoint
        sqs, events = endpoint.client("sqs"), endpoint.client("events")
        url = sqs.create_queue(QueueName=f"{self.stack.name}-up-job-finished")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        rule = f"{self.stack.name}-up-job-finished"
        pattern = {
            "source": ["trawl"],
            "detail-type": ["Job Finished"],
            "detail": {"stack": [self.stack.name]},
        }
        events.put_rule(Name=rule, EventPattern=json.dumps(pattern))
        events.put_targets(Rule=rule, Targets=[{"Id": "trawl-up", "Arn": arn}])

        def watch() -> None:
            while not self._stop.is_set():
                try:
                    found = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
                except Exception:
                    self._log_failure("reading the finished jobs failed; reading on", exc_info=True)
                    self._stop.wait(1)
                    continue
                for message in found.get("Messages", []):
                    show(json.loads(message["Body"]).get("detail", {}))
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

        self._spawn("job-finished", watch)

    def deliver(self, event: dict[str, Any]) -> str:
        """An asynchronous invocation of the producer (an S3 event, or a continuation); its
        request id."""
        return self.producer_calls.submit(event)

    def producer_env(self) -> dict[str, str]:
        function = self.stack.producer()
        # Leases and Lambda's retry horizon scaled down with the retry delays.
        horizon = LOCAL_PRODUCER_LEASE_S + sum(self._retry_delays) + 10
        local = {
            "MAX_ROWS_PER_INVOCATION": str(LOCAL_ROWS_PER_INVOCATION),
            "LEASE_S": str(LOCAL_PRODUCER_LEASE_S),
            "RETRY_HORIZON_S": str(int(horizon)),
        }
        own = {"TMP_DIR": self._producer_tmp.name, "AWS_ENDPOINT_URL_LAMBDA": self.invoke_server.url}
        return self._env(function) | local | self._overrides | own | self.producer_env_overrides

    def producer_environment(self) -> Environment:
        """The producer's execution environment: started on first use, and replaced when its
        process has died, as on Lambda. Asynchronous invocations run one at a time here."""
        if self._producer is None or not self._producer.alive:
            if self._producer is not None:
                self._producer.close()
            self._producer = self.start_environment(self.stack.producer(), self.producer_env())
        return self._producer

    def _invoke_producer(self, invocation: Invocation) -> Any:
        for hook in self.on_producer_invocation:
            hook(invocation)
        return self.producer_environment().invoke(invocation.event, invocation.request_id)

    def crash_producer(self) -> None:
        """Chaos testing only: kill the producer's execution environment's process now, as a
        Lambda runtime dies mid-invocation. Its invocation fails, and is retried as Lambda
        retries it, in a new environment."""
        if self._producer is not None:
            self._producer.kill()

    def _pace(self, invocation: Invocation) -> None:
        if self._pacing and "trawl_continuation" in invocation.event:
            self._wait_for_low_water()

    def _wait_for_low_water(self) -> None:
        while (
            not self._stop.is_set() and sum(queue_depth(self.sqs, q) for q in self._work_queues) >= LOW_WATER
        ):
            time.sleep(PACE_S)

    # ------------------------------------------------------------------ workers
    def _poller(self, function: FunctionInfo, source: EventSource) -> None:
        container: Environment | None = None  # started on the first batch, kept warm after
        last_used = time.monotonic()

        def retire() -> None:
            nonlocal container
            if container is not None:
                container.close()
                container = None
                with self._lock:
                    self.warm_environments -= 1

        try:
            while not self._stop.is_set():
                messages = self._receive(source)
                if self._stop.is_set():
                    break  # stopping: what was just received returns after its visibility timeout
                if not messages:
                    if time.monotonic() - last_used > self._idle_s:
                        retire()  # as Lambda reclaims an environment nobody has used for a while
                    continue
                with self._lock:
                    self._busy += 1
                try:
                    if container is None or not container.alive:  # Lambda replaces a lost environment
                        retire()
                        container = self.start_environment(function)
                        with self._lock:
                            self.warm_environments += 1
                    self._invoke_worker(container, source, messages)
                except ContainerDied as lost:
                    # As on AWS: the batch waits out its visibility timeout; a new environment
                    # serves the next one.
                    self.progress.errors += 1
                    why = f"{lost}; its batch waits out the queue's visibility timeout"
                    self._log_failure(why, interrupted=lost.interrupted)
                    retire()
                except Exception:
                    self.progress.errors += 1
                    self._log_failure(
                        f"invoking {function.name} failed; its messages wait out their visibility timeout",
                        exc_info=True,
                    )
                finally:
                    last_used = time.monotonic()
                    with self._lock:
                        self._busy -= 1
        finally:
            retire()

    def _log_failure(self, message: str, exc_info: bool = False, interrupted: bool = False) -> None:
        """An invocation that failed. While the runtime stops (Ctrl-C), the embedded AWS and the
        environments go away under running invocations: what fails then is expected, not news.
        So is an environment the Ctrl-C itself reached, as its process was being started (it was
        still in the terminal's process group)."""
        level = logging.DEBUG if self._stop.is_set() or interrupted else logging.ERROR
        log.log(level, message, exc_info=exc_info)

    def _receive(self, source: EventSource) -> list[dict[str, Any]]:
        """A batch, as Lambda's pollers gather one: SQS returns at most 10 messages a receive, so
        receives go on until the batch is full or its batching window, counted from the first
        message, has passed (with no window, one receive is the batch)."""
        messages = self._receive_once(source, source.batch_size, 1)
        deadline = time.monotonic() + source.window_s
        while messages and len(messages) < source.batch_size and not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            wait = min(1, int(left)) if left >= 1 else 0
            messages += self._receive_once(source, source.batch_size - len(messages), wait)
            if wait == 0:
                self._stop.wait(min(left, 0.05))
        return messages

    def _receive_once(self, source: EventSource, wanted: int, wait_s: int) -> list[dict[str, Any]]:
        try:
            messages: list[dict[str, Any]] = self.sqs.receive_message(
                QueueUrl=source.queue_url,
                MaxNumberOfMessages=min(10, wanted),
                WaitTimeSeconds=wait_s,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
        except Exception:
            # Like Lambda's pollers, keep polling whatever one call did.
            self._log_failure(f"receiving from {source.queue_url} failed; polling on", exc_info=True)
            self._stop.wait(0.5)
            return []
        return messages

    def _invoke_worker(
        self, container: Environment, source: EventSource, messages: list[dict[str, Any]]
    ) -> None:
        event = sqs_event(messages, source.queue_arn, self.stack.endpoint.region)
        try:
            # Mid-batch: a batch of one could not show half of it handled, so it waits for one of two.
            if len(messages) > 1 and self._take_crash(source.queue_url):
                # The first half of the batch is handled (its records written), then the
                # environment's process is killed before the invocation returns.
                handled = max(1, len(messages) // 2)
                container.invoke({"Records": event["Records"][:handled]})
                container.kill()
                self.crashed.append(
                    CrashedBatch(source.queue_url, [m["ReceiptHandle"] for m in messages], handled)
                )
                raise ContainerDied(
                    f"{container.function.name}: killed (injected crash) after {handled} "
                    f"of {len(messages)} messages"
                )
            result = container.invoke(event) or {}
            if self._deliver_twice:
                container.invoke(event)  # the duplicate's own answer decides nothing
        except ContainerDied:
            raise
        except Exception:
            # As on AWS: the whole batch stays on the queue until its visibility timeout ends.
            self.progress.errors += 1
            self._log_failure("worker invocation failed", exc_info=True)
            return
        self.progress.invocations += 1
        failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        if failed and not source.report_batch_item_failures:
            return  # without ReportBatchItemFailures a failure keeps the whole batch
        done = [m for m in messages if m["MessageId"] not in failed]
        undeleted: set[str] = set()
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            response = self.sqs.delete_message_batch(
                QueueUrl=source.queue_url,
                Entries=[{"Id": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"]} for m in chunk],
            )
            # A message SQS would not delete comes back after its visibility timeout; say so.
            for failure in response.get("Failed", []):
                undeleted.add(failure["Id"])
                log.warning("could not delete %s: %s", failure["Id"], failure.get("Message", ""))
        for message in (m for m in done if m["MessageId"] not in undeleted):
            body = _body(message)
            counter = self.progress.continuations if body.get("page", 0) else self.progress.processed
            counter[body.get("job_id", "?")] += 1

    # ------------------------------------------------------------------ chaos hook
    def crash_next_worker_invocation(self, queue_url: str) -> None:
        """Chaos testing only: the next worker invocation on `queue_url` runs the first half of
        its batch through the handler (so those records are written), then its execution
        environment's process is killed before it returns, as when a Lambda runtime dies
        mid-batch. Nothing is deleted: the whole batch comes back after the queue's
        VisibilityTimeout and is processed again, overwriting the same objects, in a new
        environment. The batch is appended to `self.crashed`."""
        with self._lock:
            self._crash_next = _queue_name(queue_url)

    def _take_crash(self, queue_url: str) -> bool:
        with self._lock:
            if self._crash_next != _queue_name(queue_url):  # stack outputs and pollers spell URLs apart
                return False
            self._crash_next = None
            return True

    # ------------------------------------------------------------------ state
    def idle(self) -> bool:
        """Nothing queued for the producer, no invocation running, every work queue empty."""
        if self.producer_calls.busy or any(p.behind for p in self.stream_pollers):
            return False
        with self._lock:
            if self._busy:
                return False
        return all(queue_depth(self.sqs, q) == 0 for q in self._work_queues)


def _queue_name(queue_url: str) -> str:
    return queue_url.rstrip("/").rsplit("/", 1)[-1]


def _body(message: dict[str, Any]) -> dict[str, Any]:
    try:
        body = json.loads(message["Body"])
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
