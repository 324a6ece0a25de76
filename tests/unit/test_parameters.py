"""Template parameters checked as CloudFormation checks them (moto's CloudFormation does not):
each constraint kind against template.yaml itself, the Rules section's functions over synthetic
templates (read through the same YAML loader, short-form tags and all), and NAME=VALUE parsing."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any, cast

import pytest

from trawl.local.create import create_local_stack
from trawl.local.parameters import (
    UPSTREAM_URL_PARAMETERS,
    ParameterError,
    TemplateError,
    check_parameters,
    parse_parameters,
)
from trawl.local.template import load_template
from trawl.stack.endpoint import Endpoint

TEMPLATE = load_template()
PATTERN = TEMPLATE["Parameters"]["TikApiBaseUrl"]["AllowedPattern"]


def refused(given: dict[str, str], template: dict[str, Any] = TEMPLATE, local: bool = False) -> str:
    with pytest.raises(ParameterError) as caught:
        check_parameters(template, given, loopback_http=UPSTREAM_URL_PARAMETERS if local else ())
    return str(caught.value)


# --------------------------------------------------------------------------- the real template


def test_a_valid_set_is_accepted_and_returned_as_strings() -> None:
    given: dict[str, Any] = {
        "OutputFormat": "csv",
        "WorkerBatchSize": "5",
        "MaxReceiveCount": 2,
        "TikApiBaseUrl": "https://tikapi.example.com/v1",
        "GlueDatabaseName": "trawl_test",
    }
    assert check_parameters(TEMPLATE, given) == {
        "OutputFormat": "csv",
        "WorkerBatchSize": "5",
        "MaxReceiveCount": "2",
        "TikApiBaseUrl": "https://tikapi.example.com/v1",
        "GlueDatabaseName": "trawl_test",
    }
    assert check_parameters(TEMPLATE, {}) == {}  # the Defaults hold


def test_a_number_below_its_min_value() -> None:
    message = refused({"WorkerBatchSize": "0"})
    assert message == "parameter WorkerBatchSize: '0' is below its MinValue 1"


def test_a_number_above_its_max_value() -> None:
    limit = TEMPLATE["Parameters"]["ProducerRetryAttempts"]["MaxValue"]
    message = refused({"ProducerRetryAttempts": str(limit + 1)})
    assert message == f"parameter ProducerRetryAttempts: '{limit + 1}' is above its MaxValue {limit}"


def test_min_and_max_value_are_inclusive() -> None:
    spec = TEMPLATE["Parameters"]["LedgerItemTtlDays"]
    for value in (spec["MinValue"], spec["MaxValue"]):
        assert check_parameters(TEMPLATE, {"LedgerItemTtlDays": str(value)}) == {
            "LedgerItemTtlDays": str(value)
        }


@pytest.mark.parametrize("value", ["ten", "", " 5", "5 ", "1,5", "0x10", "..5", "--1", "1.2.3"])
def test_a_number_parameter_needs_a_number(value: str) -> None:
    message = refused({"MaxReceiveCount": value})
    assert message.startswith(f"parameter MaxReceiveCount: {value!r} is not a number (Type Number")


def test_decimals_and_signs_are_numbers() -> None:
    template = _template({"Ratio": {"Type": "Number", "Default": 1, "MinValue": -5, "MaxValue": 5}})
    for value in ("2.5", "-3", "+4", ".5", "-0.25", "5", "5.000"):
        assert check_parameters(template, {"Ratio": value}) == {"Ratio": value}
    assert "is above its MaxValue 5" in refused({"Ratio": "5.001"}, template)
    assert "is below its MinValue -5" in refused({"Ratio": "-6"}, template)


def test_a_string_outside_its_allowed_values() -> None:
    assert refused({"OutputFormat": "xml"}) == (
        "parameter OutputFormat: 'xml' is not one of its AllowedValues: json, csv"
    )
    for near in ("CSV", "csv ", " json", ""):  # an exact match, as CloudFormation's
        assert "is not one of its AllowedValues" in refused({"OutputFormat": near})


def test_a_string_that_does_not_match_its_allowed_pattern() -> None:
    assert refused({"TikApiBaseUrl": "http://x"}) == (
        f"parameter TikApiBaseUrl: 'http://x' does not match its AllowedPattern {PATTERN}"
    )


def test_the_whole_value_must_match_the_pattern() -> None:
    # `$` also matches before a final newline, and an unanchored pattern matches a prefix: not enough.
    assert "does not match its AllowedPattern" in refused({"FirstOutputDate": "2024-01-01\n"})
    template = _template({"Name": {"Type": "String", "Default": "abc", "AllowedPattern": "[a-z]+"}})
    assert check_parameters(template, {"Name": "xyz"}) == {"Name": "xyz"}
    assert (
        refused({"Name": "abc1"}, template)
        == "parameter Name: 'abc1' does not match its AllowedPattern [a-z]+"
    )
    assert "does not match" in refused({"Name": "1abc"}, template)


def test_locally_the_upstream_urls_also_take_plain_http_to_loopback() -> None:
    sandbox = {"TikApiBaseUrl": "http://127.0.0.1:8123", "ZyteApiUrl": "http://localhost:9/v1/extract"}
    assert check_parameters(TEMPLATE, sandbox, loopback_http=UPSTREAM_URL_PARAMETERS) == sandbox
    assert "does not match its AllowedPattern" in refused({"TikApiBaseUrl": "http://127.0.0.1:8123"})
    message = refused({"TikApiBaseUrl": "http://x"}, local=True)
    assert message == (
        f"parameter TikApiBaseUrl: 'http://x' does not match its AllowedPattern {PATTERN} "
        "(a local run also takes plain http to a loopback address)"
    )
    # Only the upstream URLs: another parameter's pattern is not relaxed.
    assert "does not match" in refused({"TikApiKeyParameter": "http://127.0.0.1/x"}, local=True)


def test_an_unknown_parameter_is_refused_with_the_close_names() -> None:
    # The closest first (difflib), then any other close one.
    close = refused({"WorkerBatchSise": "5"})
    assert re.fullmatch(
        r"unknown parameter 'WorkerBatchSise': did you mean WorkerBatchSize( or \w+)*\?", close
    )
    message = refused({"Nonsense": "1"})
    assert message.startswith("unknown parameter 'Nonsense': the template's parameters are ")
    assert "OutputFormat" in message and "WorkerBatchSize" in message


def test_the_batching_window_rule_of_the_real_template() -> None:
    if "BatchingWindowForBigBatches" not in (TEMPLATE.get("Rules") or {}):
        pytest.skip("template.yaml has no BatchingWindowForBigBatches rule yet")
    limit = int(TEMPLATE["Parameters"]["WorkerBatchSize"]["MaxValue"])
    assert limit > 10, "the rule is about batches above 10"
    big = {"WorkerBatchSize": "20", "WorkerBatchingWindowSeconds": "0"}
    message = refused(big)
    assert message.startswith("rule BatchingWindowForBigBatches: WorkerBatchSize above 10 needs")
    assert "WorkerBatchSize=20" in message and "WorkerBatchingWindowSeconds=0" in message
    assert check_parameters(TEMPLATE, big | {"WorkerBatchingWindowSeconds": "1"})
    assert check_parameters(TEMPLATE, {"WorkerBatchSize": "10", "WorkerBatchingWindowSeconds": "0"})
    allowed = ", ".join(
        str(v) for v in TEMPLATE["Parameters"]["WorkerBatchingWindowSeconds"]["AllowedValues"]
    )
    assert refused({"WorkerBatchingWindowSeconds": "3"}) == (
        f"parameter WorkerBatchingWindowSeconds: '3' is not one of its AllowedValues: {allowed}"
    )


def test_create_local_stack_checks_before_it_creates_anything() -> None:
    class NoAws:
        def client(self, name: str) -> None:
            raise AssertionError(f"the {name} client was asked for before the parameters were checked")

    with pytest.raises(ParameterError, match="parameter OutputFormat: 'xml'"):
        create_local_stack(cast(Endpoint, NoAws()), "trawl", {"OutputFormat": "xml"})


# --------------------------------------------------------------------------- other constraints


def test_lengths_are_inclusive() -> None:
    template = _template({"Name": {"Type": "String", "Default": "abc", "MinLength": 2, "MaxLength": 4}})
    assert check_parameters(template, {"Name": "ab"}) and check_parameters(template, {"Name": "abcd"})
    assert (
        refused({"Name": "a"}, template)
        == "parameter Name: 'a' is shorter than its MinLength 2 (1 characters)"
    )
    assert refused({"Name": "abcde"}, template) == (
        "parameter Name: 'abcde' is longer than its MaxLength 4 (5 characters)"
    )


def test_allowed_values_apply_to_numbers_too() -> None:
    template = _template({"Size": {"Type": "Number", "Default": 5, "AllowedValues": [1, 5, 10]}})
    assert check_parameters(template, {"Size": "10"}) == {"Size": "10"}
    # An exact match, as for a String: the value is a string wherever the template uses it.
    assert "is not one of its AllowedValues" in refused({"Size": "5.0"}, template)
    assert refused({"Size": "6"}, template) == "parameter Size: '6' is not one of its AllowedValues: 1, 5, 10"
    assert "is not a number" in refused({"Size": "five"}, template)


def test_a_comma_delimited_list_is_checked_member_by_member() -> None:
    template = _template(
        {"Zones": {"Type": "CommaDelimitedList", "Default": "a", "AllowedValues": ["a", "b", "c"]}}
    )
    assert check_parameters(template, {"Zones": "a,c"}) == {"Zones": "a,c"}
    assert (
        refused({"Zones": "a,d"}, template)
        == "parameter Zones: 'a,d' is not one of its AllowedValues: a, b, c"
    )


def test_the_constraint_description_is_part_of_the_message() -> None:
    spec = {
        "Type": "String",
        "Default": "a",
        "AllowedPattern": "[a-z]+",
        "ConstraintDescription": "lower case",
    }
    assert refused({"Name": "A"}, _template({"Name": spec})).endswith("[a-z]+ (lower case)")


def test_a_no_echo_value_is_never_shown() -> None:
    spec = {"Type": "String", "Default": "secret", "NoEcho": True, "MinLength": 6}
    message = refused({"Key": "abc"}, _template({"Key": spec}))
    assert message == "parameter Key: '****' is shorter than its MinLength 6 (3 characters)"


def test_a_parameter_without_default_needs_a_value() -> None:
    template = _template({"Name": {"Type": "String"}})
    assert refused({}, template) == "parameter Name has no Default, so it needs a value: Name=VALUE"
    assert check_parameters(template, {"Name": "x"}) == {"Name": "x"}


def test_a_default_the_template_itself_breaks_is_refused_as_its_default() -> None:
    template = _template({"Size": {"Type": "Number", "Default": 0, "MinValue": 1}})
    assert refused({}, template) == "parameter Size (its Default '0') is below its MinValue 1"


# --------------------------------------------------------------------------- Rules

RULES_YAML = """
Parameters:
  BatchSize: {Type: Number, Default: 10, MinValue: 1, MaxValue: 10000}
  Window: {Type: Number, Default: 0, MinValue: 0, MaxValue: 300}
  Env: {Type: String, Default: dev, AllowedValues: [dev, test, prod]}
  Alarms: {Type: String, Default: ""}
  Zones: {Type: CommaDelimitedList, Default: "a,b"}
Rules:
  BatchingWindowForBigBatches:
    RuleCondition: !Not [!Contains [["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"], !Ref BatchSize]]
    Assertions:
      - Assert: !Not [!Equals [!Ref Window, "0"]]
        AssertDescription: "BatchSize above 10 needs Window of at least 1"
  ProdNeedsAlarms:
    RuleCondition:
      Fn::Or: [{"Fn::Equals": [{"Ref": Env}, prod]}, !Equals [!Ref Env, test]]
    Assertions:
      - Assert: !And [!Not [!Equals [!Ref Alarms, ""]], !Not [!Equals [!Ref BatchSize, "1"]]]
        AssertDescription: "prod and test need Alarms and a BatchSize above 1"
  KnownZones:
    Assertions:
      - Assert: !EachMemberIn [!Ref Zones, [a, b, c]]
        AssertDescription: "Zones are a, b or c"
      - Assert: !Not [!EachMemberEquals [!Ref Zones, c]]
"""


@pytest.fixture
def ruled(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(RULES_YAML), encoding="utf-8")
    return load_template(path)  # short-form tags as template.yaml's are read


def test_the_loader_gives_rule_functions_as_fn_dicts(ruled: dict[str, Any]) -> None:
    condition = ruled["Rules"]["BatchingWindowForBigBatches"]["RuleCondition"]
    assert condition == {
        "Fn::Not": [{"Fn::Contains": [[str(n) for n in range(1, 11)], {"Ref": "BatchSize"}]}]
    }


def test_a_rule_whose_condition_is_false_asserts_nothing(ruled: dict[str, Any]) -> None:
    assert check_parameters(ruled, {"BatchSize": "10", "Window": "0"}) == {"BatchSize": "10", "Window": "0"}


def test_a_rule_whose_condition_holds_refuses_a_failing_assertion(ruled: dict[str, Any]) -> None:
    message = refused({"BatchSize": "20"}, ruled)  # Window's Default 0 is merged in
    assert message == (
        "rule BatchingWindowForBigBatches: BatchSize above 10 needs Window of at least 1 "
        "(BatchSize=20, Window=0)"
    )
    assert check_parameters(ruled, {"BatchSize": "20", "Window": "1"})


def test_or_and_and(ruled: dict[str, Any]) -> None:
    assert check_parameters(ruled, {"Env": "dev"})  # the condition (Or) is false
    for env in ("prod", "test"):
        message = refused({"Env": env}, ruled)
        assert message.startswith("rule ProdNeedsAlarms: prod and test need Alarms and a BatchSize above 1")
        assert f"Env={env}" in message
        assert check_parameters(ruled, {"Env": env, "Alarms": "arn:aws:sns:x"})
        assert "rule ProdNeedsAlarms" in refused({"Env": env, "Alarms": "arn", "BatchSize": "1"}, ruled)


def test_each_member_in_and_equals_without_a_condition(ruled: dict[str, Any]) -> None:
    assert check_parameters(ruled, {"Zones": "a,b,c"})
    assert refused({"Zones": "a,d"}, ruled) == "rule KnownZones: Zones are a, b or c (Zones=a,d)"
    # An assertion without AssertDescription: the message shows the assertion itself.
    message = refused({"Zones": "c,c"}, ruled)
    assert message.startswith('rule KnownZones: assertion {"Fn::Not": [{"Fn::EachMemberEquals"')
    assert message.endswith("fails (Zones=c,c)")


def test_long_form_rule_functions_in_a_plain_dict() -> None:
    template = _template(
        {"Size": {"Type": "Number", "Default": 1}, "Tier": {"Type": "String", "Default": "a"}},
        rules={
            "SmallTierA": {
                "RuleCondition": {"Fn::Equals": [{"Ref": "Tier"}, "a"]},
                "Assertions": [
                    {
                        "Assert": {"Fn::Contains": [["1", "2"], {"Ref": "Size"}]},
                        "AssertDescription": "tier a takes sizes 1 and 2",
                    }
                ],
            }
        },
    )
    assert check_parameters(template, {"Size": "2"})
    assert check_parameters(template, {"Size": "3", "Tier": "b"})
    assert refused({"Size": "3"}, template) == "rule SmallTierA: tier a takes sizes 1 and 2 (Size=3, Tier=a)"


def test_an_unsupported_rule_function_is_named() -> None:
    template = _template(
        {"Vpc": {"Type": "String", "Default": "vpc-1"}},
        rules={"R": {"Assertions": [{"Assert": {"Fn::ValueOf": ["Vpc", "Tags"]}}]}},
    )
    with pytest.raises(TemplateError, match=r"rule R uses Fn::ValueOf, which trawl cannot evaluate locally"):
        check_parameters(template, {})


def test_a_ref_to_something_not_a_parameter_is_a_template_error() -> None:
    template = _template(
        {"A": {"Type": "String", "Default": "x"}},
        rules={"R": {"Assertions": [{"Assert": {"Fn::Equals": [{"Ref": "AWS::Region"}, "x"]}}]}},
    )
    with pytest.raises(TemplateError, match="Ref 'AWS::Region' is not a parameter"):
        check_parameters(template, {})


# --------------------------------------------------------------------------- NAME=VALUE


def test_name_value_pairs() -> None:
    assert parse_parameters(["OutputFormat=csv", "AlarmTopicArn=", "ReconcileSchedule=rate(1 minute)"]) == {
        "OutputFormat": "csv",
        "AlarmTopicArn": "",
        "ReconcileSchedule": "rate(1 minute)",
    }
    assert parse_parameters(["Name=a=b"]) == {"Name": "a=b"}  # the value is everything after the first =
    assert parse_parameters(["A=1", "A=1"]) == {"A": "1"}
    assert parse_parameters([]) == {}


@pytest.mark.parametrize("item", ["OutputFormat", "=csv", " =csv", ""])
def test_a_malformed_name_value_is_refused_with_the_expected_form(item: str) -> None:
    with pytest.raises(ParameterError) as caught:
        parse_parameters(["MaxReceiveCount=2", item])
    assert str(caught.value) == f"expected NAME=VALUE (e.g. OutputFormat=csv), got {item!r}"


def test_a_name_given_twice_with_two_values_is_refused() -> None:
    with pytest.raises(ParameterError, match="parameter A given twice: '1' and '2'"):
        parse_parameters(["A=1", "A=2"])


def _template(parameters: dict[str, Any], rules: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"Parameters": parameters, **({"Rules": rules} if rules else {})}


@pytest.mark.parametrize(
    ("name", "lowest", "highest"),
    [
        ("TikApiRequestsPerMinute", 0, 1_000_000),
        ("ZyteRequestsPerMinute", 0, 1_000_000),
        ("WorkerBatchSize", 1, 100),
        ("WorkerFetchConcurrency", 1, 100),
    ],
)
def test_the_rate_and_batch_parameters_take_their_range_and_nothing_beyond(
    name: str, lowest: int, highest: int
) -> None:
    window = {"WorkerBatchingWindowSeconds": "1"}  # batches above 10 need one (the template's Rule)
    assert check_parameters(TEMPLATE, {name: str(lowest)} | window) == {name: str(lowest)} | window
    assert check_parameters(TEMPLATE, {name: str(highest)} | window) == {name: str(highest)} | window
    assert refused({name: str(lowest - 1)}) == (
        f"parameter {name}: '{lowest - 1}' is below its MinValue {lowest}"
    )
    assert refused({name: str(highest + 1)}) == (
        f"parameter {name}: '{highest + 1}' is above its MaxValue {highest}"
    )
