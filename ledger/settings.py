"""The ledger function's settings: one pydantic model, read once per container."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, Field


class LedgerSettings(BaseModel):
    table: str
    stack_name: str = "trawl"
    dead_letter_queues: dict[str, str] = Field(default_factory=dict)  # platform -> DLQ URL
    work_queues: dict[str, str] = Field(default_factory=dict)  # platform -> work queue URL
    data_bucket: str | None = None
    ttl_days: int = Field(default=30, ge=1)
    # Jobs the reconcile pass looks at: those created within this many days.
    reconcile_days: int = Field(default=15, ge=1)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LedgerSettings:
        def by_platform(prefix: str) -> dict[str, str]:
            return {k[len(prefix) :].lower(): v for k, v in env.items() if k.startswith(prefix)}

        return cls(
            table=env["LEDGER_TABLE"],
            stack_name=env.get("STACK_NAME", "trawl"),
            dead_letter_queues=by_platform("DLQ_URL_"),
            work_queues=by_platform("QUEUE_URL_"),
            data_bucket=env.get("DATA_BUCKET") or None,
            ttl_days=int(env.get("LEDGER_TTL_DAYS", "30")),
        )
