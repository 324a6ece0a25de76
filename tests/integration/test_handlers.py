"""Each handler called directly with a real-shaped event from tests/events/, against the
embedded AWS stack built from template.yaml and the sandbox upstream."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench.common import LocalContext
from models import WorkItem
from producer import handler as producer_handler
from tests.conftest import load_event
from tests.helpers import NoContinuation, account_item, manifest, records, rejects, uploaded
from trawl.local.session import LocalSession
from workers import handler as worker_handler


def _env(local: LocalSession, function_name: str) -> dict[str, str]:
    return local.stack.function_env(local.stack.functions[function_name])


def test_producer_handler_fans_out_an_s3_event(local: LocalSession) -> None:
    key = "input/tiktok/account/handler test.csv"
    body = b"\xef\xbb\xbfhandle;segment\r\n@Alpha.One;a\r\nbeta_two;b\r\nALPHA.ONE;c\r\n!!;d\r\n"
    event = uploaded(local, key, body)
    assert event["Records"][0]["s3"]["object"]["key"] == "input/tiktok/account/handler+test.csv"
    function = local.stack.producer()
    deps = producer_handler.build_deps(_env(local, function.name), continuer=NoContinuation())

    result = producer_handler.handle(event, LocalContext(function), deps)

    [job] = result["jobs"]
    assert job["status"] == "enqueued"
    m = manifest(local, job["job_id"])
    assert (m.rows_read, m.enqueued, m.duplicates, m.rejected) == (4, 2, 1, 1)
    assert m.target_column == "handle"
    assert m.input.key == key
    [reject] = rejects(local, job["job_id"])
    assert reject["row"] == "5" and "invalid username '!!'" in reject["reason"]


def _send_and_receive(local: LocalSession, items: list[WorkItem]) -> list[dict[str, Any]]:
    sqs = local.stack.endpoint.client("sqs")
    url = local.stack.queue_url("tiktok")
    local.runtime.stop()  # the test plays the event source mapping itself
    for item in items:
        sqs.send_message(QueueUrl=url, MessageBody=item.model_dump_json())
    got: list[dict[str, Any]] = []
    while len(got) < len(items):
        got += sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get(
            "Messages", []
        )
    return got


def _item(job_id: str, username: str, row: int) -> WorkItem:
    return account_item(job_id, username, row, context={"crm": str(row)})


@pytest.mark.parametrize("fault", ["", "500=1.0"])
def test_worker_handler_writes_records_or_reports_failures(local: LocalSession, fault: str) -> None:
    from trawl.sandbox import Faults

    local.sandbox.set_faults(Faults.parse(fault))
    job_id = "00000000000000ff" if fault else "0000000000000000"
    messages = _send_and_receive(local, [_item(job_id, "handler.one", 2), _item(job_id, "ghost_handler", 3)])
    arn = local.stack.workers()[0].event_sources[0].queue_arn
    template = load_event(
        "sqs_tiktok_account.json", queue_arn=arn, message_id="m", receipt_handle="r", body='""'
    )
    record = template["Records"][0]
    event = {
        "Records": [
            record | {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"]}
            for m in messages
        ]
    }
    function = local.stack.functions[local.stack.outputs["TikTokWorkerFunctionName"]]
    deps = worker_handler.build_deps(_env(local, function.name) | {"RETRY_BASE_S": "1", "RETRY_MAX_S": "1"})
    try:
        result = worker_handler.handle(event, LocalContext(function), deps)
    finally:
        local.sandbox.set_faults(Faults.parse(""))

    out = records(local, job_id)
    if fault:
        assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == sorted(
            m["MessageId"] for m in messages
        )
        assert out == {}
    else:
        assert result == {"batchItemFailures": []}
        assert out["handler.one"]["status"] == "ok"
        assert out["handler.one"]["context"] == {"crm": "2"}
        assert out["ghost_handler"]["status"] == "not_found"
        assert json.loads(json.dumps(out["handler.one"]["data"]))["unique_id"] == "handler.one"
