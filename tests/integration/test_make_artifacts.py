"""`make build-<Function>`, what `sam build` runs: each function's line of deploy/artifacts.txt
ships its handler; the target installs Lambda's wheels (arm64 CPython 3.11) and compiles bytecode;
and an artifact really built by it, with this machine's wheels from an offline wheelhouse, holds
what local execution environments stage and runs a job in one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from tests.helpers import records, run_csv
from tests.wheelhouse import wheelhouse
from trawl.local.artifacts import Artifact, artifact_specs, requirement_lines, stage
from trawl.local.session import local_session
from trawl.local.template import load_template
from trawl.resources import data_file

ROOT = Path(__file__).resolve().parents[2]
SPECS = artifact_specs()
# name -> version: the SDK every artifact ships (deploy/constraints.txt)
SDK = {
    Requirement(line).name: str(Requirement(line).specifier).removeprefix("==")
    for line in requirement_lines(data_file("deploy", "constraints.txt"))
}
WHEEL_PLATFORMS = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}


def _functions() -> dict[str, dict[str, Any]]:
    template = load_template()
    defaults = template.get("Globals", {}).get("Function", {})
    return {
        function_id: {**defaults, **resource.get("Properties", {}), "Metadata": resource.get("Metadata", {})}
        for function_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


FUNCTIONS = _functions()


def _make(*arguments: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), *arguments],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_every_function_has_an_artifact_that_ships_its_handler() -> None:
    assert set(SPECS) == set(FUNCTIONS)
    for function_id, function in FUNCTIONS.items():
        assert function["Metadata"].get("BuildMethod") == "makefile", function_id
        assert function["Handler"].partition(".")[0] in SPECS[function_id].packages, function_id


@pytest.mark.parametrize("function_id", FUNCTIONS)
def test_make_target_installs_lambdas_wheels(function_id: str, tmp_path: Path) -> None:
    """What `sam build` runs, printed (make -n): the requirements as wheels for the function's
    architecture and Python, compiled to bytecode in the artifact."""
    function = FUNCTIONS[function_id]
    (architecture,) = function["Architectures"]

    planned = _make("-n", f"build-{function_id}", env={"ARTIFACTS_DIR": str(tmp_path)})

    assert planned.returncode == 0, planned.stderr
    printed = [line.split() for line in planned.stdout.splitlines()]
    (pip,) = [line for line in printed if line[1:4] == ["-m", "pip", "install"]]
    assert pip[pip.index("-r") + 1] == f"deploy/{SPECS[function_id].requirements.name}"
    assert pip[pip.index("--target") + 1].strip('"') == str(tmp_path)
    assert pip[pip.index("--platform") + 1] == WHEEL_PLATFORMS[architecture]
    assert pip[pip.index("--python-version") + 1] == function["Runtime"].removeprefix("python")
    assert {"--implementation", "cp", "--only-binary=:all:"} <= set(pip)
    assert "--invalidation-mode unchecked-hash" in planned.stdout


def test_a_made_artifact_holds_what_the_local_one_does_and_runs_a_job(tmp_path: Path) -> None:
    """`make build-TikTokWorkerFunction` for real, with this machine's wheels from an offline
    wheelhouse instead of Lambda's: the artifact holds its packages and requirements and nothing
    of the checkout, ships bytecode, has the same contents as the one local runs stage, and the
    worker run from it (in an execution environment that sees only it) writes a job's records."""
    spec = SPECS["TikTokWorkerFunction"]
    wheels = wheelhouse(requirement_lines(spec.requirements), tmp_path / "wheels")
    made = tmp_path / "artifact"

    built = _make(
        "build-TikTokWorkerFunction",
        f"PYTHON={sys.executable}",
        f"LAMBDA_WHEELS=--no-index --find-links {wheels}",
        env={"ARTIFACTS_DIR": str(made)},
    )

    assert built.returncode == 0, built.stderr
    staged = stage("TikTokWorkerFunction")
    assert _contents(made) == _contents(staged.task)
    assert {f"boto3-{SDK['boto3']}.dist-info", f"botocore-{SDK['botocore']}.dist-info"} <= _contents(made)
    assert not {"trawl", "tests", "bench", "bin"} & {path.name for path in made.iterdir()}
    compiled = made / "workers" / "__pycache__"
    assert (compiled / f"handler.{sys.implementation.cache_tag}.pyc").is_file()

    with local_session(artifacts={"TikTokWorkerFunction": Artifact(made, staged.runtime)}) as local:
        job_id = run_csv(local, tmp_path, "made.csv", "username\nmade_one\nmade_two\n", "tiktok", "account")
        assert sorted(r["target"] for r in records(local, job_id).values()) == ["made_one", "made_two"]


def _contents(folder: Path) -> set[str]:
    """Top-level names and dist-info folders, without bytecode caches."""
    return {path.name for path in folder.iterdir() if path.name != "__pycache__"}


# Run in an interpreter that sees only the artifact and the standard library, as on Lambda.
_VALIDATE = """
import json, sys
sys.path[:0] = sys.argv[1:]
import boto3, botocore
from botocore.exceptions import ParamValidationError
from botocore.validate import validate_parameters
put = boto3.client("s3", region_name="us-east-1").meta.service_model.operation_model("PutObject")
validate_parameters({"Bucket": "b", "Key": "k", "Body": b"{}", "IfNoneMatch": "*"}, put.input_shape)
try:
    validate_parameters({"Bucket": "b", "Key": "k", "Body": b"{}", "IfNoneMatchOld": "*"}, put.input_shape)
    unknown = "accepted"
except ParamValidationError as error:
    unknown = str(error)
print(json.dumps({"version": botocore.__version__, "file": botocore.__file__, "unknown": unknown}))
"""


def test_the_producers_artifact_carries_the_pinned_sdk_and_it_takes_conditional_writes() -> None:
    """The job claim is put_object(IfNoneMatch="*"): the botocore the producer ships must know the
    parameter, or every job fails on Lambda with ParamValidationError."""
    staged = stage("ProducerFunction")

    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", _VALIDATE, str(staged.task), str(staged.runtime)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["version"] == SDK["botocore"]
    assert Path(answer["file"]).is_relative_to(staged.task)
    assert 'Unknown parameter in input: "IfNoneMatchOld"' in answer["unknown"]  # the check can fail
