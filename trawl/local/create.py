"""The local stack: template.yaml translated offline (aws-sam-translator) and created in the
embedded AWS through moto's CloudFormation. What moto cannot create is skipped, or recorded
through its Lambda API where the Lambda stand-in acts on it; the API keys go into its SSM."""

from __future__ import annotations

import io
import json
import logging
import re
import zipfile
from typing import Any

from trawl.local.events import ACCOUNT, function_arn
from trawl.local.parameters import UPSTREAM_URL_PARAMETERS, ParameterError, check_parameters
from trawl.local.template import CODE_PLACEHOLDER, load_template, translate
from trawl.stack import cron
from trawl.stack.describe import Stack, describe_stack
from trawl.stack.endpoint import Endpoint

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


# Likewise, recorded through moto's EventBridge Scheduler API, which stores schedules but never
# fires them: the Lambda stand-in reads them back and fires them (trawl/local/schedules.py).
RECORDED_THROUGH_SCHEDULER_API = {"AWS::Scheduler::Schedule"}


# The API keys the sandbox accepts: what the embedded SSM holds unless a real upstream's key is given.
SANDBOX_KEYS = {"tikapi": "sandboxkey1234567890", "zyte": "sandboxzytekey123"}


# Which template parameter names the SSM parameter holding each API's key.
KEY_PARAMETERS = {"tikapi": "TikApiKeyParameter", "zyte": "ZyteKeyParameter"}


def create_local_stack(
    endpoint: Endpoint, name: str, parameters: dict[str, str], api_keys: dict[str, str] | None = None
) -> Stack:
    """Translate template.yaml offline and create it in the embedded AWS. `api_keys` (by API:
    tikapi, zyte) go into the SSM parameters the template names, where the workers read them
    as they do when deployed; the sandbox's keys otherwise. The parameters are checked first,
    as CloudFormation checks them (moto does not): a value the template refuses is a
    trawl.local.parameters.ParameterError, and nothing is created."""
    template = load_template()
    parameters = check_parameters(template, parameters, loopback_http=UPSTREAM_URL_PARAMETERS)
    check_schedules(template, parameters)
    translated = translate(template, parameters)
    recorded, schedules = [], []
    for logical_id, resource in list(translated["Resources"].items()):
        if resource["Type"] in RECORDED_THROUGH_LAMBDA_API:
            recorded.append(translated["Resources"].pop(logical_id))
        elif resource["Type"] in RECORDED_THROUGH_SCHEDULER_API:
            schedules.append(translated["Resources"].pop(logical_id))
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
    resolve = _Resolver(endpoint, name, values, translated.get("Conditions", {}))
    for resource in schedules:
        _record_schedule(endpoint, resolve(resource["Properties"]))
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


def check_schedules(template: dict[str, Any], given: dict[str, str]) -> None:
    """A schedule of the template (as load_template() reads it) that the local stand-in could
    not fire, with these parameter values (checked ones; the rest take their defaults), is
    refused (ParameterError) before anything is created."""
    parameters = {k: str(v.get("Default", "")) for k, v in template.get("Parameters", {}).items()}
    parameters |= {k: str(v) for k, v in given.items()}
    for resource in template["Resources"].values():
        if resource["Type"] not in RECORDED_THROUGH_SCHEDULER_API:
            continue
        props = resource["Properties"]
        expression, timezone = props["ScheduleExpression"], props.get("ScheduleExpressionTimezone", "UTC")
        named = expression.get("Ref") if isinstance(expression, dict) else None
        if isinstance(expression, dict):
            expression = parameters[expression["Ref"]]
        if isinstance(timezone, dict):
            timezone = parameters[timezone["Ref"]]
        try:
            cron.parse(expression, timezone)
        except cron.ExpressionError as exc:
            raise ParameterError(f"{named or 'ScheduleExpression'}: {exc}", parameter=named) from exc


def _record_schedule(endpoint: Endpoint, props: dict[str, Any]) -> None:
    target = {k: props["Target"][k] for k in ("Arn", "RoleArn", "Input", "RetryPolicy", "DeadLetterConfig")}
    endpoint.client("scheduler").create_schedule(
        Name=props["Name"],
        Description=props.get("Description", ""),
        ScheduleExpression=props["ScheduleExpression"],
        ScheduleExpressionTimezone=props.get("ScheduleExpressionTimezone", "UTC"),
        FlexibleTimeWindow={
            k: (int(v) if k == "MaximumWindowInMinutes" else v)
            for k, v in props["FlexibleTimeWindow"].items()
        },
        State=props.get("State", "ENABLED"),
        Target=target,
    )


_NO_VALUE = object()


class _Resolver:
    """Ref, GetAtt, Sub and If values in a translated template, for the properties trawl records
    itself (moto resolved everything else when it created the stack)."""

    def __init__(
        self,
        endpoint: Endpoint,
        stack_name: str,
        parameters: dict[str, str],
        conditions: dict[str, Any] | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._stack_name = stack_name
        self._parameters = parameters
        self._conditions = conditions or {}
        resources = endpoint.client("cloudformation").describe_stack_resources(StackName=stack_name)
        # moto lists some resources it only records (no model) without their logical ids.
        self._physical = {
            r["LogicalResourceId"]: r for r in resources["StackResources"] if "LogicalResourceId" in r
        }

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            ((function, argument),) = value.items()
            if function == "Ref":
                return self._ref(argument)
            if function == "Fn::GetAtt":
                return self._attribute(*argument)
            if function == "Fn::Sub" and isinstance(argument, str):
                return re.sub(r"\$\{([^}!]+)\}", lambda m: str(self._ref(m.group(1))), argument)
            if function == "Fn::If":
                condition, then, otherwise = argument
                return self(then if self._condition(self._conditions[condition]) else otherwise)
        if isinstance(value, dict):
            resolved = {k: self(v) for k, v in value.items()}
            return {k: v for k, v in resolved.items() if v is not _NO_VALUE}
        if isinstance(value, list):
            return [v for v in map(self, value) if v is not _NO_VALUE]
        return value

    def _ref(self, name: str) -> Any:
        pseudo = {
            "AWS::StackName": self._stack_name,
            "AWS::Region": self._endpoint.region,
            "AWS::AccountId": ACCOUNT,
        }
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in pseudo:
            return pseudo[name]
        return (
            self._parameters[name] if name in self._parameters else self._physical[name]["PhysicalResourceId"]
        )

    def _condition(self, value: Any) -> bool:
        ((function, argument),) = value.items()
        if function == "Fn::Equals":
            left, right = (str(self(v)) for v in argument)
            return left == right
        if function == "Fn::Not":
            return not self._condition(argument[0])
        if function == "Condition":
            return self._condition(self._conditions[argument])
        raise ValueError(f"cannot evaluate the condition {function} locally")

    def _attribute(self, logical: str, attribute: str) -> str:
        resource = self._physical[logical]
        kind, physical = resource["ResourceType"], resource["PhysicalResourceId"]
        if attribute == "Arn" and kind == "AWS::SQS::Queue":
            sqs = self._endpoint.client("sqs")
            return str(
                sqs.get_queue_attributes(QueueUrl=physical, AttributeNames=["QueueArn"])["Attributes"][
                    "QueueArn"
                ]
            )
        if attribute == "Arn" and kind == "AWS::Lambda::Function":
            return function_arn(self._endpoint.region, physical)
        if attribute == "Arn" and kind == "AWS::IAM::Role":
            return f"arn:aws:iam::{ACCOUNT}:role/{physical}"
        raise ValueError(f"cannot resolve {logical}.{attribute} locally")


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
