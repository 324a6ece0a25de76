"""Worker Lambda (one function per platform, same code, PLATFORM in its environment):
SQS batch -> process_batch -> {"batchItemFailures": [...]}.

Why not Powertools' AsyncBatchProcessor: outside Lambda it runs each batch under
asyncio.run, which closes the loop and with it the container's shared httpx connection pool.
trawl keeps one event loop per container, as the Lambda runtime does, and builds the
partial batch response itself (workers/batch.py)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger

from models.runtime import client_factory
from workers.batch import BatchDeps, process_batch
from workers.fetchers import Fetcher, ProductFetcher, TikTokAccountFetcher, TikTokVideosFetcher
from workers.ledger import Ledger
from workers.output import RecordWriter
from workers.ratelimit import RateLimiter
from workers.secrets import ApiKey
from workers.settings import WorkerSettings
from workers.upstream.http import make_client
from workers.upstream.tiktok import TikApi
from workers.upstream.zyte import ZyteApi

logger = Logger(service="trawl")


@dataclass
class WorkerDeps:
    batch: BatchDeps
    loop: asyncio.AbstractEventLoop


def _tiktok_fetchers(settings: WorkerSettings, http: Any, ssm: Any, secrets: Any) -> dict[str, Fetcher]:
    key = ApiKey(ssm, secrets, settings.tikapi_key_parameter, settings.tikapi_key_secret)
    api = TikApi(http, settings.tikapi_base_url, key)
    return {
        "account": TikTokAccountFetcher(api),
        "videos": TikTokVideosFetcher(api, settings.max_pages_per_message, settings.max_videos_per_account),
    }


def _product_fetchers(settings: WorkerSettings, http: Any, ssm: Any, secrets: Any) -> dict[str, Fetcher]:
    key = ApiKey(ssm, secrets, settings.zyte_key_parameter, settings.zyte_key_secret)
    return {"product": ProductFetcher(ZyteApi(http, settings.zyte_api_url, key), settings.platform)}


FETCHERS_BY_PLATFORM = {
    "tiktok": _tiktok_fetchers,
    "tokopedia": _product_fetchers,
    "shopee": _product_fetchers,
    "lazada": _product_fetchers,
}


def build_deps(env: Mapping[str, str]) -> WorkerDeps:
    settings = WorkerSettings.from_env(env)
    client = client_factory(env)
    make_fetchers = FETCHERS_BY_PLATFORM.get(settings.platform)
    if make_fetchers is None:
        raise ValueError(
            f"no worker for platform '{settings.platform}'; known: {', '.join(FETCHERS_BY_PLATFORM)}"
        )
    http = make_client(settings.connect_timeout_s, settings.read_timeout_s, settings.fetch_concurrency)
    fetchers = make_fetchers(settings, http, client("ssm"), client("secretsmanager"))
    ledger = limiter = None
    if settings.ledger_table:
        ledger = Ledger(client("dynamodb"), settings.ledger_table, settings.ledger_ttl_days)
        if settings.rate_limit_rpm and settings.rate_limit_key:
            limiter = RateLimiter(
                client("dynamodb"),
                settings.ledger_table,
                settings.rate_limit_key,
                settings.rate_limit_rpm,
                settings.platform,
            )
    batch = BatchDeps(
        settings=settings,
        fetchers=fetchers,
        writer=RecordWriter(client("s3"), settings.data_bucket, settings.output_format),
        sqs=client("sqs"),
        ledger=ledger,
        limiter=limiter,
    )
    return WorkerDeps(batch=batch, loop=asyncio.new_event_loop())


def handle(event: dict[str, Any], context: Any, deps: WorkerDeps) -> dict[str, Any]:
    result: dict[str, Any] = deps.loop.run_until_complete(
        process_batch(event, context.get_remaining_time_in_millis, deps.batch)
    )
    return result


@lru_cache(maxsize=1)
def _deps() -> WorkerDeps:
    return build_deps(os.environ)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(event, context, _deps())
