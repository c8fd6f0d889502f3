"""Reading and validating the routes document; the model itself is :mod:`modelgate_contracts.routes`.

The YAML (or JSON) shape is documented in ``docs/router.md``; validation errors become ``RoutesInvalid``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from modelgate_contracts.routes import (
    NAME_PATTERN,
    TOTAL_BP,
    Guard,
    ModelRoutes,
    RoutesDocument,
    Shadow,
    Variant,
)
from router.errors import RoutesInvalid

__all__ = [
    "NAME_PATTERN",
    "TOTAL_BP",
    "Guard",
    "ModelRoutes",
    "RoutesDocument",
    "Shadow",
    "Variant",
    "load_document",
    "parse_document",
    "parse_model_routes",
]


def _errors(e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "document"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def parse_model_routes(data: Any, model: str) -> ModelRoutes:
    """Validate one model's part of the routes document.

    Args:
        data: the decoded JSON/YAML mapping.
        model: the model name, used in error messages.

    Returns:
        The validated routes.

    Raises:
        RoutesInvalid: the data does not validate; the message lists every problem.
    """
    try:
        return ModelRoutes.model_validate(data)
    except ValidationError as e:
        raise RoutesInvalid(f"routes of model {model!r} are invalid: {_errors(e)}") from e


def parse_document(data: Any) -> RoutesDocument:
    """Validate a whole routes document.

    Args:
        data: the decoded JSON/YAML mapping.

    Returns:
        The validated document.

    Raises:
        RoutesInvalid: the data does not validate.
    """
    if data is None:
        data = {}
    try:
        return RoutesDocument.model_validate(data)
    except ValidationError as e:
        raise RoutesInvalid(f"routes document is invalid: {_errors(e)}") from e


def load_document(path: Path) -> RoutesDocument:
    """Read and validate a routes file (YAML or JSON).

    Args:
        path: the file.

    Returns:
        The validated document.

    Raises:
        RoutesInvalid: the file cannot be read or parsed, or does not validate.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise RoutesInvalid(f"cannot read routes file {path}: {e.strerror}") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise RoutesInvalid(f"routes file {path} is not valid YAML: {e}") from e
    return parse_document(data)
