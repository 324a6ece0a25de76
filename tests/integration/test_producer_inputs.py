"""The producer handler against every input shape the contract promises an answer for: each
case is uploaded to the embedded S3, its real-shaped S3 event goes to producer.handler.handle,
and the test reads what a user would see (manifest, rejects.csv, the WorkItems on the queue).
The module plays the Lambda event loop itself, so it stops the local runtime's pollers."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from bench.common import LocalContext
from models import JobManifest, WorkItem
from producer import handler as producer_handler
from producer.fanout import EnqueueFailed
from tests.helpers import NoContinuation, manifest, rejects, uploaded
from trawl.local.session import LocalSession
from trawl.stack.submit import job_id_of


class ProducerDriver:
    """Uploads a CSV, calls the producer handler with its S3 event, drains the work queue."""

    def __init__(self, local: LocalSession) -> None:
        self.local = local
        self.bucket = local.stack.bucket
        self.s3 = local.stack.endpoint.client("s3")
        self.sqs = local.stack.endpoint.client("sqs")
        self.function = local.stack.producer()

    def env(self, **overrides: str) -> dict[str, str]:
        return self.local.stack.function_env(self.function) | overrides

    def upload(self, key: str, body: bytes) -> dict[str, Any]:
        """Put the object; the S3 ObjectCreated event for it."""
        return uploaded(self.local, key, body)

    def handle(self, event: dict[str, Any], context: Any = None, continuer: Any = None, **env: str) -> Any:
        deps = producer_handler.build_deps(self.env(**env), continuer=continuer or NoContinuation())
        return producer_handler.handle(event, context or LocalContext(self.function), deps)

    def manifest(self, key: str) -> JobManifest:
        return manifest(self.local, job_id_of(self.local.stack, key))

    def drain(self, platform: str) -> list[WorkItem]:
        """Every message on the platform's work queue, deleted as read."""
        url = self.local.stack.queue_url(platform)
        items: list[WorkItem] = []
        while messages := self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            items += [WorkItem.model_validate_json(m["Body"]) for m in messages]
            self.sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
        return items


@pytest.fixture(scope="module")
def driver(local: LocalSession) -> Iterator[ProducerDriver]:
    local.runtime.stop()  # this module reads the work queues itself
    yield ProducerDriver(local)


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    body: bytes
    platform: str = "tiktok"
    kind: str = "account"
    key: str | None = None  # default input/<platform>/<kind>/<name>.csv
    status: str = "enqueued"
    message: str | None = None  # part of the manifest's message
    enqueued: dict[int, str] = dataclasses.field(default_factory=dict)  # row -> target
    context: dict[int, dict[str, str]] = dataclasses.field(default_factory=dict)  # row -> context
    rejects: dict[int, str] = dataclasses.field(default_factory=dict)  # row -> part of the reason
    duplicates: int = 0


FAILED_FILES = [
    Case("empty", b"", status="failed", message="file is empty: expected a header row"),
    Case("blank-bom", b"\xef\xbb\xbf\r\n", status="failed", message="file is empty"),
    Case(
        "header-only", b"username,crm\r\n", status="failed", message="header (username, crm) but no data rows"
    ),
    Case(
        "no-usable-column",
        b"Name;E-mail;Phone\nalice;a@example.com;1\n",
        status="failed",
        message="no usable column: expected one of username, handle, account, unique_id, profile_url, url"
        " (case, spaces, '-' and '_' ignored); headers found: 'Name', 'E-mail', 'Phone'",
    ),
    Case("header-not-utf8", b"Us\xe9rname\nalice\n", status="failed", message="header row is not UTF-8"),
    Case(
        "excel-unicode-text",
        "username\talice\r\n".encode("utf-16"),
        status="failed",
        message="file is UTF-16 (as Excel's 'Unicode Text' saves it); save it as 'CSV UTF-8",
    ),
    Case(
        "unknown-platform",
        b"username\nalice\n",
        key="input/facebook/account/x.csv",
        status="failed",
        message="'facebook/account' (from key 'input/facebook/account/x.csv') is not a platform/kind trawl"
        " knows: lazada/product, shopee/product, tiktok/account, tiktok/videos, tokopedia/product",
    ),
    Case(
        "unknown-kind",
        b"url\nhttps://www.tiktok.com/@alice\n",
        key="input/tiktok/product/x.csv",
        status="failed",
        message="'tiktok/product' (from key 'input/tiktok/product/x.csv') is not a platform/kind",
    ),
    Case(
        "no-platform-in-key",
        b"username\nalice\n",
        key="input/x.csv",
        status="failed",
        message="input key 'input/x.csv' must look like input/<platform>/<kind>/<name>.csv",
    ),
]

ROW_CASES = [
    Case(
        "bom-crlf-semicolon",
        b"\xef\xbb\xbfHandle ; Segment\r\n@Alpha.One;a\r\nbeta_two;b\r\n",
        enqueued={2: "alpha.one", 3: "beta_two"},
        context={2: {"Segment": "a"}, 3: {"Segment": "b"}},
    ),
    Case(
        "mac-cr-line-endings",
        b"Username,Team\rmac_one,a\rmac_two,b\r",
        enqueued={2: "mac_one", 3: "mac_two"},
    ),
    Case(
        "blank-lines-above-header",
        b"\r\n,,\r\nusername,team\r\nabove_one,a\r\n,\r\nabove_two,b\r\n",
        enqueued={4: "above_one", 6: "above_two"},
        rejects={5: "blank"},
    ),
    Case(
        "tab-delimited",
        b"crm_id\tUnique-ID\n7\tcarol\n8\t dave \n",
        enqueued={2: "carol", 3: "dave"},
        context={2: {"crm_id": "7"}},
    ),
    Case(
        "quoted-commas-newlines",
        b'username,note\nalice,"Jakarta, ID"\nbob,"two\nlines, ""quoted"""\ncarol,x\n',
        enqueued={2: "alice", 3: "bob", 4: "carol"},
        context={2: {"note": "Jakarta, ID"}, 3: {"note": 'two\nlines, "quoted"'}},
    ),
    Case(
        "ragged-rows",
        b"crm,username,segment\n1,alice,a\n2,bob\n3,carol,c,extra\n4\n,,\n",
        enqueued={2: "alice", 3: "bob"},
        context={3: {"crm": "2", "segment": ""}},
        rejects={
            4: "row has 4 fields but the header has 3 (an unquoted delimiter?)",
            5: "row has 1 fields; 'username' is field 2",
            6: "blank row",
        },
    ),
    Case(
        "non-utf8-row",
        b"username,note\nalice,caf\xe9\nbob,ok\n",
        enqueued={3: "bob"},
        rejects={2: "row is not valid UTF-8; save the file as CSV UTF-8"},
    ),
    Case(
        "line-of-megabytes",
        b"username,note\nalice,1\nbob," + b"x" * 3_000_000 + b"\ncarol,3\n",
        enqueued={2: "alice", 4: "carol"},
        rejects={3: "row is 3,000,005 bytes; a row may be at most 204,800 bytes"},
    ),
    Case(
        "invalid-usernames",
        b"username\nok_user\nbad name\nx\n" + b"a" * 30 + b"\nhttps://evil.example.com/@ok_user\n\n",
        enqueued={2: "ok_user"},
        rejects={
            3: "invalid username 'bad name'",
            4: "invalid username 'x'",
            5: "username is 30 characters long; TikTok allows at most 24",
            6: "host 'evil.example.com' is not a TikTok domain",
            7: "blank row",
        },
    ),
    Case(
        "username-duplicates",
        b"username\n@Alice\nalice\nALICE \nhttps://www.tiktok.com/@alice/?lang=en\n@@alice\nbob\n",
        enqueued={2: "alice", 7: "bob"},
        duplicates=4,
    ),
    Case(
        "product-urls",
        b"Product URL,sku\n"
        b"https://www.tokopedia.com/shop/gadget-x?utm_source=ig&utm_medium=social,s1\n"
        b"tokopedia.com/shop/gadget-x/,s2\n"
        b"https://m.tokopedia.com/shop/gadget-x?spm=a.b.c#reviews,s3\n"
        b"https://evil.example.com/shop/gadget-x,s4\n"
        b"file:///etc/passwd,s5\n"
        b"javascript:alert(1),s6\n"
        b"http://127.0.0.1/shop/x,s7\n"
        b"http://169.254.169.254/latest/meta-data/,s8\n"
        b"http://localhost:8080/shop/x,s9\n"
        b"http://10.1.2.3/shop/x,s10\n"
        b"https://shopee.co.id/x-i.1.2,s11\n"
        b"https://www.tokopedia.com/shop/other,s12\n",
        platform="tokopedia",
        kind="product",
        enqueued={2: "https://www.tokopedia.com/shop/gadget-x", 13: "https://www.tokopedia.com/shop/other"},
        context={2: {"sku": "s1"}},
        duplicates=2,
        rejects={
            5: "host 'evil.example.com' is not a Tokopedia domain",
            6: "URL scheme 'file' is not allowed (only http and https)",
            7: "URL scheme 'javascript' is not allowed",
            8: "host '127.0.0.1' is an internal address",
            9: "host '169.254.169.254' is an internal address",
            10: "host 'localhost' is an internal address",
            11: "host '10.1.2.3' is an internal address",
            12: "host 'shopee.co.id' is not a Tokopedia domain",
        },
    ),
    Case(
        "lazada-tracking-params",
        b"link\n"
        b"https://www.lazada.co.id/products/gadget-x-i789-s1011.html?spm=a2o4j.searchlist&utm_source=fb\n"
        b"https://www.lazada.co.id/products/gadget-x-i789-s1011.html\n"
        b"lazada.co.id/products/gadget-x-i789.html/\n",
        platform="lazada",
        kind="product",
        enqueued={2: "https://www.lazada.co.id/products/gadget-x-i789-s1011.html"},
        duplicates=2,
    ),
]


@pytest.mark.parametrize("case", FAILED_FILES + ROW_CASES, ids=lambda c: c.name)
def test_every_input_gets_a_clear_answer(driver: ProducerDriver, case: Case) -> None:
    key = case.key or f"input/{case.platform}/{case.kind}/{case.name}.csv"
    result = driver.handle(driver.upload(key, case.body))

    m = driver.manifest(key)
    assert [job["status"] for job in result["jobs"]] == [case.status]
    assert m.status == case.status, m.message
    if case.message:
        assert m.message is not None and case.message in m.message
    assert m.rows_read == m.enqueued + m.duplicates + m.rejected
    assert (m.enqueued, m.duplicates, m.rejected) == (len(case.enqueued), case.duplicates, len(case.rejects))

    items = driver.drain(case.platform) if case.platform in driver.local.stack.platforms else []
    assert {i.source.row: i.target for i in items} == case.enqueued
    assert all(i.job_id == m.job_id and i.source.key == key for i in items)
    for row, context in case.context.items():
        assert next(i.context for i in items if i.source.row == row) == context
    if case.status == "enqueued":
        found = {int(r["row"]): r["reason"] for r in rejects(driver.local, m.job_id)}
        assert found.keys() == case.rejects.keys()
        for row, reason in case.rejects.items():
            assert reason in found[row], (row, found[row])


def test_the_same_upload_again_is_the_same_job_and_sends_nothing_twice(driver: ProducerDriver) -> None:
    key = "input/tiktok/account/again.csv"
    event = driver.upload(key, b"username\nalice\nbob\n")
    first = driver.handle(event)
    assert len(driver.drain("tiktok")) == 2
    # S3 may deliver the notification twice; the analyst may upload the very same bytes again.
    assert driver.handle(event) == {"jobs": []}
    assert driver.handle(driver.upload(key, b"username\nalice\nbob\n")) == {"jobs": []}
    assert driver.drain("tiktok") == []
    m = driver.manifest(key)
    assert first["jobs"] == [{"job_id": m.job_id, "status": "enqueued", "enqueued": 2}]
    assert (m.invocations, m.enqueued) == (1, 2)


class _FlakySqs:
    """SQS that refuses some batch entries: 'flaky' ones once, 'doomed' ones every time."""

    def __init__(self, sqs: Any) -> None:
        self._sqs = sqs
        self._refused: set[str] = set()

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        def refused(body: str) -> bool:
            return "doomed" in body or ("flaky" in body and body not in self._refused)

        refuse = [e for e in Entries if refused(e["MessageBody"])]
        self._refused.update(e["MessageBody"] for e in refuse)
        accept = [e for e in Entries if e not in refuse]
        response = self._sqs.send_message_batch(QueueUrl=QueueUrl, Entries=accept) if accept else {}
        failed = [
            {"Id": e["Id"], "SenderFault": False, "Code": "InternalError", "Message": "try again"}
            for e in refuse
        ]
        return {"Successful": response.get("Successful", []), "Failed": failed}


def test_sends_sqs_keeps_refusing_fail_the_job_retryably_never_as_rejects(driver: ProducerDriver) -> None:
    key = "input/tiktok/account/refused.csv"
    names = ["alice", "flaky_one", "doomed_one", "bob", "!!", "flaky_two", "doomed_two"]
    event = driver.upload(key, ("username\n" + "\n".join(names) + "\n").encode())
    deps = producer_handler.build_deps(driver.env(), continuer=NoContinuation())
    healthy, deps.sqs = deps.sqs, _FlakySqs(deps.sqs)
    context = LocalContext(driver.function)

    with pytest.raises(EnqueueFailed, match="InternalError: try again"):
        producer_handler.handle(event, context, deps)

    m = driver.manifest(key)
    assert (m.status, m.retryable) == ("retrying", True)
    assert m.message is not None and "SQS refused 2 messages" in m.message and "InternalError" in m.message
    # SQS's refusals are never rejects; the job stands at its checkpoint (here: none yet).
    listed = driver.s3.list_objects_v2(Bucket=driver.bucket, Prefix=f"jobs/{m.job_id}/rejects.csv")
    assert listed.get("KeyCount", 0) == 0

    deps.sqs = healthy  # Lambda's retry of the same event (same request id), SQS answering again
    [done] = producer_handler.handle(event, LocalContext(driver.function, context.aws_request_id), deps)[
        "jobs"
    ]
    m = driver.manifest(key)
    assert done["status"] == m.status == "enqueued"
    assert (m.rows_read, m.enqueued, m.duplicates, m.rejected) == (7, 6, 0, 1)
    assert set(i.target for i in driver.drain("tiktok")) == {n for n in names if n != "!!"}
    assert [(r["row"], r["value"]) for r in rejects(driver.local, m.job_id)] == [("6", "!!")]
