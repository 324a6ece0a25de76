"""The events the local stand-in delivers, in the shapes AWS sends them: an S3 ObjectCreated
notification, the records of an SQS event source mapping, of a DynamoDB stream, and an
EventBridge scheduled event. Where what moto hands back differs from what Lambda delivers (the
SQS API's message attributes, boto3's datetimes), it is corrected here, so the handlers parse
local events with the same models (Powertools Parser's) as deployed ones."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import time
import uuid
from collections.abc import Iterable
from typing import Any

ACCOUNT = "123456789012"  # moto's account, which the local stack's ARNs carry


def function_arn(region: str, name: str) -> str:
    """A local function's ARN, as the stack's event sources and schedules name it."""
    return f"arn:aws:lambda:{region}:{ACCOUNT}:function:{name}"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def s3_object_created(bucket: str, key: str, size: int, etag: str, region: str) -> dict[str, Any]:
    """The notification S3 sends for an object PUT (event structure version 2.1)."""
    request_id = uuid.uuid4().hex[:16].upper()
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": region,
                "eventTime": _now(),
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "AWS:AIDAEXAMPLELOCAL"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {
                    "x-amz-request-id": request_id,
                    "x-amz-id-2": base64.b64encode(hashlib.sha256(request_id.encode()).digest()).decode(),
                },
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "Upload",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "AEXAMPLELOCAL"},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": {
                        # As S3 writes it: URL-encoded, spaces as '+'.
                        "key": key.replace(" ", "+"),
                        "size": size,
                        "eTag": etag.strip('"'),
                        "sequencer": format(time.time_ns(), "X"),
                    },
                },
            }
        ]
    }


def sqs_event(messages: Iterable[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping delivers for messages received with
    AttributeNames and MessageAttributeNames "All"."""
    return {"Records": [_sqs_record(m, queue_arn, region) for m in messages]}


def _sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    record = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": _sqs_attributes(message.get("Attributes", {})),
        "messageAttributes": {
            name: _message_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(message["Body"].encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


# The system attributes Lambda puts on an SQS record of a standard queue.
_SQS_ATTRIBUTES = ("ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp")


def _sqs_attributes(found: dict[str, Any]) -> dict[str, str]:
    now = str(int(time.time() * 1000))
    defaults = {"ApproximateReceiveCount": "1", "SenderId": f"AROAEXAMPLE:{ACCOUNT}"}
    defaults |= {"SentTimestamp": now, "ApproximateFirstReceiveTimestamp": now}
    attributes = {name: str(found.get(name) or defaults[name]) for name in _SQS_ATTRIBUTES}
    attributes |= {k: str(v) for k, v in found.items() if k in ("AWSTraceHeader", "DeadLetterQueueSourceArn")}
    return attributes


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    """The SQS API's {"StringValue": .., "DataType": ..} as Lambda's record carries it."""
    shaped: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
    if "StringValue" in value:
        shaped["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        binary = value["BinaryValue"]
        shaped["binaryValue"] = base64.b64encode(binary).decode() if isinstance(binary, bytes) else binary
    return shaped


def dynamodb_stream_event(records: Iterable[dict[str, Any]], stream_arn: str, region: str) -> dict[str, Any]:
    """GetRecords' records as Lambda's event carries them: with the stream's ARN, and the creation
    time as epoch seconds (boto3 hands it back as a datetime)."""
    return {"Records": [_stream_record(r, stream_arn, region) for r in records]}


def _stream_record(record: dict[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    change = dict(record["dynamodb"])
    created = change.get("ApproximateCreationDateTime")
    if isinstance(created, dt.datetime):
        change["ApproximateCreationDateTime"] = created.timestamp()
    return {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": change,
        "eventSourceARN": stream_arn,
    }


def scheduled_event(rule_arn: str, region: str, at: dt.datetime) -> dict[str, Any]:
    """What an EventBridge schedule rule sends its target."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }
