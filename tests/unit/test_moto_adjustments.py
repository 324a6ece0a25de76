"""The moto adjustments of the embedded server are small, pinned and still correct."""

from __future__ import annotations

import time
from typing import Any

import boto3
import moto
import moto.sqs.models as sqs_models
from moto import mock_aws

from trawl.local.moto_clock import CHECKED_MOTO, patch_moto_sqs_clock
from trawl.local.motoserver import detach_moto_lambda_dispatch


def test_patch_is_pinned_to_checked_moto_versions() -> None:
    assert moto.__version__.startswith(CHECKED_MOTO), (
        f"moto {moto.__version__}: re-check trawl/local/moto_clock.py against this version"
    )


def test_patched_clock_agrees_with_moto_and_visibility_still_works() -> None:
    original = sqs_models.unix_time_millis
    assert patch_moto_sqs_clock()
    try:
        assert abs(sqs_models.unix_time_millis() - original()) < 50
        with mock_aws():
            sqs = boto3.client("sqs", region_name="us-east-1")
            url = sqs.create_queue(QueueName="q")["QueueUrl"]
            sqs.send_message(QueueUrl=url, MessageBody="x")
            [first] = sqs.receive_message(QueueUrl=url, VisibilityTimeout=1)["Messages"]
            assert sqs.receive_message(QueueUrl=url).get("Messages") is None  # hidden for 1 s
            time.sleep(1.2)
            [again] = sqs.receive_message(QueueUrl=url, AttributeNames=["All"])["Messages"]
            assert again["MessageId"] == first["MessageId"]
            assert again["Attributes"]["ApproximateReceiveCount"] == "2"
    finally:
        sqs_models.unix_time_millis = original


def test_detached_dispatch_keeps_messages_for_the_local_runtime() -> None:
    detach_moto_lambda_dispatch()
    try:
        with mock_aws():
            sqs = boto3.client("sqs", region_name="us-east-1")
            url = sqs.create_queue(QueueName="work")["QueueUrl"]
            queue = sqs_models.sqs_backends["123456789012"]["us-east-1"].queues["work"]
            queue.lambda_event_source_mappings["arn:fn"] = object()  # type: ignore[assignment]  # as moto's Lambda does
            assert queue.lambda_event_source_mappings == {}
            sqs.send_message(QueueUrl=url, MessageBody="kept")
            [message] = sqs.receive_message(QueueUrl=url)["Messages"]
            assert message["Body"] == "kept"
    finally:
        delattr(sqs_models.Queue, "lambda_event_source_mappings")


def test_queue_changes_are_serialised_with_sends() -> None:
    import threading

    from trawl.local.motoserver import serialise_queue_changes

    original = sqs_models.Queue.delete_message, sqs_models.SQSBackend.receive_message
    serialise_queue_changes()
    try:
        with mock_aws():
            sqs = boto3.client("sqs", region_name="us-east-1")
            url = sqs.create_queue(QueueName="serial")["QueueUrl"]
            sqs.send_message(QueueUrl=url, MessageBody="x")
            [message] = sqs.receive_message(QueueUrl=url)["Messages"]
            queue = sqs_models.sqs_backends["123456789012"]["us-east-1"].queues["serial"]
            deleted = threading.Event()

            def delete() -> None:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                deleted.set()

            with queue._messages_lock:  # a send holds this lock while it appends
                worker = threading.Thread(target=delete)
                worker.start()
                assert not deleted.wait(0.3), "delete_message ran while a send held the queue"
            worker.join(5)
            assert deleted.is_set()
            assert queue.approximate_number_of_messages == 0
    finally:
        sqs_models.Queue.delete_message, sqs_models.SQSBackend.receive_message = original  # type: ignore[method-assign]


def test_backend_routing_is_memoised_and_answers_as_before() -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from trawl.local.motoserver import memoise_backend_routing

    original = DomainDispatcherApplication.get_backend_for_host
    app = DomainDispatcherApplication(create_backend_app)
    hosts = ["s3.us-east-1.amazonaws.com", "sqs.us-east-1.amazonaws.com", "moto_api", None]
    expected = [original(app, host) for host in hosts]
    assert expected[:2] == ["s3", "sqs"]
    memoise_backend_routing()
    try:
        assert [app.get_backend_for_host(host) for host in hosts] == expected
        calls: list[str | None] = []

        def counting(self: DomainDispatcherApplication, host: str | None) -> object:
            calls.append(host)
            return original(self, host)

        DomainDispatcherApplication.get_backend_for_host = counting  # type: ignore[method-assign]
        memoise_backend_routing()  # memoises the counting lookup
        for _ in range(3):
            assert app.get_backend_for_host("sqs.eu-west-1.amazonaws.com") == "sqs"
        assert calls == ["sqs.eu-west-1.amazonaws.com"]
    finally:
        DomainDispatcherApplication.get_backend_for_host = original  # type: ignore[method-assign]


def test_queue_attributes_are_built_once_per_call_and_stay_right() -> None:
    from trawl.local.motoserver import build_queue_attributes_once

    queue_cls, backend_cls = sqs_models.Queue, sqs_models.SQSBackend
    saved = {name: queue_cls.__dict__[name] for name in ("attributes", "approximate_number_of_messages")}
    sends = (backend_cls.send_message, backend_cls.send_message_batch, backend_cls.get_queue_attributes)
    counted = saved["approximate_number_of_messages"].fget
    scans: list[int] = []

    def counting(self: sqs_models.Queue) -> int:
        scans.append(1)
        return counted(self)

    queue_cls.approximate_number_of_messages = property(counting)  # type: ignore[assignment,method-assign]
    build_queue_attributes_once()
    try:
        with mock_aws():
            sqs = boto3.client("sqs", region_name="us-east-1")
            url = sqs.create_queue(QueueName="counted")["QueueUrl"]
            entries: Any = [{"Id": str(i), "MessageBody": f"m{i}"} for i in range(10)]
            scans.clear()
            sqs.send_message_batch(QueueUrl=url, Entries=entries)
            sqs.send_message(QueueUrl=url, MessageBody="one more")
            assert scans == [], "a send counted the queue's messages"
            sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=3)
            names: Any = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "QueueArn"]
            scans.clear()
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
            assert len(scans) == 1, "GetQueueAttributes built the attributes more than once"
            assert attributes["ApproximateNumberOfMessages"] == "8"
            assert attributes["ApproximateNumberOfMessagesNotVisible"] == "3"
            assert attributes["QueueArn"].endswith(":counted")
    finally:
        for name, value in saved.items():
            setattr(queue_cls, name, value)
        backend_cls.send_message, backend_cls.send_message_batch, backend_cls.get_queue_attributes = sends  # type: ignore[method-assign]


def test_a_query_on_the_table_key_reads_only_its_partition_and_answers_the_same() -> None:
    from moto.dynamodb.models.table import Table

    from trawl.local.motoserver import query_one_partition

    saved_query, saved_all = Table.query, Table.all_items
    whole_table_reads: list[int] = []

    def counting(self: Table) -> Any:
        whole_table_reads.append(1)
        return saved_all(self)

    Table.all_items = counting  # type: ignore[method-assign]
    query_one_partition()
    try:
        with mock_aws():
            db = boto3.client("dynamodb", region_name="us-east-1")
            db.create_table(
                TableName="t",
                BillingMode="PAY_PER_REQUEST",
                KeySchema=[
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                    {"AttributeName": "g", "AttributeType": "S"},
                ],
                GlobalSecondaryIndexes=[
                    {
                        "IndexName": "by_g",
                        "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                        "Projection": {"ProjectionType": "ALL"},
                    }
                ],
            )
            for pk in ("JOB#a", "JOB#b"):
                for n in (3, 1, 2):
                    item = {"pk": {"S": pk}, "sk": {"S": f"D{n}"}, "g": {"S": "all"}}
                    db.put_item(TableName="t", Item=item)
            whole_table_reads.clear()
            keys: Any = {":pk": {"S": "JOB#a"}}
            first = db.query(
                TableName="t", KeyConditionExpression="pk = :pk", ExpressionAttributeValues=keys, Limit=2
            )
            rest = db.query(
                TableName="t",
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues=keys,
                ExclusiveStartKey=first["LastEvaluatedKey"],
            )
            newest = db.query(
                TableName="t",
                KeyConditionExpression="pk = :pk AND sk > :after",
                ExpressionAttributeValues={**keys, ":after": {"S": "D1"}},
                ScanIndexForward=False,
            )
            assert whole_table_reads == [], "a Query on the table's key read the whole table"
            by_index = db.query(
                TableName="t",
                IndexName="by_g",
                KeyConditionExpression="g = :g",
                ExpressionAttributeValues={":g": {"S": "all"}},
            )
    finally:
        Table.query, Table.all_items = saved_query, saved_all  # type: ignore[method-assign]
    assert [i["sk"]["S"] for i in first["Items"] + rest["Items"]] == ["D1", "D2", "D3"]
    assert {i["pk"]["S"] for i in first["Items"] + rest["Items"]} == {"JOB#a"}
    assert [i["sk"]["S"] for i in newest["Items"]] == ["D3", "D2"]
    assert by_index["Count"] == 6


def test_dynamodb_writes_take_one_lock_so_conditions_hold() -> None:
    import threading

    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    from trawl.local.motoserver import serialise_dynamodb_writes

    names = ("put_item", "update_item", "delete_item", "transact_write_items")
    saved = {name: getattr(DynamoDBBackend, name) for name in names}
    table_put = Table.put_item
    inside, most = [0], [0]
    guard = threading.Lock()

    def slow_put(self: Table, *args: Any, **kwargs: Any) -> Any:
        # Widens moto's window between checking a condition and writing the item.
        with guard:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.05)
        try:
            return table_put(self, *args, **kwargs)
        finally:
            with guard:
                inside[0] -= 1

    Table.put_item = slow_put  # type: ignore[method-assign]
    serialise_dynamodb_writes()
    won: list[str] = []
    try:
        with mock_aws():
            db = boto3.client("dynamodb", region_name="us-east-1")
            db.create_table(
                TableName="t",
                BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            )

            def settle(worker: str) -> None:
                try:
                    db.put_item(
                        TableName="t",
                        Item={"pk": {"S": "ITEM#j#alice"}, "by": {"S": worker}},
                        ConditionExpression="attribute_not_exists(pk)",
                    )
                except db.exceptions.ConditionalCheckFailedException:
                    return
                won.append(worker)

            threads = [threading.Thread(target=settle, args=(f"w{n}",)) for n in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            stored = db.get_item(TableName="t", Key={"pk": {"S": "ITEM#j#alice"}})["Item"]["by"]["S"]
    finally:
        Table.put_item = table_put  # type: ignore[method-assign]
        for name, original in saved.items():
            setattr(DynamoDBBackend, name, original)
    assert most[0] == 1, "two DynamoDB writes ran at once"
    assert won == [stored], won


def test_a_schedule_rule_never_matches_an_event_and_does_not_fail_put_events() -> None:
    import json

    from moto.events.models import Rule

    from trawl.local.motoserver import keep_schedules_out_of_event_matching

    send = Rule.send_to_targets
    keep_schedules_out_of_event_matching()
    try:
        with mock_aws():
            events, sqs = (
                boto3.client("events", region_name="us-east-1"),
                boto3.client("sqs", region_name="us-east-1"),
            )
            url = sqs.create_queue(QueueName="finished")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            events.put_rule(Name="every-10-minutes", ScheduleExpression="rate(10 minutes)")
            function = "arn:aws:lambda:us-east-1:123456789012:function:ledger"
            events.put_targets(Rule="every-10-minutes", Targets=[{"Id": "ledger", "Arn": function}])
            events.put_rule(Name="finished", EventPattern=json.dumps({"source": ["trawl"]}))
            events.put_targets(Rule="finished", Targets=[{"Id": "q", "Arn": arn}])

            answer = events.put_events(
                Entries=[
                    {
                        "Source": "trawl",
                        "DetailType": "Job Finished",
                        "Detail": "{}",
                        "EventBusName": "default",
                    }
                ]
            )
            [message] = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    finally:
        Rule.send_to_targets = send  # type: ignore[method-assign]
    assert answer["FailedEntryCount"] == 0, answer
    assert json.loads(message["Body"])["detail-type"] == "Job Finished"
