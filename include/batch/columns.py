"""Which input columns feed the model and which are carried through (the feature-column rule).

The rule, also in ``docs/batch.md``:

* **One 2-D model input** ``[N, F]`` (the usual case, e.g. the demo model's ``input`` float32
  ``[None, 30]``): the feature columns, in the model's feature order, are

  1. the names given with ``--features`` when given, else
  2. the names of the feature spec given with ``--feature-spec``, else
  3. every numeric column of the file that is not a key (``--keys``), in file order.

  There must be exactly ``F`` of them, each present and numeric (integer, float or boolean);
  they are cast to the input's element type.
* **Several inputs, or 1-D inputs**: each model input is the column of the same name.

Key columns are the ``--keys`` names when given, else every column that is not a feature, in file
order; they are copied to the output unchanged, next to the model's outputs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from include.batch.errors import BatchModelError, FeatureMismatchError

log = logging.getLogger(__name__)

ONNX_TO_NUMPY: dict[str, type[np.generic]] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


@dataclass(frozen=True)
class ModelInput:
    """One input of an ONNX model: its name, numpy element type and shape (``None``/str = dynamic)."""

    name: str
    dtype: type[np.generic]
    shape: tuple[int | str | None, ...]


@dataclass(frozen=True)
class ColumnPlan:
    """How a file's columns map onto the model's inputs.

    Attributes:
        mode: ``"matrix"`` (one 2-D input fed from ``features``) or ``"named"`` (one column per input).
        features: feature columns in the model's order (``matrix``) or the input names (``named``).
        keys: columns carried through to the output unchanged.
        inputs: the model's inputs.
    """

    mode: Literal["matrix", "named"]
    features: tuple[str, ...]
    keys: tuple[str, ...]
    inputs: tuple[ModelInput, ...]


def load_feature_names(path: Path) -> list[str]:
    """Read the ordered feature names of a feature spec JSON file.

    Accepts the layout written by ``include.synthetic`` (``{"features": [{"name": ...}, ...]}``),
    ``{"features": ["a", "b"]}`` or a plain list of names.

    Args:
        path: the feature spec file.

    Returns:
        The feature names in order.

    Raises:
        FeatureMismatchError: the file is unreadable or holds no list of names.
    """
    try:
        doc: Any = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise FeatureMismatchError(f"feature spec {path}: cannot read it as JSON ({e})") from e
    items = doc.get("features") if isinstance(doc, dict) else doc
    if not isinstance(items, list) or not items:
        raise FeatureMismatchError(f"feature spec {path}: expected a non-empty 'features' list")
    names = [it.get("name") if isinstance(it, dict) else it for it in items]
    if not all(isinstance(n, str) and n for n in names):
        raise FeatureMismatchError(f"feature spec {path}: every feature needs a non-empty string name")
    return [str(n) for n in names]


def _is_numeric(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t))


def _check_columns(schema: pa.Schema, names: Sequence[str], source: str, role: str) -> None:
    present = set(schema.names)
    missing = [n for n in names if n not in present]
    if missing:
        raise FeatureMismatchError(
            f"{source}: missing {role} column(s) {missing}; the file has {schema.names}"
        )
    if role == "feature":
        bad = [f"{n} ({schema.field(n).type})" for n in names if not _is_numeric(schema.field(n).type)]
        if bad:
            raise FeatureMismatchError(f"{source}: feature column(s) of a non-numeric type: {', '.join(bad)}")


def plan_columns(
    schema: pa.Schema,
    inputs: Sequence[ModelInput],
    *,
    source: str,
    features: Sequence[str] | None = None,
    keys: Sequence[str] | None = None,
) -> ColumnPlan:
    """Apply the feature-column rule (see the module docstring) to one file's schema.

    Args:
        schema: the Parquet file's Arrow schema.
        inputs: the model's inputs.
        source: the file, named in error messages.
        features: explicit feature names in model order (``--features`` or the feature spec).
        keys: explicit key columns (``--keys``).

    Returns:
        The plan: feature columns in model order and key columns in file order.

    Raises:
        FeatureMismatchError: a column is missing, non-numeric, counted wrong or listed twice.
        BatchModelError: the model has no inputs.
    """
    if not inputs:
        raise BatchModelError("the model has no inputs")
    if len(set(schema.names)) != len(schema.names):
        raise FeatureMismatchError(f"{source}: duplicate column names in {schema.names}")
    if keys is not None:
        _check_columns(schema, keys, source, "key")
    matrix = len(inputs) == 1 and len(inputs[0].shape) == 2
    if matrix:
        width = inputs[0].shape[1]
        if features is not None:
            feats = list(features)
        else:
            excluded = set(keys or ())
            feats = [f.name for f in schema if f.name not in excluded and _is_numeric(f.type)]
        _check_columns(schema, feats, source, "feature")
        if isinstance(width, int) and len(feats) != width:
            raise FeatureMismatchError(
                f"{source}: the model's input {inputs[0].name!r} takes {width} features but "
                f"{len(feats)} feature columns were found ({feats[:8]}{'…' if len(feats) > 8 else ''}); "
                "name them with --features or --feature-spec"
            )
    else:
        feats = [i.name for i in inputs]
        for i in inputs:
            if len(i.shape) > 2 or (len(i.shape) == 2 and i.shape[1] not in (1, None)):
                raise BatchModelError(
                    f"model input {i.name!r} has shape {list(i.shape)}; only [N] or [N, 1] per column"
                )
        _check_columns(schema, feats, source, "feature")
    if len(set(feats)) != len(feats):
        raise FeatureMismatchError(f"{source}: feature columns listed twice in {feats}")
    key_cols = list(keys) if keys is not None else [n for n in schema.names if n not in set(feats)]
    both = sorted(set(key_cols) & set(feats))
    if both:
        raise FeatureMismatchError(f"{source}: column(s) {both} given both as keys and as features")
    return ColumnPlan("matrix" if matrix else "named", tuple(feats), tuple(key_cols), tuple(inputs))
