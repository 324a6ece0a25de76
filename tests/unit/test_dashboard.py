"""The stack's CloudWatch dashboard (template.yaml, the AWS::CloudWatch::Dashboard) names only
metrics that exist: the workers' own, exactly as workers/batch.py publishes them (namespace, name,
dimensions and their values), or one AWS publishes for a queue or a function of this stack. And
it shows every platform's queues, items and worker, and the producer's failures. What the
workers publish is read from their EMF output, not listed here; mutation tests prove each check
bites."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from tests.conftest import load_event
from tests.unit.test_template import (
    Template,
    dead_letter_target,
    failure_destinations,
    producers,
    properties,
    render,
    resources_of_type,
    workers,
)
from trawl.local.template import load_template, translate
from workers.batch import BatchDeps, process_batch
from workers.output import RecordWriter
from workers.settings import WorkerSettings

# What AWS publishes, by namespace: the dimension that names the resource, the resource's type,
# how a dashboard's !Sub spells a resource of this stack, and the metric names (the SQS and
# Lambda developer guides' lists of the metrics each service sends to CloudWatch).
AWS_METRICS: dict[str, tuple[str, str, re.Pattern[str], frozenset[str]]] = {
    "AWS/SQS": (
        "QueueName",
        "AWS::SQS::Queue",
        re.compile(r"^\$\{(\w+)\.QueueName\}$"),
        frozenset(
            {
                "ApproximateAgeOfOldestMessage",
                "ApproximateNumberOfMessagesDelayed",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesVisible",
                "NumberOfEmptyReceives",
                "NumberOfDeduplicatedSentMessages",
                "NumberOfMessagesDeleted",
                "NumberOfMessagesReceived",
                "NumberOfMessagesSent",
                "SentMessageSize",
            }
        ),
    ),
    "AWS/Lambda": (
        "FunctionName",
        "AWS::Lambda::Function",
        re.compile(r"^\$\{(\w+)\}$"),
        frozenset(
            {
                "Invocations",
                "Errors",
                "Throttles",
                "Duration",
                "ConcurrentExecutions",
                "IteratorAge",
                "DeadLetterErrors",
                "DestinationDeliveryFailures",
                "AsyncEventsReceived",
                "AsyncEventAge",
                "AsyncEventsDropped",
                "RecursiveInvocationsDropped",
            }
        ),
    ),
}
# The worker settings that shape its metrics, and the two it cannot start without, read from
# each worker's environment in the template (the others are parameters, irrelevant here).
METRIC_SETTINGS = ("PLATFORM", "STACK_NAME", "DATA_BUCKET", "QUEUE_URL")
# What an operator needs of each work queue and each worker function, besides the items.
QUEUE_METRICS = (
    "ApproximateNumberOfMessagesVisible",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateAgeOfOldestMessage",
)
WORKER_METRICS = ("Errors", "Throttles", "Duration", "ConcurrentExecutions")


@dataclass(frozen=True)
class Metric:
    namespace: str
    name: str
    dimensions: frozenset[tuple[str, str]]

    def __str__(self) -> str:
        dims = ", ".join(f"{k}={v}" for k, v in sorted(self.dimensions))
        return f"{self.namespace} {self.name} [{dims}]"


# --------------------------------------------------------------------------- what the code publishes


def _settings(translated: Template, function: str) -> WorkerSettings:
    variables = properties(translated, function).get("Environment", {}).get("Variables", {})
    env = {name: str(render(variables[name])) for name in METRIC_SETTINGS if name in variables}
    return WorkerSettings.from_env(env)


def _emf_of_one_batch(settings: WorkerSettings) -> list[dict[str, Any]]:
    """The EMF documents a worker prints for one batch. Whatever a batch holds, an invocation
    publishes every count it keeps; a message that is no work item reaches neither an upstream
    nor AWS."""
    event = load_event(
        "sqs_tiktok_account.json", queue_arn="q", message_id="m", receipt_handle="r", body='"x"'
    )
    writer = RecordWriter(boto3.client("s3", region_name="us-east-1"), settings.data_bucket, "json")
    deps = BatchDeps(settings=settings, fetchers={}, writer=writer, sqs=None)
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as env, contextlib.redirect_stdout(out):
        env.setenv("POWERTOOLS_METRICS_DISABLED", "false")
        env.delenv("POWERTOOLS_METRICS_NAMESPACE", raising=False)
        asyncio.run(process_batch(event, lambda: 60_000, deps))
    documents = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    return [doc for doc in documents if "_aws" in doc]


def published_metrics(translated: Template) -> set[Metric]:
    """Every metric each worker of the template publishes, dimension values included: the stack's
    name comes out as ${AWS::StackName} when the worker's STACK_NAME is !Ref AWS::StackName."""
    found: set[Metric] = set()
    for worker in workers(translated):
        documents = _emf_of_one_batch(_settings(translated, worker.function))
        assert documents, f"{worker.function} published no metrics"
        for doc in documents:
            for directive in doc["_aws"]["CloudWatchMetrics"]:
                for names in directive["Dimensions"]:
                    dimensions = frozenset((name, str(doc[name])) for name in names)
                    found |= {
                        Metric(directive["Namespace"], m["Name"], dimensions) for m in directive["Metrics"]
                    }
    return found


# --------------------------------------------------------------------------- what the dashboard shows


def _dashboard(translated: Template) -> dict[str, Any]:
    [dashboard] = resources_of_type(translated, "AWS::CloudWatch::Dashboard").values()
    props: dict[str, Any] = dashboard["Properties"]
    return props


def dashboard_body(translated: Template) -> dict[str, Any]:
    """The DashboardBody's JSON, with parameters at their Default (they stand unquoted, as
    numbers); ${AWS::...} and resource references stay as written."""
    text = _dashboard(translated)["DashboardBody"]["Fn::Sub"]
    parameters = translated.get("Parameters", {})

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        return str(parameters[name]["Default"]) if name in parameters else match.group(0)

    body: dict[str, Any] = json.loads(re.sub(r"\$\{([\w:.]+)\}", fill, text))
    return body


def set_dashboard_body(translated: Template, body: dict[str, Any]) -> None:
    _dashboard(translated)["DashboardBody"]["Fn::Sub"] = json.dumps(body)


def _metric_widgets(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [w["properties"] for w in body.get("widgets", []) if w.get("type") == "metric"]


def shown_metrics(body: dict[str, Any]) -> tuple[list[tuple[str, Metric]], list[str]]:
    """(widget title, metric) for every metric row of the dashboard; and the rows that are not
    a metric at all (CloudWatch's "." shorthand and metric math are not used here)."""
    shown, problems = [], []
    for widget in _metric_widgets(body):
        title = widget.get("title", "?")
        for row in widget.get("metrics", []):
            names = [part for part in row if not isinstance(part, dict)]
            if len(names) < 2 or len(names) % 2 or not all(isinstance(n, str) for n in names):
                problems.append(f"{title}: {row} is not namespace, name and dimension pairs")
                continue
            dimensions = frozenset(zip(names[2::2], names[3::2], strict=True))
            shown.append((title, Metric(names[0], names[1], dimensions)))
    return shown, problems


# --------------------------------------------------------------------------- checks


def _aws_problem(translated: Template, metric: Metric) -> str | None:
    """Why AWS does not publish `metric` for a resource of this stack (None: it does)."""
    dimension, resource_type, spelled, names = AWS_METRICS[metric.namespace]
    if metric.name not in names:
        return f"AWS publishes no {metric.name} in {metric.namespace}"
    if {name for name, _ in metric.dimensions} != {dimension}:
        return f"{metric.namespace} metrics are shown by {dimension} alone"
    [(_, value)] = metric.dimensions
    match = spelled.match(value)
    resource = translated["Resources"].get(match.group(1), {}) if match else {}
    if resource.get("Type") != resource_type:
        return f"{dimension} {value} is no {resource_type} of this stack"
    return None


def check_metrics(translated: Template, published: set[Metric]) -> list[str]:
    """Every metric on the dashboard is one the workers publish or one AWS publishes for this
    stack's queues and functions, in the stack's own region."""
    body = dashboard_body(translated)
    shown, problems = shown_metrics(body)
    for widget in _metric_widgets(body):
        if widget.get("region") != "${AWS::Region}":
            problems.append(f"{widget.get('title')}: region {widget.get('region')!r}, not ${{AWS::Region}}")
    for title, metric in shown:
        if metric in published:
            continue
        if metric.namespace in AWS_METRICS:
            why = _aws_problem(translated, metric)
            if why:
                problems.append(f"{title}: {metric}: {why}")
            continue
        platform = dict(metric.dimensions).get("platform")
        alike = sorted(
            str(m)
            for m in published
            if (m.namespace, m.name) == (metric.namespace, metric.name)
            and dict(m.dimensions).get("platform") == platform
        )
        hint = f"the workers publish {alike}" if alike else "no worker publishes it"
        problems.append(f"{title}: {metric}: {hint}")
    return problems


def _sqs(queue: str, name: str) -> Metric:
    return Metric("AWS/SQS", name, frozenset({("QueueName", f"${{{queue}.QueueName}}")}))


def _lambda(function: str, name: str) -> Metric:
    return Metric("AWS/Lambda", name, frozenset({("FunctionName", f"${{{function}}}")}))


def check_coverage(translated: Template, published: set[Metric]) -> list[str]:
    """The dashboard shows, per worker: its queue's depth (visible and in flight) and oldest
    message, its DLQ's depth, every metric the worker publishes, its function's errors,
    throttles, duration and concurrency; and the producer's errors and its failure queue's depth."""
    needed = set(published)
    for worker in workers(translated):
        for name in QUEUE_METRICS:
            needed.add(_sqs(worker.queue, name))
        dlq = dead_letter_target(properties(translated, worker.queue))
        if dlq:
            needed.add(_sqs(dlq, "ApproximateNumberOfMessagesVisible"))
        for name in WORKER_METRICS:
            needed.add(_lambda(worker.function, name))
    destinations = failure_destinations(translated)
    for producer in producers(translated):
        needed.add(_lambda(producer, "Errors"))
        if producer in destinations:
            needed.add(_sqs(destinations[producer], "ApproximateNumberOfMessagesVisible"))
    shown = {metric for _, metric in shown_metrics(dashboard_body(translated))[0]}
    return [f"not on the dashboard: {metric}" for metric in sorted(needed - shown, key=str)]


# --------------------------------------------------------------------------- the real template


@pytest.fixture(scope="module")
def translated() -> Template:
    return translate(load_template())


@pytest.fixture(scope="module")
def published(translated: Template) -> set[Metric]:
    return published_metrics(translated)


def test_workers_publish_per_platform_and_stack(translated: Template, published: set[Metric]) -> None:
    platforms = {worker.platform for worker in workers(translated)}
    emitted = {dict(m.dimensions).get("platform") for m in published}
    stacks = {dict(m.dimensions).get("stack") for m in published}

    assert platforms == {"tiktok", "tokopedia", "shopee", "lazada"} == emitted
    assert stacks == {"${AWS::StackName}"}, "a worker's STACK_NAME is not the stack's name"


def test_dashboard_is_named_after_the_stack_and_region(translated: Template) -> None:
    name = render(_dashboard(translated)["DashboardName"])

    assert "${AWS::StackName}" in name and "${AWS::Region}" in name


def test_dashboard_names_only_published_metrics(translated: Template, published: set[Metric]) -> None:
    problems = check_metrics(translated, published)

    assert not problems, "\n".join(problems)


def test_dashboard_shows_every_platform_and_the_producer(
    translated: Template, published: set[Metric]
) -> None:
    problems = check_coverage(translated, published)

    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- mutations

Body = dict[str, Any]


def _rows(body: Body) -> list[list[Any]]:
    return [row for widget in _metric_widgets(body) for row in widget["metrics"]]


def _first_row(body: Body, name: str) -> list[Any]:
    return next(row for row in _rows(body) if row[1] == name)


def _misspell_worker_metric(body: Body) -> str:
    _first_row(body, "items_ok")[1] = "items_okay"
    return "items_okay"


def _misspell_aws_metric(body: Body) -> str:
    _first_row(body, "ApproximateAgeOfOldestMessage")[1] = "ApproximateAgeOfOldestMesage"
    return "ApproximateAgeOfOldestMesage"


def _drop_stack_dimension(body: Body) -> str:
    row = _first_row(body, "items_retried")
    at = row.index("stack")
    del row[at : at + 2]
    return "items_retried"


def _fixed_stack_name(body: Body) -> str:
    row = _first_row(body, "items_permanent")
    row[row.index("stack") + 1] = "trawl"
    return "stack=trawl"


def _queue_of_another_stack(body: Body) -> str:
    _first_row(body, "ApproximateNumberOfMessagesNotVisible")[3] = "other-TikTokQueue-1ABC"
    return "other-TikTokQueue-1ABC"


def _function_that_is_a_queue(body: Body) -> str:
    _first_row(body, "Throttles")[3] = "${TikTokQueue}"
    return "${TikTokQueue}"


def _region_written_out(body: Body) -> str:
    _metric_widgets(body)[0]["region"] = "us-east-1"
    return "region 'us-east-1'"


def _dead_letter_queue_left_out(body: Body) -> str:
    for widget in _metric_widgets(body):
        widget["metrics"] = [r for r in widget["metrics"] if "${ShopeeDeadLetterQueue.QueueName}" not in r]
    return "ShopeeDeadLetterQueue"


def _worker_metric_left_out(body: Body) -> str:
    for widget in _metric_widgets(body):
        widget["metrics"] = [
            r for r in widget["metrics"] if r[1:4] != ["items_fields_unparsed", "platform", "lazada"]
        ]
    return "items_fields_unparsed"


def _producer_errors_left_out(body: Body) -> str:
    for widget in _metric_widgets(body):
        widget["metrics"] = [r for r in widget["metrics"] if "${ProducerFunction}" not in r]
    return "${ProducerFunction}"


DashboardCheck = Callable[[Template, set[Metric]], list[str]]
MUTATIONS: list[tuple[str, Callable[[Body], str], DashboardCheck]] = [
    ("misspelt_worker_metric", _misspell_worker_metric, check_metrics),
    ("misspelt_aws_metric", _misspell_aws_metric, check_metrics),
    ("no_stack_dimension", _drop_stack_dimension, check_metrics),
    ("stack_name_written_out", _fixed_stack_name, check_metrics),
    ("queue_of_another_stack", _queue_of_another_stack, check_metrics),
    ("function_that_is_a_queue", _function_that_is_a_queue, check_metrics),
    ("region_written_out", _region_written_out, check_metrics),
    ("dead_letter_queue_left_out", _dead_letter_queue_left_out, check_coverage),
    ("worker_metric_left_out", _worker_metric_left_out, check_coverage),
    ("producer_errors_left_out", _producer_errors_left_out, check_coverage),
]


@pytest.mark.parametrize(
    ("mutate", "check"), [(m, c) for _, m, c in MUTATIONS], ids=[n for n, _, _ in MUTATIONS]
)
def test_dashboard_check_reports_mutation(
    translated: Template, published: set[Metric], mutate: Callable[[Body], str], check: DashboardCheck
) -> None:
    mutant = copy.deepcopy(translated)
    body = dashboard_body(mutant)
    named = mutate(body)
    set_dashboard_body(mutant, body)

    problems = check(mutant, published)

    assert any(named in problem for problem in problems), problems


def _without_stack(metric: Metric) -> Metric:
    return Metric(metric.namespace, metric.name, frozenset(d for d in metric.dimensions if d[0] != "stack"))


def _renamed(metric: Metric) -> Metric:
    return Metric(metric.namespace, metric.name.replace("items_ok", "items_succeeded"), metric.dimensions)


@pytest.mark.parametrize("change", [_without_stack, _renamed], ids=["no_stack_dimension", "metric_renamed"])
def test_code_that_stops_publishing_a_shown_metric_is_caught(
    translated: Template, published: set[Metric], change: Callable[[Metric], Metric]
) -> None:
    problems = check_metrics(translated, {change(metric) for metric in published})

    assert any("items_ok" in problem for problem in problems), problems


def test_a_worker_without_the_stack_in_its_environment_publishes_another_stack(translated: Template) -> None:
    mutant = copy.deepcopy(translated)
    for worker in workers(mutant):
        properties(mutant, worker.function)["Environment"]["Variables"].pop("STACK_NAME")

    problems = check_metrics(mutant, published_metrics(mutant))

    assert any("stack=${AWS::StackName}" in problem and "stack=trawl" in problem for problem in problems)
