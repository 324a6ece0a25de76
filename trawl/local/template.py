"""Reads template.yaml and translates it offline with aws-sam-translator, so the local stack is
created from the very template that is deployed (no hand-written copy of its settings)."""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Any

import yaml

from trawl.resources import template_path

# The translator records usage metrics for AWS's own service and, when nobody publishes them
# (nobody does offline), warns about it as it is garbage-collected, mid-run and in any output.
logging.getLogger("samtranslator.metrics.metrics").setLevel(logging.ERROR)

TEMPLATE_PATH = template_path()
CODE_PLACEHOLDER = "s3://trawl-local-code/code.zip"


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that understands CloudFormation's short-form intrinsics (!Ref, !Sub, ...)."""


def _intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        loaded: dict[str, Any] = yaml.load(handle, Loader=_CfnLoader)
    return loaded


class _OfflinePolicyLoader:
    """The translator asks IAM for managed policy ARNs only when a template names managed
    policies; trawl's roles are written out in full, so offline there is nothing to look up."""

    def load(self) -> dict[str, str]:
        return {}


def translate(template: dict[str, Any], parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """SAM -> plain CloudFormation, offline. CodeUri is swapped for an s3:// placeholder because
    the translator (like `sam deploy`) expects packaged code."""
    from samtranslator.translator.transform import transform

    sam = copy.deepcopy(template)
    sam.setdefault("Globals", {}).setdefault("Function", {})["CodeUri"] = CODE_PLACEHOLDER
    for resource in sam["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"].pop("CodeUri", None)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    translated: dict[str, Any] = transform(sam, parameters or {}, _OfflinePolicyLoader())
    return translated
