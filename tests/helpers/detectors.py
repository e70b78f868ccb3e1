"""Detector files for tests: the built-in Twilio YAML as a document to copy and break one field of."""

from __future__ import annotations

import copy
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

DELETE = object()  # as a value of ``edited``: remove the field
BAD_REGEX = r"\b(AC[0-9a-f]{32}\b"  # an unclosed group


@cache
def _builtin() -> dict[str, Any]:
    text = resources.files("auditor.detectors.builtin").joinpath("twilio_master_credentials.yaml").read_text()
    return yaml.safe_load(text)


def builtin_doc(detector_id: str = "custom_twilio", **changes: Any) -> dict[str, Any]:
    """A deep copy of the built-in detector's document under another id, top-level fields changed (or ``DELETE``d)."""
    doc = copy.deepcopy(_builtin())
    doc["id"] = detector_id
    for key, value in changes.items():
        if value is DELETE:
            del doc[key]
        else:
            doc[key] = value
    return doc


def edited(doc: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """``doc`` with the field at ``dotted`` (``check.responses.0.validity``) set to ``value`` (or ``DELETE``d)."""
    *parents, last = dotted.split(".")
    node: Any = doc
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if value is DELETE:
        del node[int(last) if isinstance(node, list) else last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return doc


def write_detector(directory: Path, name: str, doc: dict[str, Any] | str) -> Path:
    """Write a detector file (a document, or raw text) into ``directory`` (created); its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc), encoding="utf-8")
    return path
