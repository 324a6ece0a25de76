"""Shared fixtures: the local default (embedded AWS from template.yaml + sandbox upstream +
the Lambda event loop), started once per test module that asks for it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from trawl.local.session import LocalSession, local_session

os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
EVENTS = Path(__file__).parent / "events"


@pytest.fixture(scope="module")
def local() -> Iterator[LocalSession]:
    with local_session() as session:
        yield session


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TRAWL_HOME shared by a module's tests, for the `trawl up` stack the module holds."""
    return tmp_path_factory.mktemp("trawl-home")


@pytest.fixture
def module_trawl_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TRAWL_HOME", str(home))
    return home


@pytest.fixture
def own_trawl_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A TRAWL_HOME of the test's own, so no `trawl up` of another test is found."""
    home = tmp_path / "home"
    monkeypatch.setenv("TRAWL_HOME", str(home))
    return home


def load_event(name: str, **values: Any) -> dict[str, Any]:
    """A real-shaped event from tests/events/, with {placeholders} filled in."""
    text = (EVENTS / name).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("{" + key + "}", str(value))
    loaded: dict[str, Any] = json.loads(text)
    return loaded
