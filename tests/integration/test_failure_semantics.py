"""The worker's failure semantics, one invocation at a time against the embedded stack and the
sandbox: partial batch responses, redelivery, the invocation's deadline, bad credentials."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from bench.common import LocalContext
from tests.helpers import account_item, invoke_worker, receive_batch, records
from trawl.local.create import SANDBOX_KEYS
from trawl.local.session import LocalSession, local_session
from trawl.sandbox import Faults
from workers import handler as worker_handler

RETRYABLE = {"429", "500", "502", "503", "520", "timeout", "reset"}


@pytest.fixture(scope="module")
def local() -> Iterator[LocalSession]:
    with local_session() as session:
        session.runtime.stop()  # these tests play the event source mapping themselves
        yield session


def _batch(local: LocalSession, job_id: str, names: list[str]) -> dict[str, Any]:
    """Send one message per name and receive them as Lambda would deliver them."""
    return receive_batch(local, [account_item(job_id, name, row) for row, name in enumerate(names, start=2)])


def _invoke(local: LocalSession, event: dict[str, Any], **env: str) -> tuple[dict[str, Any], Any]:
    return invoke_worker(local, "tiktok", event, None, **env)


def test_half_failed_batch_reports_only_the_failed_ids(local: LocalSession) -> None:
    faults = Faults.parse("500=0.5", seed=11)
    local.sandbox.set_faults(faults)
    names = [f"half_{n}" for n in range(10)]
    # An item fails when both tries of the invocation (the sandbox's attempts 0 and 1) get a 500.
    failing = {
        n
        for n in names
        if all(faults.decide("GET", "/public/check", n, attempt) in RETRYABLE for attempt in (0, 1))
    }
    assert 0 < len(failing) < len(names)
    event = _batch(local, "00000000000000a1", names)
    ids = {json.loads(r["body"])["item_key"]: r["messageId"] for r in event["Records"]}

    result, _ = _invoke(local, event)

    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == sorted(ids[n] for n in failing)
    first = records(local, "00000000000000a1")
    assert set(first) == set(names) - failing

    # Redelivered (here: all of it, as after a crash) with the upstream healthy again.
    local.sandbox.set_faults(Faults.parse(""))
    result, _ = _invoke(local, _batch(local, "00000000000000a1", names))
    assert result == {"batchItemFailures": []}
    second = records(local, "00000000000000a1")
    assert set(second) == set(names)
    for name in set(names) - failing:
        assert second[name]["_key"] == first[name]["_key"]
        assert second[name]["data"] == first[name]["data"]


def test_no_call_starts_near_the_deadline(local: LocalSession) -> None:
    local.sandbox.set_faults(Faults.parse(""))
    event = _batch(local, "00000000000000a2", ["late_one", "late_two"])
    before = local.sandbox.stats["requests"]
    # 2.5 s left and a 3 s margin: every item must be handed back, nothing fetched.
    function = local.stack.functions[local.stack.outputs["TikTokWorkerFunctionName"]]
    deps = worker_handler.build_deps(local.stack.function_env(function))

    class _NearlyOut(LocalContext):
        def get_remaining_time_in_millis(self) -> int:
            return 2_500

    result = worker_handler.handle(event, _NearlyOut(function), deps)
    assert len(result["batchItemFailures"]) == 2
    assert local.sandbox.stats["requests"] == before
    assert records(local, "00000000000000a2") == {}


def test_bad_credentials_are_retryable_and_logged_once_without_the_key(
    local: LocalSession, caplog: pytest.LogCaptureFixture
) -> None:
    local.sandbox.set_faults(Faults.parse(""))
    ssm = local.stack.endpoint.client("ssm")
    ssm.put_parameter(
        Name="/trawl/wrong-key", Value="WrongKeyValue12345", Type="SecureString", Overwrite=True
    )
    event = _batch(local, "00000000000000a3", ["cred_a", "cred_b", "cred_c"])

    result, _ = _invoke(local, event, TIKAPI_KEY_PARAMETER="/trawl/wrong-key", POWERTOOLS_LOG_LEVEL="INFO")

    assert len(result["batchItemFailures"]) == 3
    assert records(local, "00000000000000a3") == {}
    loud = [r for r in caplog.records if r.getMessage().startswith("upstream rejected the API key")]
    assert len(loud) == 1 and loud[0].levelname == "ERROR"
    everything = caplog.text + " ".join(str(vars(r)) for r in caplog.records)
    assert "WrongKeyValue12345" not in everything


def test_a_missing_key_parameter_fails_every_item_retryably(local: LocalSession) -> None:
    event = _batch(local, "00000000000000a4", ["nokey_a"])
    result, _ = _invoke(local, event, TIKAPI_KEY_PARAMETER="/trawl/does-not-exist")
    assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == [event["Records"][0]["messageId"]]


def test_a_failed_s3_write_hands_back_only_that_item(local: LocalSession) -> None:
    local.sandbox.set_faults(Faults.parse(""))
    names = [f"store_{n}" for n in range(6)]
    unreachable = {"store_1", "store_4"}
    event = _batch(local, "00000000000000a5", names)
    ids = {json.loads(r["body"])["item_key"]: r["messageId"] for r in event["Records"]}
    function = local.stack.functions[local.stack.outputs["TikTokWorkerFunctionName"]]
    deps = worker_handler.build_deps(local.stack.function_env(function) | {"RETRY_BASE_S": "1"})

    def s3_unreachable(request: Any, **_: Any) -> None:
        if any(f"-{name}.json" in request.url for name in unreachable):
            raise EndpointConnectionError(endpoint_url=request.url)

    # Fault injection at the worker's own S3 client: the connection fails for two records.
    deps.batch.writer._s3.meta.events.register_first("before-send.s3.PutObject", s3_unreachable)
    result = worker_handler.handle(event, LocalContext(function), deps)

    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == sorted(
        ids[n] for n in unreachable
    )
    assert set(records(local, "00000000000000a5")) == set(names) - unreachable

    deps.batch.writer._s3.meta.events.unregister("before-send.s3.PutObject", s3_unreachable)
    result = worker_handler.handle(
        _batch(local, "00000000000000a5", sorted(unreachable)), LocalContext(function), deps
    )
    assert result == {"batchItemFailures": []}
    assert set(records(local, "00000000000000a5")) == set(names)


def test_the_key_can_come_from_secrets_manager(local: LocalSession) -> None:
    """TikApiKeySecretArn set: the function has TIKAPI_KEY_SECRET and no TIKAPI_KEY_PARAMETER."""
    local.sandbox.set_faults(Faults.parse(""))
    secrets = local.stack.endpoint.client("secretsmanager")
    right = secrets.create_secret(Name="trawl/tikapi-key", SecretString=SANDBOX_KEYS["tikapi"])["ARN"]
    wrong = secrets.create_secret(Name="trawl/old-tikapi-key", SecretString="RevokedKey0000")["ARN"]

    event = _batch(local, "00000000000000a6", ["secret_a", "secret_b"])
    result, _ = _invoke(local, event, TIKAPI_KEY_PARAMETER="", TIKAPI_KEY_SECRET=wrong)
    assert len(result["batchItemFailures"]) == 2  # the sandbox refuses the key: the secret was read

    result, _ = _invoke(
        local,
        _batch(local, "00000000000000a6", ["secret_a", "secret_b"]),
        TIKAPI_KEY_PARAMETER="",
        TIKAPI_KEY_SECRET=right,
    )
    assert result == {"batchItemFailures": []}
    assert set(records(local, "00000000000000a6")) == {"secret_a", "secret_b"}
