"""The files trawl reads at run time: template.yaml, the Lambda artifacts' table and requirements
(deploy/) and the sample CSVs. In a checkout trawl/data/ links to the project's own files; in an
installed wheel they are package data. Read through importlib.resources either way."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def data_file(*parts: str) -> Path:
    """A file under trawl/data/ (which holds only plain files: a wheel never zips them)."""
    found = resources.files("trawl").joinpath("data", *parts)
    return Path(str(found))


def template_path() -> Path:
    return data_file("template.yaml")


def sample_path(name: str) -> Path:
    return data_file("samples", name)
