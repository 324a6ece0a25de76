"""Template parameters checked as CloudFormation checks them when a stack is created: moto's
CloudFormation checks no constraint, so a local stack would otherwise take a value AWS refuses.

`check_parameters` applies each parameter's Type, AllowedValues, AllowedPattern, MinLength /
MaxLength and MinValue / MaxValue, then the template's Rules section, over the given values
merged over the template's Defaults. A value the template refuses is a `ParameterError`; a
template trawl cannot check (a rule function it does not evaluate, a malformed constraint) is a
`TemplateError`. Both are ValueErrors."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from models.endpoints import is_loopback

# The parameters naming an upstream URL: a local run also accepts plain http to a loopback
# address for them (the sandbox or a stand-in listens there), as models.endpoints allows locally,
# though their AllowedPattern (what AWS applies) takes https only.
UPSTREAM_URL_PARAMETERS = ("TikApiBaseUrl", "ZyteApiUrl")

# What a Number parameter takes: an integer or a decimal, signed or not ("10", "-3", "2.5", ".5").
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")

# The rule functions evaluated here (Fn::ValueOf, Fn::RefAll ... need an AWS account).
RULE_FUNCTIONS = (
    "Ref",
    "Fn::And",
    "Fn::Contains",
    "Fn::EachMemberEquals",
    "Fn::EachMemberIn",
    "Fn::Equals",
    "Fn::Not",
    "Fn::Or",
)


class ParameterError(ValueError):
    """A parameter value (or a NAME=VALUE) that the template, as CloudFormation reads it, refuses;
    `parameter` names the parameter when one value is to blame (not for a rule)."""

    def __init__(self, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter


class TemplateError(ValueError):
    """A template whose Parameters or Rules trawl cannot check: a malformed constraint or rule,
    or a rule function it does not evaluate."""


_Refuse = Callable[[str], ParameterError]


def parse_parameters(items: Iterable[str]) -> dict[str, str]:
    """NAME=VALUE strings (as `sam deploy --parameter-overrides` takes them) -> {NAME: VALUE}.
    The value is everything after the first '=' and may be empty; a name given twice with two
    different values is refused."""
    found: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ParameterError(f"expected NAME=VALUE (e.g. OutputFormat=csv), got {item!r}")
        if name in found and found[name] != value:
            raise ParameterError(f"parameter {name} given twice: {found[name]!r} and {value!r}", name)
        found[name] = value
    return found


def check_parameters(
    template: Mapping[str, Any], given: Mapping[str, Any], *, loopback_http: Collection[str] = ()
) -> dict[str, str]:
    """The given values as strings, once the template (as load_template() returns it) takes
    them and its Defaults, and its Rules hold over both. `loopback_http` names parameters whose
    value may also be plain http to a loopback address (a local run's upstreams)."""
    declared: Mapping[str, Any] = template.get("Parameters") or {}
    values = {name: _text(value) for name, value in given.items()}
    for name in values:
        if name not in declared:
            raise ParameterError(_unknown(name, declared), name)
    for name, spec in declared.items():
        if not isinstance(spec, Mapping):
            raise TemplateError(f"parameter {name}: its declaration is not a mapping")
        if name in values:
            _check_value(name, spec, values[name], name in loopback_http, default=False)
        elif "Default" in spec:
            _check_value(name, spec, _text(spec["Default"]), name in loopback_http, default=True)
        else:
            raise ParameterError(f"parameter {name} has no Default, so it needs a value: {name}=VALUE", name)
    effective = {
        name: values[name] if name in values else _text(spec["Default"]) for name, spec in declared.items()
    }
    _check_rules(template.get("Rules") or {}, declared, effective)
    return values


def _unknown(name: str, declared: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(name, list(declared), n=3, cutoff=0.6)
    if close:
        return f"unknown parameter {name!r}: did you mean {' or '.join(close)}?"
    return f"unknown parameter {name!r}: the template's parameters are {', '.join(sorted(declared))}"


def _text(value: Any) -> str:
    """A value as CloudFormation holds it: a string (YAML may have read a Default as a number
    or a boolean)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_text(v) for v in value)
    return str(value)


def _shown(spec: Mapping[str, Any], value: str) -> str:
    """A value as a message may show it: never a NoEcho parameter's."""
    return "****" if _text(spec.get("NoEcho", False)).lower() == "true" else value


def _check_value(name: str, spec: Mapping[str, Any], value: str, loopback_http: bool, default: bool) -> None:
    kind = str(spec.get("Type", "String"))
    shown = repr(_shown(spec, value))
    where = f"parameter {name} (its Default {shown})" if default else f"parameter {name}: {shown}"
    said = f" ({spec['ConstraintDescription']})" if spec.get("ConstraintDescription") else ""

    def refuse(problem: str) -> ParameterError:
        return ParameterError(f"{where} {problem}{said}", name)

    if kind == "Number":
        _check_number(value, spec, refuse, name)
        _check_allowed_values(value, spec, refuse)
        return
    if kind == "List<Number>":
        for member in value.split(","):
            _check_number(member, spec, refuse, name, member=True)
        return
    members = value.split(",") if kind == "CommaDelimitedList" or kind.startswith("List<") else [value]
    for member in members:
        _check_allowed_values(member, spec, refuse)
        _check_pattern(member, spec, refuse, name, loopback_http)
    if len(members) == 1:
        for key, too in (("MinLength", "shorter than"), ("MaxLength", "longer than")):
            if key in spec:
                limit = _integer(spec[key], name, key)
                if (len(value) < limit) if key == "MinLength" else (len(value) > limit):
                    raise refuse(f"is {too} its {key} {limit} ({len(value)} characters)")


def _check_number(
    value: str, spec: Mapping[str, Any], refuse: _Refuse, name: str, member: bool = False
) -> None:
    what = f"holds {_shown(spec, value)!r}, which" if member else "is"
    if not _NUMBER.fullmatch(value):
        raise refuse(
            f"{what} not a number (Type {spec.get('Type')}: an integer or a decimal, e.g. 10 or 2.5)"
        )
    number = Decimal(value)
    for key, beyond in (("MinValue", "below"), ("MaxValue", "above")):
        if key in spec:
            limit = _decimal(spec[key], name, key)
            if (number < limit) if key == "MinValue" else (number > limit):
                raise refuse(f"{what} {beyond} its {key} {_text(spec[key])}")


def _check_allowed_values(value: str, spec: Mapping[str, Any], refuse: _Refuse) -> None:
    """An exact match, for a Number too ("5.0" is not "5"): the value is a string wherever the
    template uses it (a Mappings key, a rule's Fn::Contains)."""
    if "AllowedValues" not in spec:
        return
    allowed = spec["AllowedValues"]
    if not isinstance(allowed, list):
        raise TemplateError(f"AllowedValues must be a list, got {allowed!r}")
    texts = [_text(a) for a in allowed]
    if value not in texts:
        raise refuse(f"is not one of its AllowedValues: {', '.join(texts)}")


def _check_pattern(
    value: str, spec: Mapping[str, Any], refuse: _Refuse, name: str, loopback_http: bool
) -> None:
    if "AllowedPattern" not in spec:
        return
    pattern = str(spec["AllowedPattern"])
    try:
        matched = re.fullmatch(pattern, value)
    except re.error as exc:
        raise TemplateError(
            f"parameter {name}: AllowedPattern {pattern} is not a regular expression: {exc}"
        ) from None
    if matched:
        return
    if loopback_http:
        parts = urlsplit(value)
        if parts.scheme == "http" and parts.hostname and is_loopback(parts.hostname):
            return
        raise refuse(
            f"does not match its AllowedPattern {pattern} "
            "(a local run also takes plain http to a loopback address)"
        )
    raise refuse(f"does not match its AllowedPattern {pattern}")


def _integer(value: Any, name: str, key: str) -> int:
    try:
        return int(_text(value))
    except ValueError:
        raise TemplateError(f"parameter {name}: {key} must be an integer, got {value!r}") from None


def _decimal(value: Any, name: str, key: str) -> Decimal:
    try:
        return Decimal(_text(value))
    except InvalidOperation:
        raise TemplateError(f"parameter {name}: {key} must be a number, got {value!r}") from None


# --------------------------------------------------------------------------- Rules


def _check_rules(rules: Any, declared: Mapping[str, Any], values: Mapping[str, str]) -> None:
    if not isinstance(rules, Mapping):
        raise TemplateError("the Rules section must be a mapping of rule names to rules")
    for rule_name, rule in rules.items():
        if not isinstance(rule, Mapping) or not isinstance(rule.get("Assertions", []), list):
            raise TemplateError(f"rule {rule_name}: needs a mapping with a list of Assertions")
        evaluate = _Evaluator(str(rule_name), declared, values)
        if "RuleCondition" in rule and not evaluate.condition(rule["RuleCondition"], "RuleCondition"):
            continue
        for assertion in rule.get("Assertions", []):
            if not isinstance(assertion, Mapping) or "Assert" not in assertion:
                raise TemplateError(f"rule {rule_name}: each of its Assertions needs an Assert")
            if evaluate.condition(assertion["Assert"], "Assert"):
                continue
            said = assertion.get("AssertDescription") or f"assertion {json.dumps(assertion['Assert'])} fails"
            refs = ", ".join(f"{n}={_shown(declared[n], values[n])}" for n in sorted(evaluate.refs))
            raise ParameterError(f"rule {rule_name}: {said}" + (f" ({refs})" if refs else ""))


class _Evaluator:
    """Evaluates one rule's functions over the parameter values: strings, lists of strings and
    booleans, as CloudFormation's rule functions take and return them."""

    def __init__(self, rule: str, declared: Mapping[str, Any], values: Mapping[str, str]) -> None:
        self.rule = rule
        self.declared = declared
        self.values = values
        self.refs: set[str] = set()  # the parameters the rule looked at, for its message

    def condition(self, expr: Any, what: str) -> bool:
        result = self(expr)
        if not isinstance(result, bool):
            raise TemplateError(f"rule {self.rule}: its {what} must be a condition, got {result!r}")
        return result

    def __call__(self, expr: Any) -> Any:
        if isinstance(expr, list):
            return [self(e) for e in expr]
        if not isinstance(expr, Mapping):
            return _text(expr)
        if len(expr) != 1:
            raise TemplateError(f"rule {self.rule}: {json.dumps(expr)} is not a function (one key)")
        ((function, args),) = expr.items()
        if function == "Ref":
            return self._ref(args)
        handler = {
            "Fn::Equals": self._equals,
            "Fn::Not": self._not,
            "Fn::And": self._and,
            "Fn::Or": self._or,
            "Fn::Contains": self._contains,
            "Fn::EachMemberEquals": self._each_member_equals,
            "Fn::EachMemberIn": self._each_member_in,
        }.get(function)
        if handler is None:
            raise TemplateError(
                f"rule {self.rule} uses {function}, which trawl cannot evaluate locally "
                f"(it evaluates {', '.join(RULE_FUNCTIONS)})"
            )
        return handler(args)

    def _args(self, function: str, args: Any, count: int | None = None, at_least: int = 1) -> list[Any]:
        if not isinstance(args, list) or (len(args) != count if count else len(args) < at_least):
            wanted = f"{count}" if count else f"at least {at_least}"
            raise TemplateError(
                f"rule {self.rule}: {function} takes a list of {wanted} arguments, got {args!r}"
            )
        return args

    def _ref(self, name: Any) -> str | list[str]:
        if not isinstance(name, str) or name not in self.values:
            raise TemplateError(f"rule {self.rule}: Ref {name!r} is not a parameter of the template")
        self.refs.add(name)
        kind = str(self.declared[name].get("Type", "String"))
        value = self.values[name]
        return value.split(",") if kind == "CommaDelimitedList" or kind.startswith("List<") else value

    def _conditions(self, function: str, args: Any, at_least: int) -> list[bool]:
        args = self._args(function, args, at_least=at_least)
        if len(args) > 10:
            raise TemplateError(f"rule {self.rule}: {function} takes at most 10 conditions")
        return [self.condition(a, f"{function} argument") for a in args]

    def _list(self, function: str, value: Any) -> list[str]:
        result = self(value)
        if not isinstance(result, list) or not all(isinstance(m, str) for m in result):
            raise TemplateError(f"rule {self.rule}: {function} needs a list of strings, got {result!r}")
        return result

    def _string(self, function: str, value: Any) -> str:
        result = self(value)
        if not isinstance(result, str):
            raise TemplateError(f"rule {self.rule}: {function} needs a string, got {result!r}")
        return result

    def _equals(self, args: Any) -> bool:
        left, right = self._args("Fn::Equals", args, 2)
        return bool(self(left) == self(right))

    def _not(self, args: Any) -> bool:
        (only,) = self._args("Fn::Not", args, 1)
        return not self.condition(only, "Fn::Not argument")

    def _and(self, args: Any) -> bool:
        return all(self._conditions("Fn::And", args, 2))

    def _or(self, args: Any) -> bool:
        return any(self._conditions("Fn::Or", args, 2))

    def _contains(self, args: Any) -> bool:
        members, value = self._args("Fn::Contains", args, 2)
        return self._string("Fn::Contains", value) in self._list("Fn::Contains", members)

    def _each_member_equals(self, args: Any) -> bool:
        members, value = self._args("Fn::EachMemberEquals", args, 2)
        wanted = self._string("Fn::EachMemberEquals", value)
        return all(m == wanted for m in self._list("Fn::EachMemberEquals", members))

    def _each_member_in(self, args: Any) -> bool:
        members, allowed = self._args("Fn::EachMemberIn", args, 2)
        within = self._list("Fn::EachMemberIn", allowed)
        return all(m in within for m in self._list("Fn::EachMemberIn", members))
