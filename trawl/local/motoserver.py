"""The embedded AWS server process: moto's server on 127.0.0.1, with trawl's four small,
version-pinned adjustments applied first (moto_clock.py and the three below).
Run as `python -m trawl.local.motoserver PORT`.

It runs in its own process so moto's request handling does not share a GIL with the
handlers the local runtime invokes (the machine has two cores; one process would use one)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from typing import Any

import moto.sqs.models as sqs_models

from trawl.local.moto_clock import patch_moto_sqs_clock


def detach_moto_lambda_dispatch() -> None:
    """moto runs a queue's event source mappings itself on every SendMessage, in Docker (absent
    here), then deletes the messages. In the local default trawl's LocalRuntime is the Lambda
    service, so queues get a mapping table that forgets what is put in it. The mappings stay
    readable through moto's Lambda API, which is where the runtime reads them from."""

    def _get(self: Any) -> dict[str, Any]:
        return {}

    def _set(self: Any, value: Any) -> None:
        return None

    sqs_models.Queue.lambda_event_source_mappings = property(_get, _set)  # type: ignore[assignment]


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
