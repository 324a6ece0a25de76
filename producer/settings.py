"""Producer settings: one pydantic model, read once per container from the environment."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, Field


class ProducerSettings(BaseModel):
    data_bucket: str
    queue_urls: dict[str, str]  # platform -> work queue URL
    send_threads: int = Field(default=8, ge=1, le=64)
    # Stop reading rows this long before the invocation's deadline, then checkpoint and continue.
    safety_margin_ms: int = Field(default=60_000, ge=0)
    # 0 = no cap. The local runtime sets a cap to pace continuations (keeps its queue shallow).
    max_rows_per_invocation: int = Field(default=0, ge=0)
    tmp_dir: str = "/tmp"
    ledger_table: str | None = None  # the job ledger, where the job's row mirrors its manifest
    # The job's lease: renewed every lease_s / 3 while an invocation works, so one that finds
    # it older than lease_s knows its holder is gone and resumes from the last checkpoint.
    lease_s: float = Field(default=60.0, gt=0)
    # A checkpoint (dedupe file, rejects, offset) at least this often, so a crash loses little.
    checkpoint_every_s: float = Field(default=120.0, gt=0)
    # The function's EventInvokeConfig MaximumRetryAttempts: the attempt after the last retry
    # that fails marks the job failed (its event then waits in the failure queue).
    max_retry_attempts: int = Field(default=2, ge=0, le=2)
    # How long Lambda may still retry after an invocation died (its delays, 1 and 2 minutes, and slack).
    retry_horizon_s: int = Field(default=600, ge=0)
    # The watch schedule's timezone: a firing's date is its scheduled time there.
    watch_timezone: str = "UTC"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ProducerSettings:
        prefix = "QUEUE_URL_"
        return cls(
            data_bucket=env["DATA_BUCKET"],
            queue_urls={k[len(prefix) :].lower(): v for k, v in env.items() if k.startswith(prefix)},
            send_threads=int(env.get("SEND_THREADS", "8")),
            safety_margin_ms=int(env.get("SAFETY_MARGIN_MS", "60000")),
            max_rows_per_invocation=int(env.get("MAX_ROWS_PER_INVOCATION", "0")),
            tmp_dir=env.get("TMP_DIR", "/tmp"),
            ledger_table=env.get("LEDGER_TABLE") or None,
            lease_s=float(env.get("LEASE_S", "60")),
            checkpoint_every_s=float(env.get("CHECKPOINT_EVERY_S", "120")),
            max_retry_attempts=int(env.get("MAX_RETRY_ATTEMPTS", "2")),
            retry_horizon_s=int(env.get("RETRY_HORIZON_S", "600")),
            watch_timezone=env.get("WATCH_TIMEZONE", "UTC"),
        )
