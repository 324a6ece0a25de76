"""A stack found by name on any endpoint (AWS, or the embedded one): its outputs (bucket,
queues, table) and its functions with their event source mappings, all read back from the
stack itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models import KINDS_BY_PLATFORM
from trawl.stack.endpoint import Endpoint

# The stack name when none is given: the local default's, and `--endpoint-url`'s without `--stack`.
DEFAULT_STACK_NAME = "trawl"


@dataclass(frozen=True)
class EventSource:
    queue_url: str
    queue_arn: str
    batch_size: int
    max_concurrency: int
    report_batch_item_failures: bool
    window_s: float = 0.0  # MaximumBatchingWindowInSeconds


@dataclass(frozen=True)
class StreamSource:
    """A DynamoDB stream event source mapping (the ledger function's)."""

    stream_arn: str
    batch_size: int
    window_s: float
    starting_position: str


@dataclass(frozen=True)
class AsyncConfig:
    """A function's EventInvokeConfig: how Lambda retries its asynchronous invocations."""

    max_retry_attempts: int = 2
    max_event_age_s: int = 21_600
    on_failure_arn: str | None = None


@dataclass(frozen=True)
class FunctionInfo:
    name: str
    handler: str
    timeout_s: int
    memory_mb: int
    env: dict[str, str]
    event_sources: list[EventSource] = field(default_factory=list)
    async_config: AsyncConfig = field(default_factory=AsyncConfig)
    stream_sources: list[StreamSource] = field(default_factory=list)
    logical_id: str = ""  # its resource's name in template.yaml (deploy/artifacts.txt's key)


@dataclass
class Stack:
    name: str
    endpoint: Endpoint
    outputs: dict[str, str]
    functions: dict[str, FunctionInfo]

    @property
    def bucket(self) -> str:
        return self.outputs["DataBucketName"]

    def queue_url(self, platform: str) -> str:
        return self.outputs[f"{_title(platform)}QueueUrl"]

    def dlq_url(self, platform: str) -> str:
        return self.outputs[f"{_title(platform)}DeadLetterQueueUrl"]

    def queue_arn(self, url: str) -> str:
        sqs = self.endpoint.client("sqs")
        arn: str = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        return arn

    @property
    def platforms(self) -> list[str]:
        """The platforms this stack has a work queue for."""
        return [p for p in KINDS_BY_PLATFORM if f"{_title(p)}QueueUrl" in self.outputs]

    def function_env(self, function: FunctionInfo) -> dict[str, str]:
        """A function's environment as the Lambda service sets it: its configured variables plus
        region, credentials (and the endpoint) for this stack, and its own name."""
        return {**function.env, **self.endpoint.lambda_env(), "AWS_LAMBDA_FUNCTION_NAME": function.name}

    def producer(self) -> FunctionInfo:
        return self.functions[self.outputs["ProducerFunctionName"]]

    def workers(self) -> list[FunctionInfo]:
        return [f for f in self.functions.values() if f.event_sources]

    def ledger(self) -> FunctionInfo:
        return self.functions[self.outputs["LedgerFunctionName"]]

    @property
    def ledger_table(self) -> str:
        return self.outputs["LedgerTableName"]


def _title(platform: str) -> str:
    return {"tiktok": "TikTok"}.get(platform, platform.capitalize())


def describe_stack(endpoint: Endpoint, name: str, with_functions: bool = True) -> Stack:
    """The stack's outputs (bucket, queues) and, for the local runtime, its functions."""
    cfn = endpoint.client("cloudformation")
    found = cfn.describe_stacks(StackName=name)["Stacks"][0]
    if found["StackStatus"] not in ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"):
        raise RuntimeError(f"stack {name} is {found['StackStatus']}: {found.get('StackStatusReason', '')}")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", [])}
    functions = _functions(endpoint, outputs) if with_functions else {}
    return Stack(name=name, endpoint=endpoint, outputs=outputs, functions=functions)


def _functions(endpoint: Endpoint, outputs: dict[str, str]) -> dict[str, FunctionInfo]:
    lam = endpoint.client("lambda")
    sqs = endpoint.client("sqs")
    # Each function's output is named after its resource: ProducerFunctionName -> ProducerFunction.
    names = {v: k.removesuffix("Name") for k, v in outputs.items() if k.endswith("FunctionName")}
    functions = {}
    for name, logical_id in names.items():
        config = lam.get_function_configuration(FunctionName=name)
        sources, streams = [], []
        for mapping in lam.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]:
            arn = mapping["EventSourceArn"]
            if ":dynamodb:" in arn:
                streams.append(
                    StreamSource(
                        stream_arn=arn,
                        batch_size=int(mapping.get("BatchSize", 100)),
                        window_s=float(mapping.get("MaximumBatchingWindowInSeconds") or 0),
                        starting_position=str(mapping.get("StartingPosition", "TRIM_HORIZON")),
                    )
                )
                continue
            queue_url = sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[1])["QueueUrl"]
            sources.append(
                EventSource(
                    queue_url=queue_url,
                    queue_arn=arn,
                    batch_size=int(mapping.get("BatchSize", 10)),
                    max_concurrency=int(mapping.get("ScalingConfig", {}).get("MaximumConcurrency", 2)),
                    report_batch_item_failures="ReportBatchItemFailures"
                    in mapping.get("FunctionResponseTypes", []),
                    window_s=float(mapping.get("MaximumBatchingWindowInSeconds") or 0),
                )
            )
        functions[name] = FunctionInfo(
            name=name,
            handler=config["Handler"],
            timeout_s=int(config.get("Timeout", 3)),
            memory_mb=int(config.get("MemorySize", 128)),
            # As Lambda sets them: text (moto hands back a Number parameter as a number).
            env={k: str(v) for k, v in config.get("Environment", {}).get("Variables", {}).items()},
            event_sources=sources,
            async_config=_async_config(lam, name),
            stream_sources=streams,
            logical_id=logical_id,
        )
    return functions


def _async_config(lam: Any, name: str) -> AsyncConfig:
    try:
        found = lam.get_function_event_invoke_config(FunctionName=name)
    except lam.exceptions.ResourceNotFoundException:
        return AsyncConfig()  # Lambda's defaults: two retries, six hours, no destination
    on_failure = found.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
    return AsyncConfig(
        max_retry_attempts=int(found.get("MaximumRetryAttempts", 2)),
        max_event_age_s=int(found.get("MaximumEventAgeInSeconds", 21_600)),
        on_failure_arn=on_failure or None,
    )


def queue_depth(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())
