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
        )
