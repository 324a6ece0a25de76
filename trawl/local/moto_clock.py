"""A one-line speed fix for moto's embedded SQS, pinned to the moto versions it was checked on.

moto 5.2.x computes "now" for every message on every SQS call through
moto.core.utils.unix_time_millis(), which builds two naive datetimes and subtracts them.
Receive/delete scan every message in the queue, so that cost is paid per message per call and a
queue a few thousand deep crawls. time.time() gives the same value (milliseconds since the epoch)
for a fraction of it. Only the no-argument form is replaced; calls with a datetime go to moto's
own function."""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger(__name__)
CHECKED_MOTO = ("5.1.", "5.2.")


def patch_moto_sqs_clock() -> bool:
    """True when the patch is in place (also when already applied)."""
    import moto
    import moto.sqs.models as sqs_models

    if getattr(sqs_models.unix_time_millis, "trawl_patched", False):
        return True
    if not moto.__version__.startswith(CHECKED_MOTO):
        log.warning(
            "moto %s is not a version trawl's SQS clock patch was checked on; not patching", moto.__version__
        )
        return False
    original = sqs_models.unix_time_millis

    def unix_time_millis(dt: Any = None) -> float:
        return time.time() * 1000.0 if dt is None else original(dt)

    unix_time_millis.trawl_patched = True  # type: ignore[attr-defined]
    sqs_models.unix_time_millis = unix_time_millis
    return True
