"""trawl installs like a tool: its wheel, built from this checkout, installed with its
dependencies into an empty virtualenv, runs `trawl demo` from a folder that is not the checkout.
So the template, the artifacts' table and requirements and the sample CSVs must be package data.
No network: the dependencies' wheels are re-packed from this virtualenv (tests/wheelhouse.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.wheelhouse import wheelhouse

ROOT = Path(__file__).resolve().parents[2]
NOT_SOURCE = (".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache", "trawl-data")


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 300) -> str:
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-4000:]}"
    return done.stdout


def test_the_wheel_in_an_empty_virtualenv_runs_the_demo(tmp_path: Path) -> None:
    wheels = wheelhouse(["trawl[local]"], tmp_path / "wheels", leave_out=["trawl"])
    # A copy, so that setuptools' build/ (which keeps files deleted since) is a fresh one.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    offline = ["--quiet", "--no-index"]
    build = ["wheel", *offline, "--no-deps", "--no-build-isolation", "--wheel-dir", str(wheels), str(source)]
    _run([sys.executable, "-m", "pip", *build], cwd=tmp_path)
    (trawl_wheel,) = wheels.glob("trawl-*.whl")
    # No pip of its own (ensurepip takes seconds): this virtualenv's pip installs into it with
    # `--python`. No .pyc files: compiling the thousands of modules installed (moto's,
    # botocore's) costs far more than the demo saves on the few it imports.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    python = str(venv / "bin" / "python")
    install = ["install", *offline, "--no-compile", "--find-links", str(wheels), f"{trawl_wheel}[local]"]
    _run([sys.executable, "-m", "pip", "--python", python, *install], cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {key: value for key, value in os.environ.items() if key not in {"PYTHONPATH", "VIRTUAL_ENV"}} | {
        "TRAWL_HOME": str(tmp_path / "home"),
        "TRAWL_CACHE_DIR": str(tmp_path / "cache"),
    }

    where = _run([python, "-c", "import trawl; print(trawl.__file__)"], cwd=elsewhere, env=env)
    summary = json.loads(
        _run([str(venv / "bin" / "trawl"), "demo", "--json"], cwd=elsewhere, env=env, timeout=600)
    )

    assert Path(where.strip()).is_relative_to(venv), where
    assert len(summary) == 5 and {job["state"] for job in summary} == {"done"}, summary
    written = list((elsewhere / "trawl-data" / "output").rglob("*.json"))
    assert len(written) == sum(job["records"] for job in summary) > 0
