"""The local stand-in for a DynamoDB stream event source mapping (the ledger function's): reads
the stream from its start, hands the function batches of records shaped as Lambda delivers
them, and, as Lambda does, retries a failed batch from its first record until it succeeds, so
no record is skipped or handed over out of order."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from trawl.local.environment import ContainerDied, Environment
from trawl.local.events import dynamodb_stream_event
from trawl.stack.describe import FunctionInfo, Stack, StreamSource

log = logging.getLogger(__name__)

POLL_S = 0.2  # how often an idle stream is read again
RETRY_S = 0.5  # a failed batch is retried after this


class StreamPoller:
    def __init__(
        self,
        stack: Stack,
        function: FunctionInfo,
        source: StreamSource,
        start: Callable[[FunctionInfo], Environment],
        stop: threading.Event,
    ) -> None:
        self._stack = stack
        self._function = function
        self._source = source
        self._start = start
        self._stop = stop
        self._container: Environment | None = None
        self.batches = 0
        self.behind = 0  # records read but not yet handled

    def run(self) -> None:
        streams = self._stack.endpoint.client("dynamodbstreams")
        try:
            iterator = self._first_iterator(streams)
            while not self._stop.is_set():
                try:
                    response = streams.get_records(ShardIterator=iterator, Limit=self._source.batch_size)
                except Exception:
                    if not self._stop.is_set():
                        log.error("reading the ledger stream failed; reading on", exc_info=True)
                    self._stop.wait(RETRY_S)
                    continue
                records = response.get("Records", [])
                if records:
                    self.behind = len(records)
                    self._deliver(records)
                    self.behind = 0
                iterator = response.get("NextShardIterator") or iterator
                if not records:
                    self._stop.wait(POLL_S)
        finally:
            if self._container is not None:
                self._container.close()

    def _first_iterator(self, streams: Any) -> str:
        shard = streams.describe_stream(StreamArn=self._source.stream_arn)["StreamDescription"]["Shards"][0]
        found: str = streams.get_shard_iterator(
            StreamArn=self._source.stream_arn,
            ShardId=shard["ShardId"],
            ShardIteratorType=self._source.starting_position,
        )["ShardIterator"]
        return found

    def _deliver(self, records: list[dict[str, Any]]) -> None:
        event = dynamodb_stream_event(records, self._source.stream_arn, self._stack.endpoint.region)
        while not self._stop.is_set():
            try:
                if self._container is None or not self._container.alive:
                    self._container = self._start(self._function)
                self._container.invoke(event)
                self.batches += 1
                return
            except ContainerDied as lost:
                level = logging.DEBUG if self._stop.is_set() else logging.ERROR
                log.log(level, "%s; the batch is retried", lost)
                self._container = None
            except Exception:
                level = logging.DEBUG if self._stop.is_set() else logging.ERROR
                log.log(
                    level,
                    "%s failed on a batch of the stream; it is retried",
                    self._function.name,
                    exc_info=True,
                )
            self._stop.wait(RETRY_S)
