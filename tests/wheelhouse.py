"""Wheels re-packed from the distributions installed in this virtualenv, so a test can run a real
`pip install --no-index --find-links` with no network: the files each distribution's RECORD
lists, its dist-info, and a fresh RECORD, named by the tags its WHEEL file gives."""

from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name

from trawl.local.artifacts import closure

# Written by the installer, not part of the wheel it installed.
_INSTALLER_FILES = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})


def wheelhouse(requirements: Iterable[str], folder: Path, leave_out: Iterable[str] = ()) -> Path:
    """A folder of wheels for `requirements` and everything they need, as installed here."""
    skipped = {canonicalize_name(name) for name in leave_out}
    folder.mkdir(parents=True, exist_ok=True)
    for dist in closure(requirements, "a test's wheelhouse"):
        if canonicalize_name(dist.metadata["Name"]) not in skipped:
            repack(dist, folder)
    return folder


def repack(dist: metadata.Distribution, folder: Path) -> Path:
    files = [f for f in dist.files or [] if f.parts[0] != ".." and "__pycache__" not in f.parts]
    info = next(f.parts[0] for f in files if f.parts[0].endswith(".dist-info"))
    wheel = folder / f"{_escape(dist.metadata['Name'])}-{_escape(dist.version)}-{_tags(dist)}.whl"
    record = []
    # Stored, not deflated: the wheels live for one test, and botocore's data would take seconds.
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as archive:
        for file in files:
            if file.parts[0] == info and file.name in _INSTALLER_FILES:
                continue
            source = Path(str(dist.locate_file(file)))
            if not source.is_file():
                continue
            data = source.read_bytes()
            archive.writestr(file.as_posix(), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{file.as_posix()},sha256={digest},{len(data)}")
        record.append(f"{info}/RECORD,,")
        archive.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return wheel


def _tags(dist: metadata.Distribution) -> str:
    """python-abi-platform from the WHEEL file's Tag lines (a tag set joins its values with dots)."""
    lines = (line.partition(":") for line in (dist.read_text("WHEEL") or "").splitlines())
    parts = [value.strip().split("-") for key, _, value in lines if key.strip() == "Tag"]
    if not parts:
        raise ValueError(f"{dist.metadata['Name']}'s WHEEL file has no Tag lines")
    return "-".join(".".join(sorted({part[i] for part in parts})) for i in range(3))


def _escape(text: str) -> str:
    return re.sub(r"[^\w\d.]+", "_", text, flags=re.UNICODE)
