"""`--parameter NAME=VALUE` on `trawl run`, `demo` and `up`, as a user types it: a value the
template refuses (as CloudFormation would) is a usage error before anything starts, a flag and a
parameter setting the same URL are refused, and a valid parameter reaches the stack the command
creates (OutputFormat=csv: CSV files in the data dir)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

import trawl.cli.local
from trawl.cli import app
from trawl.stack.running import UpState

# The installed console script, as users run it.
TRAWL = str(Path(sys.executable).with_name("trawl"))
runner = CliRunner()
KEY = "RealLookingTikApiKey0123456789"


pytestmark = pytest.mark.usefixtures("own_trawl_home")


@pytest.fixture
def nothing_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails the test if the command starts a local stack (the embedded AWS and the sandbox)."""

    def local_session(**kwargs: Any) -> None:
        raise AssertionError("a local stack was started")

    monkeypatch.setattr(trawl.cli.local, "local_session", local_session)


@pytest.fixture
def accounts(tmp_path: Path) -> Path:
    path = tmp_path / "tiktok_accounts.csv"
    path.write_text("username\ncsv_alpha\ncsv_beta\n", encoding="utf-8")
    return path


def _unboxed(text: str) -> str:
    """An error as the user reads it, without the box typer draws around it."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def _command(name: str, csv_path: Path, tmp_path: Path) -> list[str]:
    if name == "run":
        return ["run", str(csv_path), "--data-dir", str(tmp_path / "data")]
    if name == "demo":
        return ["demo", "--data-dir", str(tmp_path / "data")]
    return ["up"]


def test_a_bad_value_is_refused_before_anything_starts(tmp_path: Path, accounts: Path) -> None:
    env = os.environ | {"TRAWL_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    command = [TRAWL, "run", str(accounts), "--data-dir", str(tmp_path / "data")]
    started = time.monotonic()
    ran = subprocess.run(
        [*command, "--parameter", "OutputFormat=csv", "--parameter", "WorkerBatchSize=0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started

    assert ran.returncode == 2, ran.stderr
    said = _unboxed(ran.stderr)
    assert "Invalid value for --parameter: parameter WorkerBatchSize: '0' is below its MinValue 1" in said
    assert "Traceback" not in ran.stderr
    assert "starting the embedded AWS" not in ran.stderr + ran.stdout
    assert ran.stdout == ""
    assert not (tmp_path / "data").exists()
    assert elapsed < 20, f"refusing took {elapsed:.1f} s: was something started?"


@pytest.mark.parametrize("command", ["run", "demo", "up"])
@pytest.mark.usefixtures("nothing_starts")
def test_every_local_command_checks_its_parameters(command: str, tmp_path: Path, accounts: Path) -> None:
    args = _command(command, accounts, tmp_path)
    bad = runner.invoke(app, [*args, "--parameter", "OutputFormat=xml"])
    assert bad.exit_code == 2, bad.output
    assert "parameter OutputFormat: 'xml' is not one of its AllowedValues: json, csv" in _unboxed(bad.output)

    unknown = runner.invoke(app, [*args, "--parameter", "OutputFormats=csv"])
    assert unknown.exit_code == 2, unknown.output
    assert "unknown parameter 'OutputFormats': did you mean OutputFormat?" in _unboxed(unknown.output)

    malformed = runner.invoke(app, [*args, "--parameter", "OutputFormat"])
    assert malformed.exit_code == 2, malformed.output
    assert "expected NAME=VALUE (e.g. OutputFormat=csv), got 'OutputFormat'" in _unboxed(malformed.output)
    assert not any(r.exception and not isinstance(r.exception, SystemExit) for r in (bad, unknown, malformed))


@pytest.mark.parametrize("command", ["run", "demo", "up"])
def test_the_help_documents_the_flag(command: str) -> None:
    shown = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0
    text = _unboxed(shown.output)
    assert "--parameter NAME=VALUE" in text and "sam deploy --parameter-overrides" in text


@pytest.mark.usefixtures("nothing_starts")
def test_a_url_flag_and_its_parameter_together_are_refused(tmp_path: Path, accounts: Path) -> None:
    args = _command("run", accounts, tmp_path)
    both = runner.invoke(
        app,
        [
            *args,
            "--tikapi-url",
            "https://api.tikapi.io",
            "--parameter",
            "TikApiBaseUrl=https://other.example",
        ],
        env={"TIKAPI_KEY": KEY},
    )
    assert both.exit_code == 2, both.output
    said = _unboxed(both.output)
    assert "--tikapi-url and --parameter TikApiBaseUrl=... were both given" in said
    assert "pass one of them" in said

    zyte = runner.invoke(
        app,
        [
            *args,
            "--zyte-url",
            "https://api.zyte.com/v1/extract",
            "--parameter",
            "ZyteApiUrl=https://z.example",
        ],
        env={"ZYTE_API_KEY": "zyte-key-0123456789"},
    )
    assert zyte.exit_code == 2, zyte.output
    assert "--zyte-url and --parameter ZyteApiUrl=... were both given" in _unboxed(zyte.output)


@pytest.mark.usefixtures("nothing_starts")
def test_a_url_flag_is_checked_against_the_parameter_pattern(tmp_path: Path, accounts: Path) -> None:
    # What check_upstream_url lets by, TikApiBaseUrl's AllowedPattern does not (a query string).
    args = _command("run", accounts, tmp_path)
    ran = runner.invoke(app, [*args, "--tikapi-url", "https://api.tikapi.io/?x=1"], env={"TIKAPI_KEY": KEY})
    assert ran.exit_code == 2, ran.output
    said = _unboxed(ran.output)
    assert "Invalid value for --tikapi-url: parameter TikApiBaseUrl: 'https://api.tikapi.io/?x=1'" in said


@pytest.mark.parametrize("where", ["deployed", "trawl up"])
@pytest.mark.usefixtures("nothing_starts")
def test_a_parameter_is_refused_on_a_stack_this_command_does_not_create(
    where: str, tmp_path: Path, accounts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = SimpleNamespace(name="trawl", endpoint=SimpleNamespace(url=None, local=False))
    up = UpState("http://127.0.0.1:1", "http://127.0.0.1:2", "trawl", 1) if where == "trawl up" else None
    monkeypatch.setattr(trawl.cli.local, "attach", lambda stack_name, endpoint_url: (stack, up))

    ran = runner.invoke(app, [*_command("run", accounts, tmp_path), "--parameter", "OutputFormat=csv"])
    assert ran.exit_code == 2, ran.output
    said = _unboxed(ran.output)
    assert said.startswith("--parameter cannot be used here: ")
    if up is None:
        assert (
            "a deployed stack's parameters are set when it is deployed (sam deploy --parameter-overrides)"
            in said
        )
    else:
        assert "the running `trawl up` stack sets its parameters when it starts: stop it, then " in said
        assert "`trawl up --parameter ...`, or run without --parameter" in said
    assert said.endswith("a --parameter applies only to a stack this command creates.")


def test_output_format_csv_reaches_the_stack(tmp_path: Path, accounts: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_")}
    env["TRAWL_HOME"] = str(tmp_path / "home")
    data = tmp_path / "data"
    command = [
        TRAWL,
        "run",
        str(accounts),
        "--json",
        "--data-dir",
        str(data),
        "--parameter",
        "OutputFormat=csv",
    ]
    ran = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)

    assert ran.returncode == 0, ran.stderr[-3000:]
    summary = json.loads(ran.stdout)
    assert (summary["written_ok"], summary["dead_lettered"]) == (2, 0)
    output = data / "output"
    assert not list(output.rglob("*.json"))
    files = sorted(output.rglob("*.csv"))
    job_id = summary["job_id"]
    assert [f.name for f in files] == [f"{job_id}-csv_alpha.csv", f"{job_id}-csv_beta.csv"]
    assert all(f.parent.parent.name == "kind=account" for f in files)
    rows = [row for f in files for row in csv.DictReader(io.StringIO(f.read_text(encoding="utf-8")))]
    assert [(r["status"], r["data_unique_id"]) for r in rows] == [("ok", "csv_alpha"), ("ok", "csv_beta")]


def test_a_watch_schedule_the_local_stack_cannot_fire_is_refused_at_start(
    tmp_path: Path, accounts: Path
) -> None:
    env = os.environ | {"TRAWL_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    command = [TRAWL, "run", str(accounts), "--data-dir", str(tmp_path / "data")]
    ran = subprocess.run(
        [*command, "--parameter", "WatchScheduleExpression=cron(0 6 LW * ? *)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert ran.returncode == 2, ran.stderr
    said = _unboxed(ran.stderr)
    assert "WatchScheduleExpression: cron(0 6 LW * ? *): 'LW' in day-of-month does not work locally" in said
    assert "starting the embedded AWS" not in ran.stderr + ran.stdout
