"""The embedded AWS server process: moto's server on 127.0.0.1, with trawl's small,
version-pinned adjustments applied first (moto_clock.py and the ones below).
Run as `python -m trawl.local.motoserver PORT`.

It runs in its own process so moto's request handling does not share a GIL with the
handlers the local runtime invokes (the machine has two cores; one process would use one)."""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import sys
import threading
from typing import Any

import moto.sqs.models as sqs_models

from trawl.local.moto_clock import patch_moto_sqs_clock


def detach_moto_lambda_dispatch() -> None:
    """moto runs a queue's (and a DynamoDB stream's) event source mappings itself on every
    SendMessage (or table write), in Docker (absent here), then deletes the messages. In the
    local default trawl's LocalRuntime is the Lambda service, so queues and tables get a mapping
    table that forgets what is put in it. The mappings stay readable through moto's Lambda API,
    which is where the runtime reads them from."""
    from moto.dynamodb.models.table import Table

    def _get(self: Any) -> dict[str, Any]:
        return {}

    def _set(self: Any, value: Any) -> None:
        return None

    sqs_models.Queue.lambda_event_source_mappings = property(_get, _set)  # type: ignore[assignment]
    Table.lambda_event_source_mappings = property(_get, _set)  # type: ignore[assignment]


def serialise_dynamodb_writes() -> None:
    """moto 5.2.x checks a conditional write's condition, then writes, with nothing in between
    stopping another request's write: two workers settling one item at once could both see it
    open and both write (and both stream records would be counted). DynamoDB applies a
    conditional write atomically; here every write takes one lock, which is cheap at the local
    runtime's few concurrent writers."""
    from moto.dynamodb.models import DynamoDBBackend

    if getattr(DynamoDBBackend.update_item, "trawl_serialised", False):
        return
    lock = threading.RLock()
    for name in ("put_item", "update_item", "delete_item", "transact_write_items"):
        original = getattr(DynamoDBBackend, name)

        def locked(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return _original(self, *args, **kwargs)

        locked.trawl_serialised = True  # type: ignore[attr-defined]
        setattr(DynamoDBBackend, name, locked)


def serialise_queue_changes() -> None:
    """moto 5.2.x rebuilds a queue's message list in delete_message without the queue's lock that
    send (add_message) holds, and moves messages to the DLQ during receive without it either. Under
    the local runtime's concurrency (the producer sending while workers delete) a send can be
    undone or a delete lost: a message vanishes, or comes back after its visibility timeout
    (6 minutes). Delete and receive now take the queue's own (re-entrant) lock; a long-polling
    receive still releases it while it waits."""
    queue_cls = sqs_models.Queue
    backend_cls = sqs_models.SQSBackend
    if getattr(queue_cls.delete_message, "trawl_serialised", False):
        return
    delete, receive = queue_cls.delete_message, backend_cls.receive_message

    def delete_message(self: Any, receipt_handle: str) -> None:
        with self._messages_lock:
            delete(self, receipt_handle)

    def receive_message(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        with self.get_queue(queue_name)._messages_lock:
            return receive(self, queue_name, *args, **kwargs)

    delete_message.trawl_serialised = True  # type: ignore[attr-defined]
    queue_cls.delete_message = delete_message  # type: ignore[method-assign]
    backend_cls.receive_message = receive_message  # type: ignore[method-assign]


def memoise_backend_routing() -> None:
    """moto's server finds the backend for every request by listing its own package directory
    (about 200 stat calls) and then trying each service's URL patterns in turn, under one global
    lock. The answer depends only on the host name, so it is computed once per host."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    find = DomainDispatcherApplication.get_backend_for_host
    if getattr(find, "trawl_memoised", False):
        return
    known: dict[str | None, Any] = {}

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        if host not in known:
            known[host] = find(self, host)
        return known[host]

    get_backend_for_host.trawl_memoised = True  # type: ignore[attr-defined]
    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign]


_COUNTS = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesDelayed",
    "ApproximateNumberOfMessagesNotVisible",
)


def build_queue_attributes_once() -> None:
    """moto 5.2.x rebuilds all of a queue's attributes, three scans of every message for the
    approximate counts, each time code reads one of them: send_message reads
    ContentBasedDeduplication once per message sent, and GetQueueAttributes for n names builds
    them 2n + 1 times. A queue of a few thousand messages made every send cost milliseconds.
    Within one send or one GetQueueAttributes call they are now built once; a send, which never
    reads the counts, builds them without."""
    queue_cls, backend_cls = sqs_models.Queue, sqs_models.SQSBackend
    if getattr(queue_cls.__dict__["attributes"].fget, "trawl_once", False):
        return
    build: Any = queue_cls.__dict__["attributes"].fget
    send, send_batch, read = (
        backend_cls.send_message,
        backend_cls.send_message_batch,
        backend_cls.get_queue_attributes,
    )
    scope = threading.local()

    def without_counts(queue: Any) -> dict[str, Any]:
        # moto's own property, with the three count names left out of its list for this build
        kept = [name for name in queue_cls.BASE_ATTRIBUTES if name not in _COUNTS]
        view = _Shadow(queue, BASE_ATTRIBUTES=kept)
        built: dict[str, Any] = build(view)
        return built

    def attributes(self: Any) -> dict[str, Any]:
        memo = getattr(scope, "memo", None)
        if memo is None:
            return build(self)
        if id(self) not in memo:
            memo[id(self)] = without_counts(self) if scope.sending else build(self)
        found: dict[str, Any] = memo[id(self)]
        return found

    def within(method: Any, sending: bool) -> Any:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            if getattr(scope, "memo", None) is not None:
                return method(self, *args, **kwargs)  # nested (send_message_batch -> send_message)
            scope.memo, scope.sending = {}, sending
            try:
                return method(self, *args, **kwargs)
            finally:
                scope.memo = None

        return call

    prop = property(attributes)
    prop.fget.trawl_once = True  # type: ignore[union-attr]
    queue_cls.attributes = prop  # type: ignore[assignment,method-assign]
    backend_cls.send_message = within(send, sending=True)  # type: ignore[method-assign]
    backend_cls.send_message_batch = within(send_batch, sending=True)  # type: ignore[method-assign]
    backend_cls.get_queue_attributes = within(read, sending=False)  # type: ignore[method-assign]


class _Shadow:
    """An object of moto's seen with a few attributes overridden (for one call)."""

    def __init__(self, queue: Any, **overrides: Any) -> None:
        self._queue = queue
        self._overrides = overrides

    def __getattr__(self, name: str) -> Any:
        if name in self._overrides:
            return self._overrides[name]
        return getattr(self._queue, name)


def keep_schedules_out_of_event_matching() -> None:
    """moto 5.2.x offers every PutEvents event to every rule of the bus, and a schedule rule (a
    ScheduleExpression, no EventPattern) matches them all; it then fails the whole PutEvents on
    the rule's Lambda target, which it cannot run. On EventBridge a schedule rule never matches
    an event: here neither (trawl's local stand-in fires schedules itself)."""
    from moto.events.models import Rule

    send = Rule.send_to_targets
    if getattr(send, "trawl_schedules_apart", False):
        return

    def send_to_targets(self: Any, *args: Any, **kwargs: Any) -> None:
        if self.scheduled_expression and not self.event_pattern.get_pattern():
            return
        send(self, *args, **kwargs)

    send_to_targets.trawl_schedules_apart = True  # type: ignore[attr-defined]
    Rule.send_to_targets = send_to_targets  # type: ignore[method-assign]


def query_one_partition() -> None:
    """moto 5.2.x answers a Query on a table's own key by sorting every item of the table, then
    keeping the partition asked for. The ledger reads a job's partition (its row and counts, a
    dozen rows) on every `trawl status` and every batch of stream changes, so each of them got
    slower with every job the stack had run. DynamoDB reads only the partition; here a Query on
    the table's own key looks only at it too. Queries of an index are left as they are."""
    from moto.dynamodb.models.table import Table

    query = Table.query
    if getattr(query, "trawl_one_partition", False):
        return
    signature = inspect.signature(query)

    def one_partition(self: Any, *args: Any, **kwargs: Any) -> Any:
        asked = signature.bind(self, *args, **kwargs).arguments
        hash_key = asked.get("hash_key")
        if asked.get("index_name") or hash_key is None or not self.range_key_attr:
            return query(self, *args, **kwargs)
        rows = self.items.get(hash_key, {})
        partition: Any = _Shadow(self, all_items=lambda: list(rows.values()))
        return query(partition, *args, **kwargs)

    one_partition.trawl_one_partition = True  # type: ignore[attr-defined]
    Table.query = one_partition  # type: ignore[method-assign]


def _exit_with_parent() -> None:
    """The parent holds this process's stdin open; when it ends, even killed, stdin reaches EOF
    and the server goes too, instead of lingering on its port."""

    def watch() -> None:
        sys.stdin.buffer.read()
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("port", type=int)
    args = parser.parse_args()
    patch_moto_sqs_clock()
    detach_moto_lambda_dispatch()
    serialise_queue_changes()
    memoise_backend_routing()
    build_queue_attributes_once()
    serialise_dynamodb_writes()
    keep_schedules_out_of_event_matching()
    query_one_partition()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    _exit_with_parent()
    # The parent reads this one line to learn the port (args.port 0: the OS picks a free one).
    print(f"listening {server.get_host_and_port()[1]}", flush=True)
    sys.stdout = sys.stderr
    server._thread.join()  # type: ignore[union-attr]


if __name__ == "__main__":
    main()
