"""Checks over template.yaml, as loaded and as translated offline by aws-sam-translator: the settings
that trawl's failure semantics, concurrency limits and least privilege rest on. Each check is a plain
function returning human-readable problems; mutation tests below prove that every check bites."""

from __future__ import annotations

import copy
import fnmatch
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from trawl.local.template import TEMPLATE_PATH, load_template, translate

Template = dict[str, Any]
Check = Callable[[Template], list[str]]

# What AWS applies when the template leaves a setting out.
SQS_DEFAULT_VISIBILITY_TIMEOUT = 30
SQS_DEFAULT_RETENTION = 345_600
SQS_MAX_RETENTION = 1_209_600
LAMBDA_DEFAULT_TIMEOUT = 3
# The lowest MaximumConcurrency an SQS event source accepts.
MIN_MAXIMUM_CONCURRENCY = 2

PUBLIC_ACCESS_FLAGS = ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
SSE_ALGORITHMS = {"AES256", "aws:kms", "aws:kms:dsse"}
# Every S3 grant names one of the design's prefixes, never the whole bucket.
ALLOWED_KEY_PREFIX = re.compile(r"^(input/|jobs/|output/platform=[a-z0-9_-]+/)")
# What an SQS event source mapping and the worker's backoff need on the worker's own queue.
CONSUME_ACTIONS = (
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ChangeMessageVisibility",
)
# What the producer's code does in the data bucket: (action, sample key or "" for the bucket, why).
PRODUCER_S3_NEEDS = (
    ("s3:GetObject", "input/tiktok/account/sample.csv", "JobStore.open_input reads the upload"),
    ("s3:GetObject", "jobs/job/manifest.json", "JobStore.load_manifest and .download read job state"),
    ("s3:PutObject", "jobs/job/manifest.json", "JobStore.save_manifest and .upload write job state"),
    ("s3:DeleteObject", "jobs/job/checkpoint/seen.sqlite", "JobStore.delete drops a finished checkpoint"),
    ("s3:ListBucket", "", "else a missing manifest is AccessDenied, not the NoSuchKey load_manifest expects"),
)
SQS_ARN = re.compile(
    r"^(?:\$\{(?P<sub>\w+)\.Arn\}|(?P<att>\w+)\.Arn"
    r"|arn:(?:\$\{AWS::Partition\}|aws):sqs:[^:]+:[^:]+:(?:\$\{)?(?P<name>\w+)\.QueueName\}?)$"
)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def sam_template() -> Template:
    return load_template()


@pytest.fixture(scope="module")
def translated(sam_template: Template) -> Template:
    return translate(sam_template)


@pytest.fixture(scope="module")
def lint_matches() -> list[Any]:
    from cfnlint.api import ManualArgs, lint_file

    # Tokopedia, Shopee and Lazada are served from South-East Asia, so lint there too.
    return list(lint_file(TEMPLATE_PATH, ManualArgs(regions=["us-east-1", "ap-southeast-1"])))


# --------------------------------------------------------------------------- reading templates


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def render(value: Any) -> Any:
    """CloudFormation intrinsics as readable strings: {"Fn::GetAtt": ["Q", "Arn"]} -> "Q.Arn",
    {"Ref": "P"} -> "${P}", {"Fn::Sub": s} -> s (a Sub's variable map filled in)."""
    if isinstance(value, list):
        return [render(item) for item in value]
    if not (isinstance(value, dict) and len(value) == 1):
        return value
    ((key, arg),) = value.items()
    if key == "Ref":
        return f"${{{arg}}}"
    if key == "Fn::GetAtt":
        return ".".join(arg) if isinstance(arg, list) else str(arg)
    if key == "Fn::Sub":
        if isinstance(arg, str):
            return arg
        text, variables = arg
        for name, variable in variables.items():
            text = text.replace(f"${{{name}}}", str(render(variable)))
        return text
    if key == "Fn::Join":
        separator, parts = arg
        return separator.join(str(render(part)) for part in parts)
    if key.startswith("Fn::"):
        return json.dumps(value, sort_keys=True)
    return value


def ref_target(value: Any) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("Ref"), str):
        return str(value["Ref"])
    return None


def getatt_target(value: Any, attribute: str = "Arn") -> str | None:
    target = value.get("Fn::GetAtt") if isinstance(value, dict) else None
    if isinstance(target, str):
        target = target.split(".", 1)
    if isinstance(target, list) and len(target) == 2 and target[1] == attribute:
        return str(target[0])
    return None


def resources_of_type(template: Template, resource_type: str) -> dict[str, dict[str, Any]]:
    return {rid: res for rid, res in template["Resources"].items() if res.get("Type") == resource_type}


def properties(template: Template, resource_id: str) -> dict[str, Any]:
    props: dict[str, Any] = template["Resources"].get(resource_id, {}).get("Properties", {})
    return props


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def visibility_by_window(
    visibility: Any, window: Any, template: Template
) -> list[tuple[int | None, int | None]]:
    """(batching window, queue visibility) for every value the window can take: one pair when
    it is a number, one per AllowedValue when it is a parameter (a visibility looked up in
    Mappings by that parameter is looked up with the same value)."""
    parameters = template.get("Parameters", {})
    parameter = ref_target(window)
    if parameter is None:
        return [(as_int(window), _visibility(visibility, None, None, template))]
    allowed = parameters.get(parameter, {}).get("AllowedValues")
    if not allowed:
        return [(None, None)]  # a window of any size: no visibility can be derived for it
    return [(as_int(value), _visibility(visibility, parameter, str(value), template)) for value in allowed]


def _visibility(value: Any, parameter: str | None, chosen: str | None, template: Template) -> int | None:
    found = value.get("Fn::FindInMap") if isinstance(value, dict) else None
    if not found:
        return resolve_number(value, template.get("Parameters", {}))
    mapping, key, column = found
    if ref_target(key) is not None:
        if ref_target(key) != parameter:
            return None
        key = chosen
    return as_int(template.get("Mappings", {}).get(mapping, {}).get(str(key), {}).get(column))


def resolve_number(value: Any, parameters: dict[str, Any]) -> int | None:
    """An int, or a Ref to a parameter resolved to its Default (what a plain deploy gets)."""
    parameter = ref_target(value)
    if parameter is not None:
        return as_int(parameters.get(parameter, {}).get("Default"))
    return as_int(value)


@dataclass(frozen=True)
class Worker:
    """A function fed by an SQS event source mapping, as the translated template wires it."""

    mapping: str
    function: str
    queue: str
    role: str | None
    platform: str | None

    @property
    def label(self) -> str:
        return f"{self.function} (reads {self.queue})"


def workers(translated: Template) -> list[Worker]:
    queues = resources_of_type(translated, "AWS::SQS::Queue")
    found = []
    for mapping_id, mapping in resources_of_type(translated, "AWS::Lambda::EventSourceMapping").items():
        props = mapping.get("Properties", {})
        queue = getatt_target(props.get("EventSourceArn"))
        if queue not in queues:
            continue
        function = ref_target(props.get("FunctionName")) or str(render(props.get("FunctionName")))
        function_props = properties(translated, function)
        platform = function_props.get("Environment", {}).get("Variables", {}).get("PLATFORM")
        role = getatt_target(function_props.get("Role"))
        found.append(
            Worker(mapping_id, function, str(queue), role, platform if isinstance(platform, str) else None)
        )
    return found


def dead_letter_target(queue_props: dict[str, Any]) -> str | None:
    policy = queue_props.get("RedrivePolicy")
    if isinstance(policy, str):
        policy = json.loads(policy)
    return getatt_target(policy.get("deadLetterTargetArn")) if isinstance(policy, dict) else None


def bucket_arns(bucket_id: str, bucket: dict[str, Any]) -> set[str]:
    """Every way the template spells the bucket's ARN, rendered."""
    names = {f"${{{bucket_id}}}"}
    name = render(bucket.get("Properties", {}).get("BucketName"))
    if isinstance(name, str):
        names.add(name)
    arns = {f"{bucket_id}.Arn", f"${{{bucket_id}.Arn}}"}
    for spelled in names:
        arns |= {f"arn:${{AWS::Partition}}:s3:::{spelled}", f"arn:aws:s3:::{spelled}"}
    return arns


def data_bucket_arns(translated: Template) -> set[str]:
    buckets = resources_of_type(translated, "AWS::S3::Bucket")
    return set().union(*(bucket_arns(bucket_id, bucket) for bucket_id, bucket in buckets.items()))


def s3_key(resource: str, arns: set[str]) -> str | None:
    """The key pattern an S3 ARN of the data bucket names: "" for the bucket itself, None if not ours."""
    if resource in arns:
        return ""
    return next((resource[len(arn) + 1 :] for arn in arns if resource.startswith(f"{arn}/")), None)


def queue_of(resource: str) -> str | None:
    match = SQS_ARN.match(resource)
    return (match.group("sub") or match.group("att") or match.group("name")) if match else None


@dataclass(frozen=True)
class Grant:
    """One IAM statement of a role, flattened, with intrinsics rendered to strings."""

    role: str
    sid: str
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    negated: bool  # NotAction / NotResource: grants everything except a list
    leading_keys: tuple[str, ...] | None = None  # a dynamodb:LeadingKeys condition's patterns

    @property
    def services(self) -> set[str]:
        return {action.split(":", 1)[0].lower() for action in self.actions}

    def describe(self) -> str:
        return (
            f"{self.role} statement {self.sid}: {self.effect} {list(self.actions)} on {list(self.resources)}"
        )


def role_grants(translated: Template, role_id: str) -> list[Grant]:
    """A role's inline policies, plus AWS::IAM::Policy / ManagedPolicy resources attached to it."""
    documents = [policy["PolicyDocument"] for policy in properties(translated, role_id).get("Policies", [])]
    for resource in translated["Resources"].values():
        attached = {"Ref": role_id} in resource.get("Properties", {}).get("Roles", [])
        if attached and resource.get("Type") in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents.append(resource["Properties"]["PolicyDocument"])
    grants = []
    for document in documents:
        for statement in _either_branch(as_list(document.get("Statement"))):
            actions = statement.get("Action", statement.get("NotAction"))
            resources = statement.get("Resource", statement.get("NotResource"))
            condition = statement.get("Condition", {}).get("ForAllValues:StringLike", {})
            keys = condition.get("dynamodb:LeadingKeys")
            grants.append(
                Grant(
                    role=role_id,
                    sid=str(statement.get("Sid", "?")),
                    effect=str(statement.get("Effect")),
                    actions=tuple(str(action) for action in as_list(render(actions))),
                    resources=tuple(str(resource) for resource in as_list(render(resources))),
                    negated="NotAction" in statement or "NotResource" in statement,
                    leading_keys=tuple(as_list(keys)) if keys is not None else None,
                )
            )
    return grants


def _either_branch(statements: list[Any]) -> list[Any]:
    """Statements behind a condition ({"Fn::If": [condition, a, b]}) count as both a and b: the
    checks hold whichever way a deployment sets the condition."""
    found = []
    for statement in statements:
        if isinstance(statement, dict) and "Fn::If" in statement:
            found += _either_branch(list(statement["Fn::If"][1:]))
        elif statement != {"Ref": "AWS::NoValue"}:
            found.append(statement)
    return found


def function_roles(translated: Template) -> tuple[dict[str, str], list[str]]:
    """Function -> its role's logical id; plus problems for roles that are not in the template."""
    roles, problems = {}, []
    for function_id, function in resources_of_type(translated, "AWS::Lambda::Function").items():
        role = getatt_target(function["Properties"].get("Role"))
        if role is None or translated["Resources"].get(role, {}).get("Type") != "AWS::IAM::Role":
            problems.append(
                f"{function_id}: role {render(function['Properties'].get('Role'))!r} is not an "
                "AWS::IAM::Role of this template, so its grants cannot be checked"
            )
        else:
            roles[function_id] = role
    return roles, problems


def producers(translated: Template) -> set[str]:
    """Functions the data bucket notifies of uploads."""
    found = set()
    for bucket in resources_of_type(translated, "AWS::S3::Bucket").values():
        notifications = bucket["Properties"].get("NotificationConfiguration", {})
        for target in notifications.get("LambdaConfigurations", []):
            found.add(getatt_target(target.get("Function")) or "")
    return found - {""}


def failure_destinations(translated: Template) -> dict[str, str]:
    """Function -> the queue its EventInvokeConfig sends failed asynchronous invocations to."""
    found = {}
    for config in resources_of_type(translated, "AWS::Lambda::EventInvokeConfig").values():
        props = config.get("Properties", {})
        function = ref_target(props.get("FunctionName")) or str(render(props.get("FunctionName")))
        queue = getatt_target(props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination"))
        if queue is not None:
            found[function] = queue
    return found


def schedule_dead_letters(translated: Template) -> set[str]:
    """Queues an EventBridge Scheduler schedule sends the firings it could not deliver to."""
    found = set()
    for schedule in resources_of_type(translated, "AWS::Scheduler::Schedule").values():
        target = schedule.get("Properties", {}).get("Target", {})
        queue = getatt_target(target.get("DeadLetterConfig", {}).get("Arn"))
        if queue is not None:
            found.add(queue)
    return found


def ledger_readers(translated: Template) -> set[str]:
    """Functions fed by a DynamoDB stream (the ledger function)."""
    found = set()
    for mapping in resources_of_type(translated, "AWS::Lambda::EventSourceMapping").values():
        props = mapping.get("Properties", {})
        if getatt_target(props.get("EventSourceArn"), "StreamArn") is not None:
            found.add(ref_target(props.get("FunctionName")) or str(render(props.get("FunctionName"))))
    return found


def ledger_tables(translated: Template) -> set[str]:
    return set(resources_of_type(translated, "AWS::DynamoDB::Table"))


def dead_letter_queues(translated: Template) -> set[str]:
    queues = resources_of_type(translated, "AWS::SQS::Queue")
    return {dlq for q in queues.values() if (dlq := dead_letter_target(q.get("Properties", {})))}


# --------------------------------------------------------------------------- checks


def check_concurrency(translated: Template) -> list[str]:
    """Every SQS event source batches (BatchSize: int or parameter) and caps its worker's
    concurrency with a parameter whose MinValue is at least SQS's floor of 2."""
    parameters = translated.get("Parameters", {})
    found = workers(translated)
    problems = [] if found else ["no SQS event source mapping found"]
    for worker in found:
        props = properties(translated, worker.mapping)
        batch = props.get("BatchSize")
        if as_int(batch) is None and ref_target(batch) not in parameters:
            problems.append(f"{worker.label}: BatchSize {batch!r} is neither an int nor a Ref to a parameter")
        limit = props.get("ScalingConfig", {}).get("MaximumConcurrency")
        parameter = ref_target(limit)
        if parameter not in parameters:
            problems.append(
                f"{worker.label}: ScalingConfig.MaximumConcurrency {limit!r} is not a Ref to a parameter"
            )
            continue
        floor = as_int(parameters[parameter].get("MinValue"))
        if floor is None or floor < MIN_MAXIMUM_CONCURRENCY:
            problems.append(
                f"{worker.label}: parameter {parameter} has MinValue {floor!r}, "
                f"below the lowest MaximumConcurrency SQS accepts ({MIN_MAXIMUM_CONCURRENCY})"
            )
    return problems


def check_partial_batch(translated: Template) -> list[str]:
    """Every SQS event source reports partial batch failures, so one bad item does not retry its batch."""
    found = workers(translated)
    problems = [] if found else ["no SQS event source mapping found"]
    for worker in found:
        types = as_list(properties(translated, worker.mapping).get("FunctionResponseTypes"))
        if "ReportBatchItemFailures" not in types:
            problems.append(f"{worker.label}: FunctionResponseTypes {types} lacks ReportBatchItemFailures")
    return problems


def check_redrive(translated: Template) -> list[str]:
    """Every consumed queue redrives to a dead-letter queue of this template after maxReceiveCount,
    keeps messages invisible for 6x its worker's timeout, and its DLQ keeps messages at least as
    long; every queue is either consumed or a dead-letter queue."""
    parameters = translated.get("Parameters", {})
    queues = resources_of_type(translated, "AWS::SQS::Queue")
    found = workers(translated)
    problems = [] if found else ["no SQS event source mapping found"]
    dead_letter_queues = set()
    for worker in found:
        queue = properties(translated, worker.queue)
        policy = queue.get("RedrivePolicy")
        policy = json.loads(policy) if isinstance(policy, str) else policy
        if not isinstance(policy, dict):
            problems.append(
                f"{worker.queue}: no RedrivePolicy, so failing items are retried until they expire"
            )
        else:
            problems += _dead_letter_problems(worker.queue, queue, policy, queues, parameters)
            dead_letter_queues.add(getatt_target(policy.get("deadLetterTargetArn")))
        timeout_value = properties(translated, worker.function).get("Timeout", LAMBDA_DEFAULT_TIMEOUT)
        timeout = resolve_number(timeout_value, parameters)
        window_value = properties(translated, worker.mapping).get("MaximumBatchingWindowInSeconds", 0)
        visibility_value = queue.get("VisibilityTimeout", SQS_DEFAULT_VISIBILITY_TIMEOUT)
        for window, visibility in visibility_by_window(visibility_value, window_value, translated):
            if visibility is None or timeout is None or window is None or visibility < 6 * timeout + window:
                problems.append(
                    f"{worker.queue}: VisibilityTimeout {visibility!r} is under 6 x {worker.function}'s "
                    f"Timeout {timeout!r} + its batching window {window!r}"
                )
    consumed = {worker.queue for worker in found} | set(failure_destinations(translated).values())
    consumed |= schedule_dead_letters(translated)
    for queue_id in queues:
        if queue_id not in consumed and queue_id not in dead_letter_queues:
            problems.append(
                f"{queue_id}: neither read by a function, a function's failure destination, "
                "nor the dead-letter queue of a queue that is"
            )
    return problems


def _dead_letter_problems(
    queue_id: str,
    queue: dict[str, Any],
    policy: dict[str, Any],
    queues: dict[str, dict[str, Any]],
    parameters: dict[str, Any],
) -> list[str]:
    problems = []
    target = getatt_target(policy.get("deadLetterTargetArn"))
    if target not in queues or target == queue_id:
        problems.append(
            f"{queue_id}: deadLetterTargetArn {render(policy.get('deadLetterTargetArn'))!r} "
            "is not the Arn of another queue of this template"
        )
    else:
        kept = as_int(queue.get("MessageRetentionPeriod", SQS_DEFAULT_RETENTION)) or 0
        dlq_kept = as_int(
            queues[target].get("Properties", {}).get("MessageRetentionPeriod", SQS_DEFAULT_RETENTION)
        )
        # A standard DLQ keeps a message's first enqueue time, so a shorter retention expires it early.
        if dlq_kept is None or (dlq_kept <= kept and dlq_kept < SQS_MAX_RETENTION):
            problems.append(
                f"{queue_id}: its dead-letter queue {target} keeps messages {dlq_kept!r} s, "
                f"not longer than {kept} s"
            )
    count = resolve_number(policy.get("maxReceiveCount"), parameters)
    if count is None or count < 1:
        problems.append(
            f"{queue_id}: RedrivePolicy maxReceiveCount {policy.get('maxReceiveCount')!r} is missing"
        )
    return problems


def check_bucket(translated: Template) -> list[str]:
    """Every bucket is encrypted, blocks all public access, and has a policy denying plain HTTP."""
    buckets = resources_of_type(translated, "AWS::S3::Bucket")
    policies = resources_of_type(translated, "AWS::S3::BucketPolicy")
    problems = [] if buckets else ["no S3 bucket found"]
    for bucket_id, bucket in buckets.items():
        props = bucket.get("Properties", {})
        rules = props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
        algorithms = [rule.get("ServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for rule in rules]
        if not algorithms or not set(algorithms) <= SSE_ALGORITHMS:
            problems.append(f"{bucket_id}: BucketEncryption sets no default encryption ({algorithms})")
        block = props.get("PublicAccessBlockConfiguration", {})
        open_flags = [flag for flag in PUBLIC_ACCESS_FLAGS if block.get(flag) is not True]
        if open_flags:
            problems.append(f"{bucket_id}: PublicAccessBlockConfiguration leaves {open_flags} off")
        arns = bucket_arns(bucket_id, bucket)
        documents = [
            policy["Properties"].get("PolicyDocument", {})
            for policy in policies.values()
            if ref_target(policy["Properties"].get("Bucket")) == bucket_id
        ]
        if not any(_denies_plain_http(document, arns) for document in documents):
            problems.append(
                f"{bucket_id}: no bucket policy denies s3:* to everyone when aws:SecureTransport is false"
            )
    return problems


def _denies_plain_http(document: dict[str, Any], arns: set[str]) -> bool:
    for statement in as_list(document.get("Statement")):
        secure = statement.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")
        resources = {str(resource) for resource in as_list(render(statement.get("Resource")))}
        if (
            statement.get("Effect") == "Deny"
            and statement.get("Principal") in ("*", {"AWS": "*"})
            and "s3:*" in as_list(statement.get("Action"))
            and secure in ("false", False)
            and resources & arns
            and resources & {f"{arn}/*" for arn in arns}
        ):
            return True
    return False


def check_queue_encryption(translated: Template) -> list[str]:
    """Every queue (work and dead-letter) is encrypted at rest with SQS-managed keys."""
    queues = resources_of_type(translated, "AWS::SQS::Queue")
    problems = [] if queues else ["no SQS queue found"]
    for queue_id, queue in queues.items():
        if queue.get("Properties", {}).get("SqsManagedSseEnabled") is not True:
            problems.append(f"{queue_id}: SqsManagedSseEnabled is not true")
    return problems


def check_least_privilege(translated: Template) -> list[str]:
    """Function roles grant named actions on named resources only: no "*" action, service wildcard
    or Resource "*"; no managed policies; S3 only under the data bucket's design prefixes; a worker
    touches only its own queue and writes only its platform's output; others only send to work queues."""
    roles, problems = function_roles(translated)
    found = {worker.function: worker for worker in workers(translated)}
    arns = data_bucket_arns(translated)
    work_queues = {worker.queue for worker in found.values()}
    destinations = failure_destinations(translated)
    readers, producer_ids = ledger_readers(translated), producers(translated)
    for function_id, role in roles.items():
        for managed in as_list(render(properties(translated, role).get("ManagedPolicyArns"))):
            problems.append(f"{role} ({function_id}): managed policy {managed} cannot be checked offline")
        worker = found.get(function_id)
        for grant in role_grants(translated, role):
            if grant.effect != "Allow":
                continue
            problems += _broad_grant_problems(grant)
            if "s3" in grant.services:
                problems += _s3_problems(grant, arns, worker, producer=function_id in producer_ids)
            if "sqs" in grant.services and function_id in readers:
                problems += _ledger_sqs_problems(grant, work_queues, dead_letter_queues(translated))
            elif "sqs" in grant.services:
                own = {destinations[function_id]} if function_id in destinations else set()
                problems += _sqs_problems(grant, worker, work_queues | own)
            if "dynamodb" in grant.services:
                role_kind = "worker" if worker else "producer" if function_id in producer_ids else "ledger"
                if function_id in readers:
                    role_kind = "ledger"
                problems += _dynamodb_problems(grant, role_kind, ledger_tables(translated))
    return problems


# What each kind of function may do in the ledger table, and which of its rows (LeadingKeys).
LEDGER_ACCESS: dict[str, tuple[set[str], tuple[str, ...] | None]] = {
    "worker": ({"dynamodb:batchgetitem", "dynamodb:putitem"}, ("ITEM#*",)),
    "producer": ({"dynamodb:putitem", "dynamodb:updateitem"}, ("JOB#*",)),
    "ledger": (
        {
            "dynamodb:getitem",
            "dynamodb:query",
            "dynamodb:putitem",
            "dynamodb:updateitem",
            "dynamodb:batchgetitem",
            "dynamodb:describestream",
            "dynamodb:getrecords",
            "dynamodb:getsharditerator",
            "dynamodb:liststreams",
        },
        None,
    ),
}


# The producer also queries a watch list's jobs (the `watch` index) and their counts, read only.
WATCH_QUERY_KEYS = ("JOB#*", "WATCH#*")

# A worker also reads and writes its API key's one rate-budget row, and no other.
RATE_BUDGET_KEYS = (("RATE#tikapi",), ("RATE#zyte",))
RATE_BUDGET_ACCESS = {"dynamodb:getitem", "dynamodb:putitem"}


def _dynamodb_problems(grant: Grant, role_kind: str, tables: set[str]) -> list[str]:
    """Only the ledger table (and its indexes and stream), only the actions its code uses, and
    for workers and the producer only their own kind of row."""
    allowed, keys = LEDGER_ACCESS[role_kind]
    if role_kind == "worker" and grant.leading_keys in RATE_BUDGET_KEYS:
        allowed, keys = RATE_BUDGET_ACCESS, grant.leading_keys  # the API key's rate budget row
    if role_kind == "producer" and grant.leading_keys == WATCH_QUERY_KEYS:
        allowed, keys = {"dynamodb:query"}, WATCH_QUERY_KEYS
    problems = []
    extra = {a.lower() for a in grant.actions if a.lower().startswith("dynamodb:")} - allowed
    if extra:
        problems.append(f"{grant.describe()}: a {role_kind} may not {sorted(extra)}")
    for resource in grant.resources:
        table = resource.split(".", 1)[0].strip("${}").split("/", 1)[0]
        if table not in tables:
            problems.append(f"{grant.describe()}: {resource!r} is not the ledger table")
    if keys is not None and grant.leading_keys != keys:
        problems.append(
            f"{grant.describe()}: a {role_kind} must be held to its {keys} rows (dynamodb:LeadingKeys)"
        )
    return problems


def _ledger_sqs_problems(grant: Grant, work_queues: set[str], dead_letter: set[str]) -> list[str]:
    """The ledger function peeks the DLQs (receive, show again) and reads the work queues'
    retention: it never sends or deletes a message."""
    problems = []
    actions = {a.lower() for a in grant.actions}
    if actions - {"sqs:receivemessage", "sqs:changemessagevisibility", "sqs:getqueueattributes"}:
        problems.append(f"{grant.describe()}: the ledger function may only peek queues")
    reads = actions & {"sqs:receivemessage", "sqs:changemessagevisibility"}
    for resource in grant.resources:
        queue = queue_of(resource)
        if queue not in dead_letter | work_queues or (reads and queue not in dead_letter):
            problems.append(f"{grant.describe()}: {resource!r}: the ledger function receives from DLQs only")
    return problems


def _broad_grant_problems(grant: Grant) -> list[str]:
    problems = []
    if grant.negated:
        problems.append(f"{grant.describe()}: NotAction/NotResource grants everything else")
    if any("*" in action for action in grant.actions):
        problems.append(f"{grant.describe()}: wildcard action")
    if "*" in grant.resources:
        problems.append(f"{grant.describe()}: Resource '*'")
    return problems


def _s3_problems(grant: Grant, arns: set[str], worker: Worker | None, producer: bool = False) -> list[str]:
    writes = any(not action.lower().startswith(("s3:get", "s3:list")) for action in grant.actions)
    listing_only = all(action.lower() == "s3:listbucket" for action in grant.actions)
    problems = []
    for resource in grant.resources:
        key = s3_key(resource, arns)
        if key == "" and listing_only:
            continue  # key names only; without it S3 answers a missing key with 403, not 404
        if key is not None and key.startswith("watch/"):
            if writes or not producer:
                problems.append(f"{grant.describe()}: only the producer may read watch/, and only read it")
            continue
        if key is None or not ALLOWED_KEY_PREFIX.match(key):
            problems.append(
                f"{grant.describe()}: {resource!r} is not under input/, jobs/ or "
                "output/platform=<p>/ of the data bucket"
            )
        elif worker is not None:
            own = f"output/platform={worker.platform}/"
            if worker.platform is None or ((key.startswith("output/") or writes) and not key.startswith(own)):
                problems.append(
                    f"{grant.describe()}: worker {worker.function} (PLATFORM {worker.platform!r}) "
                    f"may only write under {own}, not {key!r}"
                )
    return problems


def _sqs_problems(grant: Grant, worker: Worker | None, work_queues: set[str]) -> list[str]:
    problems = []
    for resource in grant.resources:
        queue = queue_of(resource)
        if worker is not None and queue != worker.queue:
            problems.append(f"{grant.describe()}: worker {worker.function} may touch only {worker.queue}")
        elif worker is None and queue not in work_queues:
            problems.append(
                f"{grant.describe()}: {resource!r} is neither a work queue nor the function's own "
                "failure destination (dead-letter queues are off limits)"
            )
    if worker is None and {
        action.lower() for action in grant.actions if action.lower().startswith("sqs:")
    } - {"sqs:sendmessage"}:
        problems.append(f"{grant.describe()}: only a worker may do more with a queue than sqs:SendMessage")
    return problems


def _allows(grants: list[Grant], action: str, covers: Callable[[str], bool]) -> bool:
    return any(
        grant.effect == "Allow"
        and not grant.negated
        and any(fnmatch.fnmatchcase(action.lower(), granted.lower()) for granted in grant.actions)
        and any(covers(resource) for resource in grant.resources)
        for grant in grants
    )


def check_required_access(translated: Template) -> list[str]:
    """The narrowing has not gone too far: each worker can consume (and back off on) its own queue
    and write its platform's output; each function the bucket notifies can send to every work queue
    and do what producer/store.py does with input/ and jobs/ (PRODUCER_S3_NEEDS)."""
    roles, problems = function_roles(translated)
    arns = data_bucket_arns(translated)
    grants = {function: role_grants(translated, role) for function, role in roles.items()}

    def on_queue(queue: str) -> Callable[[str], bool]:
        return lambda resource: queue_of(resource) == queue

    def on_key(key: str) -> Callable[[str], bool]:
        def covers(resource: str) -> bool:
            granted = s3_key(resource, arns)
            if granted is None or key == "":
                return granted == key
            return granted != "" and fnmatch.fnmatchcase(key, granted)

        return covers

    found = workers(translated)
    for worker in found:
        mine = grants.get(worker.function, [])
        for action in CONSUME_ACTIONS:
            if not _allows(mine, action, on_queue(worker.queue)):
                problems.append(f"{worker.function} (role {worker.role}) cannot {action} on {worker.queue}")
        record = f"output/platform={worker.platform}/kind=k/dt=2024-01-01/job-item.json"
        if not _allows(mine, "s3:PutObject", on_key(record)):
            problems.append(f"{worker.function} (role {worker.role}) cannot s3:PutObject {record}")
    tables = ledger_tables(translated)

    def on_table(resource: str) -> bool:
        return resource.split(".", 1)[0].strip("${}") in tables

    def on_stream(resource: str) -> bool:
        return on_table(resource) and resource.endswith("/stream/*")

    for worker in found:
        for action in ("dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:GetItem"):
            if not _allows(grants.get(worker.function, []), action, on_table):
                problems.append(f"{worker.function} (role {worker.role}) cannot {action} on the ledger")
    for reader in sorted(ledger_readers(translated)):
        mine = grants.get(reader, [])
        for action in ("dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:DescribeStream"):
            if not _allows(mine, action, on_stream):
                problems.append(f"{reader} (role {roles.get(reader)}) cannot {action} on the ledger's stream")
        for action in ("dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem", "events:PutEvents"):
            if not _allows(mine, action, lambda r: on_table(r) or r.endswith(":event-bus/default")):
                problems.append(f"{reader} (role {roles.get(reader)}) cannot {action}")
    for producer in sorted(producers(translated)):
        mine, role = grants.get(producer, []), roles.get(producer)
        if not _allows(mine, "dynamodb:UpdateItem", on_table):
            problems.append(
                f"{producer} (role {role}) cannot dynamodb:UpdateItem its job's row in the ledger"
            )
        for worker in found:
            if not _allows(mine, "sqs:SendMessage", on_queue(worker.queue)):
                problems.append(f"{producer} (role {role}) cannot sqs:SendMessage to {worker.queue}")
        for action, key, why in PRODUCER_S3_NEEDS:
            if not _allows(mine, action, on_key(key)):
                problems.append(
                    f"{producer} (role {role}) cannot {action} on {key or 'the data bucket'}: {why}"
                )
    return problems


def check_async_failures(translated: Template) -> list[str]:
    """Every function the bucket notifies (invoked asynchronously) keeps what Lambda could not
    process: an EventInvokeConfig whose on-failure destination is an SQS queue of this template,
    retries set by a parameter (MaxValue <= 2, Lambda's limit) that the function also reads as
    MAX_RETRY_ATTEMPTS, and a role that may send to that queue (Lambda sends with it)."""
    parameters = translated.get("Parameters", {})
    queues = resources_of_type(translated, "AWS::SQS::Queue")
    configs = {
        ref_target(c["Properties"].get("FunctionName")): c["Properties"]
        for c in resources_of_type(translated, "AWS::Lambda::EventInvokeConfig").values()
    }
    roles, problems = function_roles(translated)
    found = producers(translated)
    if not found:
        problems.append("no function is notified by the data bucket")
    for function_id in sorted(found):
        config = configs.get(function_id)
        if config is None:
            problems.append(
                f"{function_id}: no EventInvokeConfig, so an event whose retries ran out vanishes"
            )
            continue
        queue = failure_destinations(translated).get(function_id)
        if queue not in queues:
            problems.append(
                f"{function_id}: its EventInvokeConfig has no on-failure SQS queue of this template"
            )
        # SAM resolves the parameter into the config at translation; the function reads it as
        # MAX_RETRY_ATTEMPTS, so both must come from one parameter within Lambda's limit of 2.
        variables = properties(translated, function_id).get("Environment", {}).get("Variables", {})
        parameter = ref_target(variables.get("MAX_RETRY_ATTEMPTS"))
        ceiling = as_int(parameters.get(parameter, {}).get("MaxValue")) if parameter else None
        if parameter is None or ceiling is None or ceiling > 2:
            problems.append(
                f"{function_id}: MAX_RETRY_ATTEMPTS is not a parameter with MaxValue <= 2 (Lambda's limit)"
            )
        elif resolve_number(config.get("MaximumRetryAttempts"), parameters) != resolve_number(
            {"Ref": parameter}, parameters
        ):
            problems.append(
                f"{function_id}: EventInvokeConfig MaximumRetryAttempts is not {parameter}, "
                "so the producer cannot tell its last attempt"
            )
        role = roles.get(function_id)
        grants = role_grants(translated, role) if role else []
        if queue in queues and not _allows(grants, "sqs:SendMessage", _on_queue(queue)):
            problems.append(
                f"{function_id} (role {role}) cannot sqs:SendMessage to its failure queue {queue}"
            )
    return problems


def _on_queue(queue: str) -> Callable[[str], bool]:
    return lambda resource: queue_of(resource) == queue


def check_alarms(translated: Template) -> list[str]:
    """Every dead-letter queue and failure destination has an alarm that fires on its first
    message (ApproximateNumberOfMessagesVisible > 0 on that queue)."""
    alarmed = set()
    for alarm in resources_of_type(translated, "AWS::CloudWatch::Alarm").values():
        props = alarm.get("Properties", {})
        watches = (
            props.get("Namespace") == "AWS/SQS"
            and props.get("MetricName") == "ApproximateNumberOfMessagesVisible"
        )
        fires_on_one = (
            props.get("ComparisonOperator") == "GreaterThanThreshold" and as_int(props.get("Threshold")) == 0
        )
        if watches and fires_on_one:
            for dimension in as_list(props.get("Dimensions")):
                if dimension.get("Name") == "QueueName":
                    alarmed.add(getatt_target(dimension.get("Value"), "QueueName"))
    needed = dead_letter_queues(translated) | set(failure_destinations(translated).values())
    return [f"{queue}: no alarm fires when a message lands in it" for queue in sorted(needed - alarmed)]


def check_upstream_urls(translated: Template) -> list[str]:
    """The upstream URL parameters accept https only: a deployed worker never talks plain http."""
    problems = []
    for name in ("TikApiBaseUrl", "ZyteApiUrl"):
        parameter = translated.get("Parameters", {}).get(name, {})
        pattern = parameter.get("AllowedPattern")
        if not pattern:
            problems.append(f"{name}: no AllowedPattern, so any URL is accepted")
            continue
        compiled = re.compile(pattern)
        for url in ("http://127.0.0.1:8080", "http://api.example.com", "ftp://api.example.com"):
            if compiled.fullmatch(url):
                problems.append(f"{name}: AllowedPattern accepts {url}")
        if not compiled.fullmatch(str(parameter.get("Default", ""))):
            problems.append(f"{name}: AllowedPattern refuses its own Default")
    return problems


def check_schedules(translated: Template) -> list[str]:
    """Every EventBridge Scheduler schedule targets a function of this template, retries, keeps
    what it cannot deliver in a dead-letter queue with an alarm on it, is named after the stack,
    and its role may only invoke that function and send to that queue."""
    problems = []
    schedules = resources_of_type(translated, "AWS::Scheduler::Schedule")
    functions = resources_of_type(translated, "AWS::Lambda::Function")
    alarmed = {
        str(render(d.get("Value")))
        for alarm in resources_of_type(translated, "AWS::CloudWatch::Alarm").values()
        for d in alarm["Properties"].get("Dimensions", [])
    }
    for schedule_id, schedule in schedules.items():
        props = schedule["Properties"]
        target = props.get("Target", {})
        function = getatt_target(target.get("Arn"))
        queue = getatt_target(target.get("DeadLetterConfig", {}).get("Arn"))
        if function not in functions:
            problems.append(f"{schedule_id}: its target is not a function of this template")
        if queue is None:
            problems.append(f"{schedule_id}: no DeadLetterConfig, so a firing it cannot deliver is lost")
        elif f"{queue}.QueueName" not in alarmed:
            problems.append(f"{schedule_id}: no alarm watches its dead-letter queue {queue}")
        retry = target.get("RetryPolicy", {})
        if not retry.get("MaximumRetryAttempts"):
            problems.append(f"{schedule_id}: no RetryPolicy retries a firing that fails")
        if "${AWS::StackName}" not in str(render(props.get("Name"))):
            problems.append(f"{schedule_id}: its Name does not include the stack's, so two stacks collide")
        role = getatt_target(target.get("RoleArn"))
        if role is None:
            problems.append(f"{schedule_id}: no role of this template")
            continue
        allowed = {("lambda:invokefunction", f"{function}.Arn"), ("sqs:sendmessage", f"{queue}.Arn")}
        for grant in role_grants(translated, role):
            problems += _broad_grant_problems(grant)
            for action in grant.actions:
                for resource in grant.resources:
                    if (action.lower(), resource) not in allowed:
                        problems.append(
                            f"{grant.describe()}: the schedule's role may only invoke {function} "
                            f"and send to {queue}, not {action} on {resource}"
                        )
    return problems


CHECKS: dict[str, Check] = {
    "concurrency": check_concurrency,
    "partial_batch": check_partial_batch,
    "redrive": check_redrive,
    "bucket": check_bucket,
    "queue_encryption": check_queue_encryption,
    "least_privilege": check_least_privilege,
    "required_access": check_required_access,
    "async_failures": check_async_failures,
    "alarms": check_alarms,
    "upstream_urls": check_upstream_urls,
    "schedules": check_schedules,
}


# --------------------------------------------------------------------------- the real template


def test_template_translates_offline_into_functions_mappings_and_queues(translated: Template) -> None:
    types = {resource["Type"] for resource in translated["Resources"].values()}

    assert {"AWS::Lambda::Function", "AWS::Lambda::EventSourceMapping", "AWS::SQS::Queue"} <= types
    assert not any(t.startswith("AWS::Serverless::") for t in types)
    assert workers(translated), "no worker reads an SQS queue"
    assert all(worker.platform for worker in workers(translated)), "a worker has no PLATFORM variable"


def test_cfn_lint_reports_no_errors(lint_matches: list[Any]) -> None:
    errors = [
        f"{match.rule.id} line {match.linenumber}: {match.message}"
        for match in lint_matches
        if match.rule.severity == "error"
    ]

    assert errors == []


@pytest.mark.parametrize("check", CHECKS.values(), ids=CHECKS.keys())
def test_template_passes(translated: Template, check: Check) -> None:
    problems = check(translated)

    assert not problems, "\n".join(problems)


def test_grants_render_intrinsics_readably(translated: Template) -> None:
    worker = workers(translated)[0]
    assert worker.role is not None

    grants = role_grants(translated, worker.role)

    assert any(f"{worker.queue}.Arn" in grant.resources for grant in grants)
    assert any(
        resource.startswith("arn:${AWS::Partition}:s3:::")
        and resource.endswith(f"/output/platform={worker.platform}/*")
        for grant in grants
        for resource in grant.resources
    )


# --------------------------------------------------------------------------- mutations: the checks bite


@dataclass
class SamWorker:
    """One worker as written in template.yaml (before translation), for mutating in place."""

    function: str
    props: dict[str, Any]
    event: dict[str, Any]  # the SQS event's Properties
    queue_id: str
    queue: dict[str, Any]
    role_id: str
    role: dict[str, Any]

    @property
    def platform(self) -> str:
        return str(self.props["Environment"]["Variables"]["PLATFORM"])

    @property
    def dead_letter_queue(self) -> str:
        return str(dead_letter_target(self.queue))


def sam_workers(template: Template) -> list[SamWorker]:
    found = []
    for function_id, function in resources_of_type(template, "AWS::Serverless::Function").items():
        props = function["Properties"]
        for event in props.get("Events", {}).values():
            if event["Type"] == "SQS":
                queue, role = getatt_target(event["Properties"]["Queue"]), getatt_target(props["Role"])
                assert queue and role, f"{function_id}: queue or role is not a GetAtt"
                found.append(
                    SamWorker(
                        function_id,
                        props,
                        event["Properties"],
                        queue,
                        properties(template, queue),
                        role,
                        properties(template, role),
                    )
                )
    return found


def sam_statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    statements = []
    for policy in role.get("Policies", []):
        document = policy["PolicyDocument"]
        document["Statement"] = as_list(document["Statement"])
        statements += document["Statement"]
    return statements


def sam_statement(role: dict[str, Any], action_prefix: str) -> dict[str, Any]:
    for statement in sam_statements(role):
        if any(str(action).startswith(action_prefix) for action in as_list(statement.get("Action"))):
            return statement
    raise LookupError(f"no statement grants {action_prefix}*")


def sam_producer_role(template: Template) -> tuple[str, dict[str, Any]]:
    for function in resources_of_type(template, "AWS::Serverless::Function").values():
        if any(event["Type"] == "S3" for event in function["Properties"].get("Events", {}).values()):
            role = str(getatt_target(function["Properties"]["Role"]))
            return role, properties(template, role)
    raise LookupError("no function is triggered by S3")


def first_bucket(template: Template) -> tuple[str, dict[str, Any]]:
    bucket_id = next(iter(resources_of_type(template, "AWS::S3::Bucket")))
    return bucket_id, properties(template, bucket_id)


# Each mutation breaks one setting of one worker (or of what it relies on) in a copy of the loaded
# template and returns the logical id the check's problem must name.
Mutation = Callable[[Template, SamWorker], str]


def _worker_resource_star(template: Template, worker: SamWorker) -> str:
    sam_statement(worker.role, "sqs:")["Resource"] = "*"
    return worker.role_id


def _worker_service_wildcard(template: Template, worker: SamWorker) -> str:
    sam_statement(worker.role, "sqs:")["Action"] = "sqs:*"
    return worker.role_id


def _worker_whole_bucket(template: Template, worker: SamWorker) -> str:
    bucket_id, _ = first_bucket(template)
    sam_statement(worker.role, "s3:")["Resource"] = {
        "Fn::Sub": f"arn:${{AWS::Partition}}:s3:::${{{bucket_id}}}/*"
    }
    return worker.role_id


def _worker_writes_other_platform(template: Template, worker: SamWorker) -> str:
    statement = sam_statement(worker.role, "s3:")
    own = f"output/platform={worker.platform}/"
    resource = str(render(statement["Resource"]))
    assert own in resource
    statement["Resource"] = {"Fn::Sub": resource.replace(own, "output/platform=elsewhere/")}
    return worker.role_id


def _worker_reads_dead_letter_queue(template: Template, worker: SamWorker) -> str:
    statement = sam_statement(worker.role, "sqs:")
    statement["Resource"] = [
        *as_list(statement["Resource"]),
        {"Fn::GetAtt": [worker.dead_letter_queue, "Arn"]},
    ]
    return worker.role_id


def _worker_managed_policy(template: Template, worker: SamWorker) -> str:
    worker.role["ManagedPolicyArns"] = ["arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole"]
    return worker.role_id


def _producer_sends_to_dead_letter_queue(template: Template, worker: SamWorker) -> str:
    role_id, role = sam_producer_role(template)
    statement = sam_statement(role, "sqs:SendMessage")
    statement["Resource"] = [
        *as_list(statement["Resource"]),
        {"Fn::GetAtt": [worker.dead_letter_queue, "Arn"]},
    ]
    return role_id


def _producer_reads_whole_bucket(template: Template, worker: SamWorker) -> str:
    role_id, role = sam_producer_role(template)
    bucket_id, _ = first_bucket(template)
    sam_statement(role, "s3:")["Resource"] = {"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::${{{bucket_id}}}/*"}
    return role_id


def _no_redrive(template: Template, worker: SamWorker) -> str:
    del worker.queue["RedrivePolicy"]
    return worker.queue_id


def _no_max_receive_count(template: Template, worker: SamWorker) -> str:
    del worker.queue["RedrivePolicy"]["maxReceiveCount"]
    return worker.queue_id


def _dead_letter_queue_elsewhere(template: Template, worker: SamWorker) -> str:
    worker.queue["RedrivePolicy"]["deadLetterTargetArn"] = "arn:aws:sqs:us-east-1:123456789012:elsewhere"
    return worker.queue_id


def _short_visibility_timeout(template: Template, worker: SamWorker) -> str:
    timeout = worker.props.get("Timeout", template.get("Globals", {}).get("Function", {}).get("Timeout", 3))
    worker.queue["VisibilityTimeout"] = 6 * int(timeout) - 1
    return worker.queue_id


def _visibility_without_the_window(template: Template, worker: SamWorker) -> str:
    """The longest window's visibility left at 6 x Timeout, as if the window were not there."""
    for row in template["Mappings"]["QueueVisibility"].values():
        for column in row:
            row[column] = template["Mappings"]["QueueVisibility"]["0"][column]
    return worker.queue_id


def _short_dead_letter_retention(template: Template, worker: SamWorker) -> str:
    properties(template, worker.dead_letter_queue)["MessageRetentionPeriod"] = 60
    return worker.queue_id


def _queue_without_worker(template: Template, worker: SamWorker) -> str:
    worker.props["Events"] = {k: v for k, v in worker.props["Events"].items() if v["Type"] != "SQS"}
    return worker.queue_id


def _no_scaling_config(template: Template, worker: SamWorker) -> str:
    del worker.event["ScalingConfig"]
    return worker.function


def _concurrency_floor_one(template: Template, worker: SamWorker) -> str:
    parameter = ref_target(worker.event["ScalingConfig"]["MaximumConcurrency"])
    template["Parameters"][parameter]["MinValue"] = 1
    return worker.function


def _no_batch_size(template: Template, worker: SamWorker) -> str:
    del worker.event["BatchSize"]
    return worker.function


def _no_report_batch_item_failures(template: Template, worker: SamWorker) -> str:
    del worker.event["FunctionResponseTypes"]
    return worker.function


def _public_access_flag_off(template: Template, worker: SamWorker) -> str:
    bucket_id, bucket = first_bucket(template)
    bucket["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] = False
    return bucket_id


def _no_bucket_encryption(template: Template, worker: SamWorker) -> str:
    bucket_id, bucket = first_bucket(template)
    del bucket["BucketEncryption"]
    return bucket_id


def _no_tls_only_policy(template: Template, worker: SamWorker) -> str:
    bucket_id, _ = first_bucket(template)
    for policy_id in list(resources_of_type(template, "AWS::S3::BucketPolicy")):
        del template["Resources"][policy_id]
    return bucket_id


def _dead_letter_queue_unencrypted(template: Template, worker: SamWorker) -> str:
    properties(template, worker.dead_letter_queue)["SqsManagedSseEnabled"] = False
    return worker.dead_letter_queue


def _worker_cannot_back_off(template: Template, worker: SamWorker) -> str:
    statement = sam_statement(worker.role, "sqs:")
    statement["Action"] = [a for a in as_list(statement["Action"]) if a != "sqs:ChangeMessageVisibility"]
    return worker.role_id


def _producer_cannot_fan_out(template: Template, worker: SamWorker) -> str:
    role_id, role = sam_producer_role(template)
    statement = sam_statement(role, "sqs:SendMessage")
    statement["Resource"] = [r for r in as_list(statement["Resource"]) if getatt_target(r) != worker.queue_id]
    if not statement["Resource"]:
        for policy in role["Policies"]:
            policy["PolicyDocument"]["Statement"] = [
                s for s in policy["PolicyDocument"]["Statement"] if s is not statement
            ]
    return role_id


def _worker_cannot_write_output(template: Template, worker: SamWorker) -> str:
    sam_statement(worker.role, "s3:")["Action"] = "s3:GetObject"
    return worker.role_id


def _object_action_on_bucket_arn(template: Template, worker: SamWorker) -> str:
    bucket_id, _ = first_bucket(template)
    sam_statement(worker.role, "s3:")["Resource"] = {"Fn::GetAtt": [bucket_id, "Arn"]}
    return worker.role_id


def _sam_producer(template: Template) -> tuple[str, dict[str, Any]]:
    for function_id, function in resources_of_type(template, "AWS::Serverless::Function").items():
        if any(event["Type"] == "S3" for event in function["Properties"].get("Events", {}).values()):
            return function_id, function["Properties"]
    raise LookupError("no function is triggered by S3")


def _producer_without_failure_destination(template: Template, worker: SamWorker) -> str:
    function_id, props = _sam_producer(template)
    del props["EventInvokeConfig"]["DestinationConfig"]
    return function_id


def _producer_retries_disagree(template: Template, worker: SamWorker) -> str:
    function_id, props = _sam_producer(template)
    props["EventInvokeConfig"]["MaximumRetryAttempts"] = 1
    return function_id


def _producer_cannot_reach_failure_queue(template: Template, worker: SamWorker) -> str:
    function_id, _ = _sam_producer(template)
    _, role = sam_producer_role(template)
    for policy in role["Policies"]:
        policy["PolicyDocument"]["Statement"] = [
            s for s in policy["PolicyDocument"]["Statement"] if s.get("Sid") != "FailureDestination"
        ]
    return function_id


def _failure_queue_without_alarm(template: Template, worker: SamWorker) -> str:
    _, props = _sam_producer(template)
    queue = str(getatt_target(props["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Destination"]))
    for alarm_id, alarm in list(resources_of_type(template, "AWS::CloudWatch::Alarm").items()):
        if queue in json.dumps(alarm):
            del template["Resources"][alarm_id]
    return queue


def _dead_letter_queue_without_alarm(template: Template, worker: SamWorker) -> str:
    for alarm_id, alarm in list(resources_of_type(template, "AWS::CloudWatch::Alarm").items()):
        if f'"{worker.dead_letter_queue}"' in json.dumps(alarm):
            del template["Resources"][alarm_id]
    return worker.dead_letter_queue


def _worker_writes_every_ledger_row(template: Template, worker: SamWorker) -> str:
    del sam_statement(worker.role, "dynamodb:")["Condition"]
    return worker.role_id


def _producer_deletes_ledger_rows(template: Template, worker: SamWorker) -> str:
    role_id, role = sam_producer_role(template)
    sam_statement(role, "dynamodb:")["Action"] = [
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    ]
    return role_id


def _ledger_deletes_dead_letters(template: Template, worker: SamWorker) -> str:
    role = properties(template, "LedgerRole")
    statement = next(st for st in sam_statements(role) if st.get("Sid") == "PeekDeadLetters")
    statement["Action"] = [*as_list(statement["Action"]), "sqs:DeleteMessage"]
    return "LedgerRole"


def _ledger_cannot_read_its_stream(template: Template, worker: SamWorker) -> str:
    role = properties(template, "LedgerRole")
    for policy in role["Policies"]:
        policy["PolicyDocument"]["Statement"] = [
            st for st in policy["PolicyDocument"]["Statement"] if st.get("Sid") != "ReadItemChanges"
        ]
    return "LedgerFunction"


def _upstream_url_allows_http(template: Template, worker: SamWorker) -> str:
    template["Parameters"]["TikApiBaseUrl"]["AllowedPattern"] = "^https?://.+$"
    return "TikApiBaseUrl"


def _schedule(template: Template) -> tuple[str, dict[str, Any]]:
    ((schedule_id, schedule),) = resources_of_type(template, "AWS::Scheduler::Schedule").items()
    return schedule_id, schedule["Properties"]


def _schedule_role_reads_queues(template: Template, worker: SamWorker) -> str:
    _, props = _schedule(template)
    role_id = props["Target"]["RoleArn"]["Fn::GetAtt"][0]
    statements = template["Resources"][role_id]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    statements.append(
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": {"Fn::GetAtt": [worker.queue_id, "Arn"]}}
    )
    return role_id


def _schedule_without_dead_letter_queue(template: Template, worker: SamWorker) -> str:
    schedule_id, props = _schedule(template)
    del props["Target"]["DeadLetterConfig"]
    return schedule_id


def _schedule_without_retries(template: Template, worker: SamWorker) -> str:
    schedule_id, props = _schedule(template)
    del props["Target"]["RetryPolicy"]
    return schedule_id


MUTATIONS: list[tuple[str, Mutation, Check]] = [
    ("schedule_role_sends_to_work_queue", _schedule_role_reads_queues, check_schedules),
    ("schedule_without_dead_letter_queue", _schedule_without_dead_letter_queue, check_schedules),
    ("schedule_without_retries", _schedule_without_retries, check_schedules),
    ("worker_resource_star", _worker_resource_star, check_least_privilege),
    ("worker_service_wildcard", _worker_service_wildcard, check_least_privilege),
    ("worker_whole_bucket", _worker_whole_bucket, check_least_privilege),
    ("worker_writes_other_platform", _worker_writes_other_platform, check_least_privilege),
    ("worker_reads_dead_letter_queue", _worker_reads_dead_letter_queue, check_least_privilege),
    ("worker_managed_policy", _worker_managed_policy, check_least_privilege),
    ("object_action_on_bucket_arn", _object_action_on_bucket_arn, check_least_privilege),
    ("producer_sends_to_dead_letter_queue", _producer_sends_to_dead_letter_queue, check_least_privilege),
    ("producer_reads_whole_bucket", _producer_reads_whole_bucket, check_least_privilege),
    ("no_redrive", _no_redrive, check_redrive),
    ("no_max_receive_count", _no_max_receive_count, check_redrive),
    ("dead_letter_queue_elsewhere", _dead_letter_queue_elsewhere, check_redrive),
    ("short_visibility_timeout", _short_visibility_timeout, check_redrive),
    ("visibility_without_the_window", _visibility_without_the_window, check_redrive),
    ("short_dead_letter_retention", _short_dead_letter_retention, check_redrive),
    ("queue_without_worker", _queue_without_worker, check_redrive),
    ("no_scaling_config", _no_scaling_config, check_concurrency),
    ("concurrency_floor_one", _concurrency_floor_one, check_concurrency),
    ("no_batch_size", _no_batch_size, check_concurrency),
    ("no_report_batch_item_failures", _no_report_batch_item_failures, check_partial_batch),
    ("public_access_flag_off", _public_access_flag_off, check_bucket),
    ("no_bucket_encryption", _no_bucket_encryption, check_bucket),
    ("no_tls_only_policy", _no_tls_only_policy, check_bucket),
    ("dead_letter_queue_unencrypted", _dead_letter_queue_unencrypted, check_queue_encryption),
    ("worker_cannot_back_off", _worker_cannot_back_off, check_required_access),
    ("producer_cannot_fan_out", _producer_cannot_fan_out, check_required_access),
    ("worker_cannot_write_output", _worker_cannot_write_output, check_required_access),
    ("producer_without_failure_destination", _producer_without_failure_destination, check_async_failures),
    ("producer_retries_disagree", _producer_retries_disagree, check_async_failures),
    ("producer_cannot_reach_failure_queue", _producer_cannot_reach_failure_queue, check_async_failures),
    ("failure_queue_without_alarm", _failure_queue_without_alarm, check_alarms),
    ("dead_letter_queue_without_alarm", _dead_letter_queue_without_alarm, check_alarms),
    ("upstream_url_allows_http", _upstream_url_allows_http, check_upstream_urls),
    ("worker_writes_every_ledger_row", _worker_writes_every_ledger_row, check_least_privilege),
    ("producer_deletes_ledger_rows", _producer_deletes_ledger_rows, check_least_privilege),
    ("ledger_deletes_dead_letters", _ledger_deletes_dead_letters, check_least_privilege),
    ("ledger_cannot_read_its_stream", _ledger_cannot_read_its_stream, check_required_access),
]


@pytest.mark.parametrize(
    ("mutate", "check"), [(m, c) for _, m, c in MUTATIONS], ids=[n for n, _, _ in MUTATIONS]
)
def test_check_reports_mutation(sam_template: Template, mutate: Mutation, check: Check) -> None:
    for index in range(len(sam_workers(sam_template))):
        mutant = copy.deepcopy(sam_template)
        named = mutate(mutant, sam_workers(mutant)[index])

        problems = check(translate(mutant))

        assert any(named in problem for problem in problems), problems


def test_every_widened_worker_statement_is_caught(sam_template: Template) -> None:
    for index, worker in enumerate(sam_workers(copy.deepcopy(sam_template))):
        for position, statement in enumerate(sam_statements(worker.role)):
            if statement.get("Effect") != "Allow":
                continue
            mutant = copy.deepcopy(sam_template)
            sam_statements(sam_workers(mutant)[index].role)[position]["Resource"] = "*"

            problems = check_least_privilege(translate(mutant))

            assert any(worker.role_id in p and "Resource '*'" in p for p in problems), (statement, problems)


def test_listing_the_bucket_is_the_one_bucket_level_grant_allowed(sam_template: Template) -> None:
    mutant = copy.deepcopy(sam_template)
    bucket_id, _ = first_bucket(mutant)
    role_id, role = sam_producer_role(mutant)
    listing = {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": {"Fn::GetAtt": [bucket_id, "Arn"]}}
    role["Policies"][0]["PolicyDocument"]["Statement"].append(listing)
    allowed = check_least_privilege(translate(mutant))
    listing["Action"] = ["s3:ListBucket", "s3:GetObject"]

    widened = check_least_privilege(translate(mutant))

    assert not any(role_id in problem for problem in allowed), allowed
    assert any(role_id in problem for problem in widened), widened


# --------------------------------------------------------------------------- API key sources

SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:trawl/{vendor}-key-AbCdEf"
KEY_VARIABLES = {"tiktok": "TIKAPI_KEY", "tokopedia": "ZYTE_KEY", "shopee": "ZYTE_KEY", "lazada": "ZYTE_KEY"}


def resolve_conditions(template: Template, parameters: dict[str, str]) -> Template:
    """The template as CloudFormation sees it for these parameter values: every Fn::If replaced
    by its chosen branch, AWS::NoValue dropped (enough of CloudFormation for this template)."""
    values = {name: str(p.get("Default", "")) for name, p in template.get("Parameters", {}).items()}
    values |= parameters

    def holds(expression: Any) -> bool:
        ((key, arg),) = expression.items()
        if key == "Fn::Not":
            return not holds(arg[0])
        if key == "Fn::Equals":
            return bool(value(arg[0]) == value(arg[1]))
        if key == "Condition":
            return holds(template["Conditions"][arg])
        raise AssertionError(f"condition function {key} not handled here")

    def value(node: Any) -> Any:
        if isinstance(node, dict) and set(node) == {"Ref"} and node["Ref"] in values:
            return values[node["Ref"]]
        return node

    no_value = object()

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if set(node) == {"Fn::If"}:
                condition, yes, no = node["Fn::If"]
                return walk(yes if holds(template["Conditions"][condition]) else no)
            if node == {"Ref": "AWS::NoValue"}:
                return no_value
            walked = {key: walk(item) for key, item in node.items()}
            return {key: item for key, item in walked.items() if item is not no_value}
        if isinstance(node, list):
            return [item for item in (walk(item) for item in node) if item is not no_value]
        return node

    resolved: Template = walk(template)
    return resolved


def key_access(
    translated: Template, parameters: dict[str, str]
) -> dict[str, tuple[dict[str, str], set[tuple[str, str]]]]:
    """platform -> (its worker's key variables, the (action, resource) grants on SSM/Secrets Manager)."""
    deployed = resolve_conditions(translated, parameters)
    roles, _ = function_roles(deployed)
    found = {}
    for worker in workers(deployed):
        assert worker.platform is not None
        variables = properties(deployed, worker.function)["Environment"]["Variables"]
        keys = {
            name: str(render(v)) for name, v in variables.items() if name.endswith(("_PARAMETER", "_SECRET"))
        }
        grants = {
            (action, resource)
            for grant in role_grants(deployed, roles[worker.function])
            for action in grant.actions
            for resource in grant.resources
            if grant.services & {"ssm", "secretsmanager"}
        }
        found[worker.platform] = (keys, grants)
    return found


def test_by_default_each_worker_reads_its_vendor_key_from_ssm_only(translated: Template) -> None:
    access = key_access(translated, {})
    assert set(access) == set(KEY_VARIABLES)
    for platform, (keys, grants) in access.items():
        vendor = KEY_VARIABLES[platform]
        parameter = "${TikApiKeyParameter}" if vendor == "TIKAPI_KEY" else "${ZyteKeyParameter}"
        assert keys == {f"{vendor}_PARAMETER": parameter}, platform
        arn = f"arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter{parameter}"
        assert grants == {("ssm:GetParameter", arn)}, platform


def test_with_a_secret_arn_a_worker_reads_only_that_secret(translated: Template) -> None:
    tikapi, zyte = SECRET_ARN.format(vendor="tikapi"), SECRET_ARN.format(vendor="zyte")
    for parameters in ({"TikApiKeySecretArn": tikapi}, {"ZyteKeySecretArn": zyte}):
        for platform, (keys, grants) in key_access(translated, parameters).items():
            vendor = KEY_VARIABLES[platform]
            secret = "TikApiKeySecretArn" if vendor == "TIKAPI_KEY" else "ZyteKeySecretArn"
            if secret in parameters:
                assert keys == {f"{vendor}_SECRET": f"${{{secret}}}"}, platform
                assert grants == {("secretsmanager:GetSecretValue", f"${{{secret}}}")}, platform
            else:  # the other vendor's workers keep reading SSM
                assert keys.keys() == {f"{vendor}_PARAMETER"}, platform
                assert {action for action, _ in grants} == {"ssm:GetParameter"}, platform


def test_secret_arn_parameters_accept_only_secrets_manager_arns(sam_template: Template) -> None:
    for name in ("TikApiKeySecretArn", "ZyteKeySecretArn"):
        pattern = re.compile(sam_template["Parameters"][name]["AllowedPattern"])
        assert pattern.match("") and pattern.match(SECRET_ARN.format(vendor="x"))
        assert not pattern.match("*")
        assert not pattern.match("arn:aws:ssm:us-east-1:123456789012:parameter/trawl/tikapi-key")
        assert not pattern.match("arn:aws:secretsmanager:us-east-1:123456789012:secret:*")
