"""What `sam build` ships: each function's artifact holds its handler's packages plus the runtime
dependencies in deploy/requirements-*.txt, nothing else. These checks keep the Lambda code inside that
set (every import resolves to the stdlib, a shipped package, a listed requirement or the runtime's
boto3) and keep the requirements in step with pyproject.toml. tests/integration/test_make_artifacts.py
builds an artifact with make and runs it."""

from __future__ import annotations

import ast
import sys
import tomllib
from collections.abc import Iterable, Mapping
from functools import lru_cache
from importlib.metadata import packages_distributions, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from trawl.local.artifacts import artifact_specs, requirement_lines

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "deploy" / "constraints.txt"
# The AWS SDK: pinned exactly in deploy/constraints.txt and in every requirements file.
SDK = ("boto3", "botocore")


SPECS = artifact_specs()  # logical id -> what its artifact ships (deploy/artifacts.txt)
# One per distinct artifact, by its requirements file (the four workers ship the same one).
KINDS = {f"deploy/{spec.requirements.name}": spec for spec in SPECS.values()}
SHIPPED_PACKAGES = sorted({package for spec in KINDS.values() for package in spec.packages})


# --------------------------------------------------------------------------- requirements


def read_requirements(path: Path) -> dict[str, Requirement]:
    requirements = map(Requirement, requirement_lines(path))
    return {canonicalize_name(requirement.name): requirement for requirement in requirements}


def pyproject_dependencies() -> dict[str, Requirement]:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        dependencies: list[str] = tomllib.load(handle)["project"]["dependencies"]
    return {canonicalize_name(r.name): r for r in map(Requirement, dependencies)}


@lru_cache(maxsize=1)
def _distributions_by_import_name() -> Mapping[str, list[str]]:
    return packages_distributions()


def import_names(distribution: str) -> set[str]:
    """Top-level import names of an installed distribution: aws-lambda-powertools -> aws_lambda_powertools."""
    names = {
        name
        for name, distributions in _distributions_by_import_name().items()
        if distribution in {canonicalize_name(d) for d in distributions}
    }
    assert names, f"{distribution} is not installed here, so the names it is imported by are unknown"
    return names


# --------------------------------------------------------------------------- imports


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _dynamic_import(node: ast.Call) -> str | None:
    """The module of importlib.import_module("x") or __import__("x"), when it is a literal."""
    func = node.func
    named = (isinstance(func, ast.Attribute) and func.attr == "import_module") or (
        isinstance(func, ast.Name) and func.id in {"import_module", "__import__"}
    )
    if named and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
        return node.args[0].value
    return None


def runtime_imports(source: str, package: str) -> set[str]:
    """Top-level names a module imports when it runs: anywhere in it (function bodies too), except
    under `if TYPE_CHECKING:`. A relative import stays inside `package`."""
    tree = ast.parse(source)
    type_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and _is_type_checking(node.test)
        for statement in node.body
        for inner in ast.walk(statement)
    }
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(package if node.level else (node.module or "").partition(".")[0])
        elif isinstance(node, ast.Call) and (module := _dynamic_import(node)):
            names.add(module.partition(".")[0])
    return names


def allowed_imports(package: str) -> tuple[set[str], set[str], list[str]]:
    """(first-party, third-party) names `package` may import, and the requirements files they come
    from: what every artifact that ships `package` holds (models/ is in both, so gets the overlap)."""
    shipped_in = {file: spec for file, spec in KINDS.items() if package in spec.packages}
    assert shipped_in, f"{package}/ is in no artifact"
    first_party = set.intersection(*(set(spec.packages) for spec in shipped_in.values()))
    third_party = set.intersection(
        *(
            {name for dist in read_requirements(spec.requirements) for name in import_names(dist)}
            for spec in shipped_in.values()
        )
    )
    return first_party, third_party, list(shipped_in)


def stray_imports(package: str, modules: Mapping[str, str]) -> list[str]:
    """Problems, one per import of a module (path -> source) that its Lambda artifact would not hold."""
    first_party, third_party, requirement_files = allowed_imports(package)
    problems = []
    for path, source in sorted(modules.items()):
        for name in sorted(runtime_imports(source, package)):
            if name in sys.stdlib_module_names or name in first_party or name in third_party:
                continue
            problems.append(
                f"{path} imports {name!r}: not stdlib, not one of {sorted(first_party)}, not provided by "
                f"the Lambda runtime and not in {' / '.join(requirement_files)}"
            )
    return problems


def package_sources(package: str) -> dict[str, str]:
    return {
        str(path.relative_to(ROOT)): path.read_text(encoding="utf-8")
        for path in sorted((ROOT / package).rglob("*.py"))
    }


# --------------------------------------------------------------------------- the shipped code


@pytest.mark.parametrize("package", SHIPPED_PACKAGES)
def test_shipped_code_imports_only_what_its_artifact_holds(package: str) -> None:
    sources = package_sources(package)

    problems = stray_imports(package, sources)

    assert sources, f"no modules found in {package}/"
    assert not problems, "\n".join(problems)


def test_stray_imports_are_reported_and_type_only_imports_are_not() -> None:
    module = """
from __future__ import annotations
import importlib
import json
from typing import TYPE_CHECKING
import httpx
from aws_lambda_powertools import Logger
from trawl.local import stack
from . import fanout
if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    import duckdb
def client():
    import boto3
    from workers.batch import process_batch
    return importlib.import_module("rich.console")
"""

    problems = stray_imports("producer", {"producer/example.py": module})

    flagged = {problem.split("'")[1] for problem in problems}
    assert flagged == {"httpx", "trawl", "duckdb", "workers", "rich"}, problems
    assert all("deploy/requirements-producer.txt" in problem for problem in problems)


def test_models_may_import_only_what_both_artifacts_hold() -> None:
    problems = stray_imports(
        "models", {"models/example.py": "import httpx\nimport producer\nimport pydantic\n"}
    )

    assert [problem.split("'")[1] for problem in problems] == ["httpx", "producer"], problems


# --------------------------------------------------------------------------- requirements files


@pytest.mark.parametrize("file", KINDS)
def test_requirements_have_the_lower_bounds_of_pyproject(file: str) -> None:
    declared = pyproject_dependencies()

    requirements = read_requirements(KINDS[file].requirements)

    assert requirements, f"{file} lists nothing"
    assert set(SDK) <= set(requirements), f"{file} must ship the SDK ({', '.join(SDK)})"
    for name, requirement in requirements.items():
        if name in SDK:
            continue  # pinned exactly: test_the_sdk_pins_agree
        assert name in declared, f"{name} is not a runtime dependency in pyproject.toml"
        assert any(spec.operator == ">=" for spec in requirement.specifier), f"{requirement} has no >= bound"
        assert requirement.specifier == declared[name].specifier, (
            f"{file}: {requirement} disagrees with pyproject.toml's {declared[name]}"
        )


def test_every_runtime_dependency_is_shipped() -> None:
    shipped = set().union(*(read_requirements(spec.requirements).keys() for spec in KINDS.values()))

    assert set(pyproject_dependencies()) == shipped


def sdk_drift(
    constraints: Path, requirement_files: Iterable[Path], installed: Mapping[str, str]
) -> list[str]:
    """Where the SDK's versions disagree: each requirements file's pins and the virtualenv's
    installed versions, against the constraints file's exact pins."""
    pins = read_requirements(constraints)
    problems = []
    for name in SDK:
        pin = pins.get(name)
        if pin is None or [spec.operator for spec in pin.specifier] != ["=="]:
            problems.append(f"{constraints.name} must pin {name} exactly (name==version), not {pin}")
            continue
        for file in requirement_files:
            theirs = read_requirements(file).get(name)
            if theirs is None or theirs.specifier != pin.specifier:
                problems.append(f"{file.name} has {theirs or 'no ' + name}; {constraints.name} has {pin}")
        if installed[name] not in pin.specifier:
            problems.append(f"this virtualenv has {name} {installed[name]}; {constraints.name} has {pin}")
    return problems


def _installed_sdk() -> dict[str, str]:
    return {name: version(name) for name in SDK}


def test_the_sdk_pins_agree() -> None:
    files = [spec.requirements for spec in KINDS.values()]

    assert sdk_drift(CONSTRAINTS, files, _installed_sdk()) == []


def test_an_sdk_pin_that_drifts_is_reported(tmp_path: Path) -> None:
    """The mutation: the constraints file moves botocore on; every artifact's pin and the
    virtualenv now disagree with it."""
    bumped = tmp_path / "constraints.txt"
    text = CONSTRAINTS.read_text(encoding="utf-8")
    pinned = read_requirements(CONSTRAINTS)["botocore"]
    bumped.write_text(text.replace(str(pinned), "botocore==9.9.9"), encoding="utf-8")
    files = [spec.requirements for spec in KINDS.values()]

    problems = sdk_drift(bumped, files, _installed_sdk())

    assert len(problems) == len(files) + 1, problems
    assert all("botocore==9.9.9" in problem for problem in problems), problems
