"""The stack: created from template.yaml in the embedded AWS (offline SAM translation, then
moto's CloudFormation), or found by name on any endpoint. Everything the local runtime needs
(bucket, queues, functions, event source mappings) is read back from the stack itself."""

from __future__ import annotations

import io
import json
import logging
import zipfile
from dataclasses import dataclass, field
from typing import Any

from models import KINDS_BY_PLATFORM
from trawl.local.aws import Endpoint
from trawl.local.template import CODE_PLACEHOLDER, load_template, translate

log = logging.getLogger(__name__)

# Resource types moto's CloudFormation cannot create. They matter on AWS (and are checked by
# the template tests) but have no local effect, so the local stack skips them with a warning.
UNSUPPORTED_LOCALLY = {
    "AWS::S3::BucketPolicy",
    "AWS::CloudWatch::Alarm",
    "AWS::Glue::Database",
    "AWS::Glue::Table",
}
# Types moto's CloudFormation cannot create that the local Lambda stand-in does act on: their
# settings are recorded through moto's Lambda API instead, where the stand-in reads them back.
RECORDED_THROUGH_LAMBDA_API = {"AWS::Lambda::EventInvokeConfig"}
# The API keys the sandbox accepts: what the embedded SSM holds unless a real upstream's key is given.
SANDBOX_KEYS = {"tikapi": "sandboxkey1234567890", "zyte": "sandboxzytekey123"}
# Which template parameter names the SSM parameter holding each API's key.
KEY_PARAMETERS = {"tikapi": "TikApiKeyParameter", "zyte": "ZyteKeyParameter"}


@dataclass(frozen=True)
class EventSource:
    queue_url: str
    queue_arn: str
    batch_size: int
    max_concurrency: int
    report_batch_item_failures: bool


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


def create_local_stack(
    endpoint: Endpoint, name: str, parameters: dict[str, str], api_keys: dict[str, str] | None = None
) -> Stack:
    """Translate template.yaml offline and create it in the embedded AWS. `api_keys` (by API:
    tikapi, zyte) go into the SSM parameters the template names, where the workers read them
    as they do when deployed; the sandbox's keys otherwise."""
    translated = translate(load_template(), parameters)
    recorded = []
    for logical_id, resource in list(translated["Resources"].items()):
        if resource["Type"] in RECORDED_THROUGH_LAMBDA_API:
            recorded.append(translated["Resources"].pop(logical_id))
        elif resource["Type"] in UNSUPPORTED_LOCALLY:
            log.warning("local stack skips %s (%s): moto cannot create it", logical_id, resource["Type"])
            del translated["Resources"][logical_id]
    _upload_placeholder_code(endpoint)
    values = {k: str(v.get("Default", "")) for k, v in translated.get("Parameters", {}).items()}
    values |= {k: str(v) for k, v in parameters.items()}
    _put_api_keys(endpoint, values, SANDBOX_KEYS | (api_keys or {}))
    cfn = endpoint.client("cloudformation")
    cfn.create_stack(
        StackName=name,
        TemplateBody=json.dumps(translated),
        Parameters=[{"ParameterKey": k, "ParameterValue": str(v)} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
    )
    resolve = _Resolver(endpoint, name, values)
    for resource in recorded:
        props = resource["Properties"]
        config: dict[str, Any] = {
            key: int(resolve(props[key]))
            for key in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds")
            if key in props
        }
        if "DestinationConfig" in props:
            config["DestinationConfig"] = resolve(props["DestinationConfig"])
        endpoint.client("lambda").put_function_event_invoke_config(
            FunctionName=resolve(props["FunctionName"]), Qualifier=props.get("Qualifier", "$LATEST"), **config
        )
    return describe_stack(endpoint, name)


class _Resolver:
    """Ref and GetAtt values in a translated template, for the properties trawl records itself
    (moto resolved everything else when it created the stack)."""

    def __init__(self, endpoint: Endpoint, stack_name: str, parameters: dict[str, str]) -> None:
        self._endpoint = endpoint
        self._parameters = parameters
        resources = endpoint.client("cloudformation").describe_stack_resources(StackName=stack_name)
        # moto lists some resources it only records (no model) without their logical ids.
        self._physical = {
            r["LogicalResourceId"]: r for r in resources["StackResources"] if "LogicalResourceId" in r
        }

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict) and set(value) == {"Ref"}:
            name = value["Ref"]
            return (
                self._parameters[name]
                if name in self._parameters
                else self._physical[name]["PhysicalResourceId"]
            )
        if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
            logical, attribute = value["Fn::GetAtt"]
            resource = self._physical[logical]
            if resource["ResourceType"] == "AWS::SQS::Queue" and attribute == "Arn":
                sqs = self._endpoint.client("sqs")
                url = resource["PhysicalResourceId"]
                return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                    "QueueArn"
                ]
            raise ValueError(f"cannot resolve {logical}.{attribute} locally")
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self(v) for v in value]
        return value


def _upload_placeholder_code(endpoint: Endpoint) -> None:
    bucket, key = CODE_PLACEHOLDER.removeprefix("s3://").split("/", 1)
    s3 = endpoint.client("s3")
    s3.create_bucket(Bucket=bucket)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("README.txt", "The local runtime runs the handlers from the working tree.\n")
    s3.put_object(Bucket=bucket, Key=key, Body=archive.getvalue())


def _put_api_keys(endpoint: Endpoint, parameters: dict[str, str], keys: dict[str, str]) -> None:
    ssm = endpoint.client("ssm")
    for api, value in keys.items():
        name = parameters[KEY_PARAMETERS[api]]
        ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)


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
    names = [v for k, v in outputs.items() if k.endswith("FunctionName")]
    functions = {}
    for name in names:
        config = lam.get_function_configuration(FunctionName=name)
        sources, streams = [], []
        for mapping in lam.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]:
            arn = mapping["EventSourceArn"]
            if ":dynamodb:" in arn:
                streams.append(
                    StreamSource(
                        stream_arn=arn,
                        batch_size=int(mapping.get("BatchSize", 100)),
                        window_s=float(mapping.get("MaximumBatchingWindowInSeconds", 0)),
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
