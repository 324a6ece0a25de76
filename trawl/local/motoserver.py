"""The embedded AWS server process: moto's server on 127.0.0.1, with trawl's two small,
version-pinned adjustments applied first. Run as `python -m trawl.local.motoserver PORT`.

It runs in its own process so moto's request handling does not share a GIL with the
handlers the local runtime invokes (the machine has two cores; one process would use one)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from trawl.local.moto_clock import patch_moto_sqs_clock


def detach_moto_lambda_dispatch() -> None:
    """moto runs a queue's event source mappings itself on every SendMessage, in Docker (absent
    here), then deletes the messages. In the local default trawl's LocalRuntime is the Lambda
    service, so queues get a mapping table that forgets what is put in it. The mappings stay
    readable through moto's Lambda API, which is where the runtime reads them from."""
    import moto.sqs.models as sqs_models

    def _get(self: Any) -> dict[str, Any]:
        return {}

    def _set(self: Any, value: Any) -> None:
        return None

    sqs_models.Queue.lambda_event_source_mappings = property(_get, _set)  # type: ignore[assignment]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("port", type=int)
    args = parser.parse_args()
    patch_moto_sqs_clock()
    detach_moto_lambda_dispatch()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    try:
        server._thread.join()  # type: ignore[union-attr]
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
