"""What `sam build` ships: each function's artifact holds its handler's packages plus the runtime
dependencies in deploy/requirements-*.txt, nothing else. These checks keep the Lambda code inside that
set (every import resolves to the stdlib, a shipped package, a listed requirement or the runtime's
boto3), keep the requirements in step with pyproject.toml, and run each function's make target."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from trawl.local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
# The python3.11 Lambda runtime ships these, so artifacts leave them out.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore"})
WHEEL_PLATFORMS = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}


@dataclass(frozen=True)
class Artifact:
    """One kind of function artifact, named by its handler's package."""

    packages: tuple[str, ...]  # first-party packages copied in
    requirements: str  # relative to the repo root


ARTIFACTS = {
    "producer": Artifact(("producer", "models"), "deploy/requirements-producer.txt"),
    "workers": Artifact(("workers", "models"), "deploy/requirements-worker.txt"),
    "ledger": Artifact(("ledger", "models"), "deploy/requirements-ledger.txt"),
}
SHIPPED_PACKAGES = sorted({package for artifact in ARTIFACTS.values() for package in artifact.packages})


# --------------------------------------------------------------------------- requirements


def read_requirements(path: Path) -> dict[str, Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    requirements = [Requirement(line) for line in lines if line]
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
    shipped_in = [artifact for artifact in ARTIFACTS.values() if package in artifact.packages]
    assert shipped_in, f"{package}/ is in no artifact"
    first_party = set.intersection(*(set(artifact.packages) for artifact in shipped_in))
    third_party = set.intersection(
        *(
            {name for dist in read_requirements(ROOT / artifact.requirements) for name in import_names(dist)}
            for artifact in shipped_in
        )
    )
    return first_party, third_party | set(RUNTIME_PROVIDED), [a.requirements for a in shipped_in]


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


@pytest.mark.parametrize("artifact", ARTIFACTS.values(), ids=ARTIFACTS.keys())
def test_requirements_have_the_lower_bounds_of_pyproject(artifact: Artifact) -> None:
    declared = pyproject_dependencies()

    requirements = read_requirements(ROOT / artifact.requirements)

    assert requirements, f"{artifact.requirements} lists nothing"
    for name, requirement in requirements.items():
        assert name not in RUNTIME_PROVIDED, f"{name} comes with the Lambda runtime; do not ship it"
        assert name in declared, f"{name} is not a runtime dependency in pyproject.toml"
        assert any(spec.operator == ">=" for spec in requirement.specifier), f"{requirement} has no >= bound"
        assert requirement.specifier == declared[name].specifier, (
            f"{artifact.requirements}: {requirement} disagrees with pyproject.toml's {declared[name]}"
        )


def test_every_runtime_dependency_is_shipped_or_provided() -> None:
    shipped = set().union(*(read_requirements(ROOT / a.requirements).keys() for a in ARTIFACTS.values()))

    assert set(pyproject_dependencies()) - RUNTIME_PROVIDED == shipped


# --------------------------------------------------------------------------- the make targets


def _functions() -> dict[str, dict[str, Any]]:
    template = load_template()
    defaults = template.get("Globals", {}).get("Function", {})
    return {
        function_id: {**defaults, **resource.get("Properties", {}), "Metadata": resource.get("Metadata", {})}
        for function_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


FUNCTIONS = _functions()


@pytest.mark.parametrize("function_id", FUNCTIONS)
def test_make_target_builds_a_lean_artifact_for_the_function(function_id: str, tmp_path: Path) -> None:
    function = FUNCTIONS[function_id]
    artifact = ARTIFACTS[function["Handler"].partition(".")[0]]
    python_version = function["Runtime"].removeprefix("python")
    (architecture,) = function["Architectures"]

    # PYTHON=echo: the package copy really runs; pip and compileall are printed instead of run.
    built = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), f"build-{function_id}", "PYTHON=echo"],
        env={**os.environ, "ARTIFACTS_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert function["Metadata"].get("BuildMethod") == "makefile"
    assert built.returncode == 0, built.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(artifact.packages), built.stdout
    # The developer's own __pycache__ stays behind (bytecode is compiled afresh in the artifact).
    assert not [p for p in tmp_path.rglob("*") if p.name == "__pycache__" or p.suffix == ".pyc"]
    printed = [line.split() for line in built.stdout.splitlines()]
    (pip,) = [line for line in printed if line[:3] == ["-m", "pip", "install"]]
    (compileall,) = [line for line in printed if line[:2] == ["-m", "compileall"]]
    assert pip[pip.index("-r") + 1] == artifact.requirements
    assert pip[pip.index("--target") + 1] == str(tmp_path)
    assert pip[pip.index("--platform") + 1] == WHEEL_PLATFORMS[architecture]
    assert pip[pip.index("--python-version") + 1] == python_version
    assert {"--implementation", "cp", "--only-binary=:all:"} <= set(pip)
    assert compileall[-1] == str(tmp_path)
    assert compileall[compileall.index("--invalidation-mode") + 1] == "unchecked-hash"
