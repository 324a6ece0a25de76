"""Each Lambda function's artifact, staged for the local execution environments.

An artifact holds what `make build-<LogicalId>` ships to Lambda: the first-party packages and the
requirements its line of deploy/artifacts.txt names. Locally the requirements come from the
distributions already installed in this virtualenv (importlib.metadata lists each one's files,
and their own requirements give the closure), for this machine's platform, so a local run needs
no network and never runs pip. A requirement pinned to a version (the AWS SDK, from
deploy/constraints.txt) must be installed here at that version, or staging stops: the SDK a
local run exercises is the one that ships.

Lambda's python3.11 runtime has a boto3 of its own in its runtime directory, after the task
root on sys.path. The artifacts ship theirs, so nothing may come from there: locally the runtime
directory is empty. An environment's process sees the artifact, that directory and the standard
library, nothing else (trawl/local/bootstrap.py), so an import the artifact lacks fails locally
as it would on Lambda.

An artifact is staged once per source state, in a cache directory (TRAWL_CACHE_DIR, else
~/.cache/trawl), keyed by the contents of its packages and the versions of its distributions.
It is staged under a temporary name and renamed into place, so concurrent stagers (parallel
tests) never see half of one."""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from trawl.resources import data_file

BOOTSTRAP = Path(__file__).with_name("bootstrap.py")
# Staged directories of earlier source states are removed once this old (a running environment
# of another checkout could still be importing from one a little younger).
STALE_AFTER_S = 24 * 3600


class ArtifactError(RuntimeError):
    """An artifact cannot be staged: what is missing, and where it was asked for."""


@dataclass(frozen=True)
class ArtifactSpec:
    logical_id: str
    packages: tuple[str, ...]
    requirements: Path


@dataclass(frozen=True)
class Artifact:
    task: Path  # LAMBDA_TASK_ROOT: the function's packages and their dependencies
    runtime: Path  # LAMBDA_RUNTIME_DIR: empty (the function may use nothing of the runtime's)


def artifact_specs() -> dict[str, ArtifactSpec]:
    """deploy/artifacts.txt: logical id -> its packages and requirements file."""
    specs = {}
    for line in data_file("deploy", "artifacts.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        logical_id, packages, requirements = line.split()
        path = data_file("deploy", Path(requirements).name)
        specs[logical_id] = ArtifactSpec(logical_id, tuple(packages.split(",")), path)
    return specs


def requirement_lines(path: Path) -> list[str]:
    """A requirements file's requirements, without comments (the files use no pip options)."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def closure(requirements: Iterable[str], why: str) -> list[metadata.Distribution]:
    """The installed distributions `requirements` (names, or requirement strings with extras)
    need, with everything they require, as pip would install them: a requirement whose marker does
    not hold here, or that belongs to an extra nobody asked for, is left out."""
    found: dict[str, metadata.Distribution] = {}
    extras: dict[str, set[str]] = {}
    todo = [Requirement(text) for text in requirements]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        wanted = extras.setdefault(name, set())
        if name in found and requirement.extras <= wanted:
            continue
        wanted |= requirement.extras
        try:
            dist = found.get(name) or metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise ArtifactError(f"{name} is needed by {why} but is not installed here") from None
        if requirement.specifier and not requirement.specifier.contains(dist.version, prereleases=True):
            raise ArtifactError(
                f"{why} needs {requirement} but {dist.version} is installed here; `make` installs "
                "the virtualenv with deploy/constraints.txt, which pins what the artifacts ship"
            )
        found[name] = dist
        for text in dist.requires or []:
            needed = Requirement(text)
            markers = [{"extra": extra} for extra in ("", *sorted(wanted))]
            if needed.marker is None or any(needed.marker.evaluate(m) for m in markers):
                todo.append(needed)
    return sorted(found.values(), key=lambda d: canonicalize_name(d.metadata["Name"]))


def stage(logical_id: str, cache: Path | None = None) -> Artifact:
    """The function's staged artifact (staged now if this source state has none yet)."""
    specs = artifact_specs()
    spec = specs.get(logical_id)
    if spec is None:
        raise ArtifactError(f"deploy/artifacts.txt has no line for {logical_id} (it has {', '.join(specs)})")
    root = cache or cache_dir()
    why = f"{logical_id} ({spec.requirements.name})"
    dists = closure(requirement_lines(spec.requirements), why)
    sources = [_package_dir(name, logical_id) for name in spec.packages]
    key = _key(_versions(dists), spec.requirements.read_bytes(), *(_tree_digest(s) for s in sources))
    task = _staged(root / "artifacts" / f"{logical_id}-{key}", lambda d: _fill_task(d, sources, dists))
    runtime = _staged(root / "runtime" / "empty", lambda d: None)
    _prune(root / "artifacts", f"{logical_id}-", keep=task)
    return Artifact(task=task, runtime=runtime)


def cache_dir() -> Path:
    if os.environ.get("TRAWL_CACHE_DIR"):
        return Path(os.environ["TRAWL_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "trawl"


def _package_dir(name: str, logical_id: str) -> Path:
    spec = util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ArtifactError(f"{logical_id} ships the package '{name}', which is not importable here")
    return Path(next(iter(spec.submodule_search_locations)))


def _versions(dists: list[metadata.Distribution]) -> bytes:
    return "\n".join(f"{d.metadata['Name']}=={d.version}" for d in dists).encode()


def _key(*parts: bytes) -> str:
    digest = hashlib.sha256(f"{sys.version}|{sys.platform}|{platform.machine()}".encode())
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:16]


def _tree_digest(package: Path) -> bytes:
    digest = hashlib.sha256()
    for path in sorted(_package_files(package)):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return digest.digest()


def _package_files(package: Path) -> Iterable[Path]:
    for path in package.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            yield path


def _staged(final: Path, fill: Callable[[Path], None]) -> Path:
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=final.name + ".", dir=final.parent))
    try:
        fill(scratch)
        try:
            scratch.rename(final)
        except OSError:
            if not final.is_dir():  # not another stager's win: a real failure
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return final


def _fill_task(target: Path, sources: list[Path], dists: list[metadata.Distribution]) -> None:
    for source in sources:
        for path in _package_files(source):
            destination = target / source.name / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)  # copied, not linked: an edit in place must not reach it
    _copy_distributions(target, dists)


def _copy_distributions(target: Path, dists: list[metadata.Distribution]) -> None:
    for dist in dists:
        for file in dist.files or []:
            if file.parts[0] == ".." or "__pycache__" in file.parts or file.suffix == ".pyc":
                continue  # console scripts (pip --target drops bin/ too), and compiled caches
            source = Path(str(dist.locate_file(file)))
            if not source.is_file():
                continue
            destination = target / file
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, destination)
            except OSError:
                shutil.copy2(source, destination)


def _prune(folder: Path, prefix: str, keep: Path) -> None:
    now = time.time()
    for path in folder.glob(prefix + "*"):
        if path == keep or "." in path.name[len(prefix) :]:
            continue  # the one in use, or a stager's scratch directory
        try:
            if now - path.stat().st_mtime > STALE_AFTER_S:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            continue
