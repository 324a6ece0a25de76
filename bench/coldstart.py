"""Cold-start benchmark (`python -m bench.coldstart`): how long importing each handler module
takes in a fresh interpreter shaped like its Lambda execution environment (`python -I -S` with
only the function's staged artifact, the runtime's boto3 and the standard library on sys.path,
as trawl/local/bootstrap.py runs it), side by side with the same import in the dev virtualenv,
median of 5 each after one warm-up run that writes the bytecode (Lambda's artifact ships it).
Also: the most expensive packages under each handler, and any package a handler imports but has
no use for (the local runtime, CLI and dev tools must never reach a Lambda artifact)."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import table, verdict
from trawl.local.artifacts import Artifact, stage

# logical id -> the module its Handler names (one function per kind of artifact)
HANDLERS = {
    "ProducerFunction": "producer.handler",
    "TikTokWorkerFunction": "workers.handler",
    "LedgerFunction": "ledger.handler",
}
TARGET_MS = 300.0
# Never in a handler: they belong to the local runtime, the CLI or development.
FORBIDDEN = {
    "trawl",
    "moto",
    "duckdb",
    "rich",
    "typer",
    "yaml",
    "samtranslator",
    "cfnlint",
    "werkzeug",
    "flask",
    "pytest",
    "bench",
    "tests",
}
# What each handler needs (with the packages those pull in); anything else is listed for review.
RUNTIME = {
    "models",
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "dateutil",
    "urllib3",
    "six",
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "typing_extensions",
    "typing_inspection",
    "aws_lambda_powertools",
}
# httpx/__init__ imports its CLI (click, rich, pygments) and decoders (brotli, zstandard) when they
# are installed: the dev venv has them (typer), the worker's artifact does not.
HTTPX_EXTRAS = {"click", "rich", "pygments", "brotli", "brotlicffi", "zstandard"}
# Probed and missing (pickle's Jython check `import org.python.core`), not a dependency.
IGNORED = {"org"}
EXPECTED = {
    "producer": RUNTIME | {"producer"},
    "workers": RUNTIME | {"workers", "httpx", "httpcore", "h11", "anyio", "sniffio", "idna", "certifi"},
    "ledger": RUNTIME | {"ledger"},
}


@dataclass
class ImportRun:
    total_us: int  # cumulative of the handler's own package chain
    self_us_by_package: dict[str, int] = field(default_factory=dict)
    packages: set[str] = field(default_factory=set)


def import_once(module: str, artifact: Artifact | None) -> ImportRun:
    """One fresh interpreter importing `module`: inside the artifact, or in the dev venv (None)."""
    if artifact is None:
        command = [sys.executable, "-X", "importtime", "-c", f"import {module}"]
    else:
        paths = [str(artifact.task), str(artifact.runtime)]
        code = f"import sys; sys.path[:0] = {paths!r}; import {module}"
        command = [sys.executable, "-I", "-S", "-X", "importtime", "-c", code]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=Path.home())
    own = module.split(".")[0]
    run = ImportRun(total_us=0)
    by_package: dict[str, int] = defaultdict(int)
    subtree: list[tuple[str, int]] = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line[len("import time:") :].split("|")
        top = name.strip().split(".")[0]
        subtree.append((top, int(self_us)))
        if name.startswith("  "):
            continue
        # -X importtime prints a module after its children, so a top-level line closes its
        # subtree; those of interpreter start-up (site, encodings) come before the -c import.
        if top == own:
            run.total_us += int(cumulative_us)
            for package, us in subtree:
                by_package[package] += us
                run.packages.add(package)
        subtree = []
    run.self_us_by_package = dict(by_package)
    return run


def _third_party(packages: set[str]) -> set[str]:
    names = {p for p in packages if p not in sys.stdlib_module_names and not p.startswith("_")}
    return names - IGNORED


# The rest of a cold start before the first batch: the SDK's import and a client (build_deps).
_FIRST_CLIENT = """
import sys, time
sys.path[:0] = sys.argv[2:]
started = time.perf_counter()
__import__(sys.argv[1])
import boto3
boto3.client("s3", region_name="us-east-1")
print((time.perf_counter() - started) * 1000)
"""


def with_client_ms(module: str, repeats: int, artifact: Artifact) -> float:
    """Median wall time of importing the handler, then boto3, then creating an S3 client."""
    command = [
        sys.executable,
        "-I",
        "-S",
        "-c",
        _FIRST_CLIENT,
        module,
        str(artifact.task),
        str(artifact.runtime),
    ]
    runs = [
        float(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
        for _ in range(repeats + 1)
    ]
    return statistics.median(runs[1:])


def measure(module: str, repeats: int, artifact: Artifact | None) -> tuple[float, dict[str, float], set[str]]:
    import_once(module, artifact)  # writes the bytecode, which Lambda's artifact ships
    runs = [import_once(module, artifact) for _ in range(repeats)]
    total_ms = statistics.median(r.total_us for r in runs) / 1000
    packages = set().union(*(r.packages for r in runs))
    cost = {p: statistics.median(r.self_us_by_package.get(p, 0) for r in runs) / 1000 for p in packages}
    return total_ms, cost, packages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(
        f"coldstart: import time of each handler in a fresh interpreter, median of {args.repeats}: "
        "inside the function's artifact (as on Lambda) and in the dev virtualenv"
    )
    summary, details = [], []
    for logical_id, module in HANDLERS.items():
        own = module.split(".")[0]
        artifact = stage(logical_id)
        total_ms, cost, packages = measure(module, args.repeats, artifact)
        venv_ms, _, venv_packages = measure(module, args.repeats, None)
        client_ms = with_client_ms(module, args.repeats, artifact)
        third = _third_party(packages)
        forbidden = sorted(third & FORBIDDEN)
        unexpected = sorted(third - EXPECTED[own] - FORBIDDEN)
        summary.append(
            [
                module,
                f"{total_ms:.0f}",
                f"{venv_ms:.0f}",
                f"{total_ms / venv_ms:.2f}",
                f"{TARGET_MS:.0f}",
                verdict(total_ms <= TARGET_MS),
                f"{client_ms:.0f}",
            ]
        )
        top = sorted(cost.items(), key=lambda kv: kv[1], reverse=True)[:10]
        only_in_venv = sorted(_third_party(venv_packages) - third)
        details.append((module, top, forbidden, unexpected, only_in_venv))
    headers = ["handler", "artifact ms", "dev venv ms", "ratio", "target ms", "verdict", "+ boto3 client ms"]
    print(table(headers, summary))
    for module, top, forbidden, unexpected, only_in_venv in details:
        print(f"\n{module} in its artifact: 10 most expensive packages (own import time, all modules)")
        print(table(["package", "ms"], [[name, f"{ms:.1f}"] for name, ms in top]))
        print(f"forbidden imports (must not appear): {_listed(forbidden)}")
        print(f"other third-party imports to review: {_listed(unexpected)}")
        print(f"imported only in the dev venv: {_listed(only_in_venv)}")
    print(
        "\n* httpx imports these when installed; the dev venv has them, the Lambda artifact does not."
        "\n  boto3 is imported by the first client, in build_deps, not by the handler's module:"
        "\n  '+ boto3 client' is the handler's import, boto3's and an S3 client's, in the artifact."
    )


def _listed(names: list[str]) -> str:
    return ", ".join(f"{n}*" if n in HTTPX_EXTRAS else n for n in names) or "none"


if __name__ == "__main__":
    main()
