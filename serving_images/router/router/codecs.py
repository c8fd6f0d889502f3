"""Protocol translation: OIP v2 and MLflow scoring bodies to feeds, outputs to response bodies."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson

from router.errors import BadRequest
from router.model import DATATYPES, OnnxModel

_OPTS = orjson.OPT_SERIALIZE_NUMPY


def decode_json(body: bytes) -> Any:
    """Parse a JSON body.

    Args:
        body: the raw bytes.

    Returns:
        The decoded value.

    Raises:
        BadRequest: empty or malformed JSON.
    """
    if not body:
        raise BadRequest("request body is empty; expected a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise BadRequest(f"request body is not valid JSON: {e}") from e


def int_header(raw: bytes | None, default: int = 0) -> int:
    """Read an integer header or query value.

    Args:
        raw: the value, or None.
        default: what a missing or non-integer value reads as.

    Returns:
        The integer.
    """
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        return default


def _array(name: str, data: Any, dtype: Any) -> np.ndarray:
    try:
        return np.asarray(data, dtype=dtype)
    except (ValueError, TypeError, OverflowError, RecursionError) as e:
        raise BadRequest(f"input {name!r}: data cannot be read as {np.dtype(dtype).name}: {e}") from e


def _reshape(name: str, arr: np.ndarray, shape: list[int]) -> np.ndarray:
    """Give ``arr`` the declared ``shape``, refusing a shape its values do not fill exactly.

    The element count is a Python integer product, so a shape such as ``[2**30, 2**30, 16]`` (2**64
    elements, 0 in int64 arithmetic) is compared exactly instead of wrapping around.
    """
    count = math.prod(shape)
    if arr.size != count:
        raise BadRequest(f"input {name!r}: {arr.size} values do not fill shape {shape} ({count} elements)")
    if arr.shape == tuple(shape):
        return arr
    try:
        return arr.reshape(shape)
    except ValueError as e:  # not expected once the counts agree; still a client error
        raise BadRequest(f"input {name!r}: data cannot take shape {shape}: {e}") from e


def _input_spec(model: OnnxModel, name: Any) -> Any:
    for spec in model.inputs:
        if spec.name == name:
            return spec
    raise BadRequest(f"model has no input {name!r}; inputs are {list(model.input_names)}")


def oip_feeds(req: Any, model: OnnxModel, allow_non_finite: bool) -> dict[str, np.ndarray]:
    """Translate an OIP v2 inference request into feeds.

    Args:
        req: the decoded JSON body.
        model: the chosen model.
        allow_non_finite: accept NaN and infinity.

    Returns:
        Input name to checked array.

    Raises:
        BadRequest: the body does not follow the protocol or does not fit the model.
    """
    if not isinstance(req, dict) or not isinstance(req.get("inputs"), list) or not req["inputs"]:
        raise BadRequest("OIP v2 request must be an object with a non-empty 'inputs' list")
    feeds: dict[str, np.ndarray] = {}
    for item in req["inputs"]:
        if not isinstance(item, dict):
            raise BadRequest("each entry of 'inputs' must be an object with name, shape, datatype and data")
        spec = _input_spec(model, item.get("name"))
        name = spec.name
        datatype, shape, data = item.get("datatype"), item.get("shape"), item.get("data")
        if datatype != spec.datatype:
            raise BadRequest(f"input {name!r} must have datatype {spec.datatype}, got {datatype!r}")
        if (
            not isinstance(shape, list)
            or not shape
            or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**31 for d in shape)
        ):
            raise BadRequest(f"input {name!r}: 'shape' must be a non-empty list of non-negative integers")
        if data is None or isinstance(data, (dict, str)):
            raise BadRequest(f"input {name!r}: 'data' must be a list of {datatype} values")
        arr = _array(name, data, DATATYPES[datatype])
        feeds[name] = model.check(name, _reshape(name, arr, shape), spec, allow_non_finite)
    missing = [n for n in model.input_names if n not in feeds]
    if missing:
        raise BadRequest(f"missing inputs {missing}")
    return feeds


def oip_response(
    model_name: str, version: str, request_id: str, model: OnnxModel, outputs: list[Any]
) -> bytes:
    """Build an OIP v2 inference response.

    Args:
        model_name: the model name.
        version: the served version.
        request_id: the request id.
        model: the model (for output names and datatypes).
        outputs: the outputs.

    Returns:
        JSON bytes.
    """
    return orjson.dumps(
        {
            "model_name": model_name,
            "model_version": version,
            "id": request_id,
            "outputs": [
                {"name": spec.name, "datatype": spec.datatype, "shape": list(out.shape), "data": out.ravel()}
                for spec, out in zip(model.outputs, outputs, strict=True)
            ],
        },
        option=_OPTS,
    )


def _tensor(model: OnnxModel, value: Any, allow_non_finite: bool, what: str) -> dict[str, np.ndarray]:
    if isinstance(value, dict):
        feeds = {}
        for name, data in value.items():
            spec = _input_spec(model, name)
            feeds[name] = model.check(name, _array(name, data, spec.dtype), spec, allow_non_finite)
        missing = [n for n in model.input_names if n not in feeds]
        if missing:
            raise BadRequest(f"'{what}' is missing inputs {missing}")
        return feeds
    if len(model.inputs) != 1:
        raise BadRequest(
            f"model has inputs {list(model.input_names)}: send '{what}' as an object keyed by input"
        )
    if not isinstance(value, list):
        raise BadRequest(f"'{what}' must be a list (or an object keyed by input name)")
    spec = model.inputs[0]
    return {spec.name: model.check(spec.name, _array(spec.name, value, spec.dtype), spec, allow_non_finite)}


def _columns(
    model: OnnxModel, columns: list[Any], rows: list[Any], allow_non_finite: bool
) -> dict[str, np.ndarray]:
    if len(model.inputs) == 1:
        spec = model.inputs[0]
        arr = _array(spec.name, rows, spec.dtype)
        if arr.ndim == 1 and len(spec.shape) == 2:
            arr = arr.reshape(-1, 1)
        if columns:
            arr = _by_name(model, spec, columns, arr)
        return {spec.name: model.check(spec.name, arr, spec, allow_non_finite)}
    feeds = {}
    for spec in model.inputs:
        if spec.name not in columns:
            raise BadRequest(f"dataframe has no column {spec.name!r}; columns are {columns}")
        j = columns.index(spec.name)
        try:
            col = [r[j] for r in rows]
        except (IndexError, TypeError) as e:
            raise BadRequest("every dataframe row must have one value per column") from e
        arr = _array(spec.name, col, spec.dtype)
        if arr.ndim == 1 and len(spec.shape) == 2:
            arr = arr.reshape(-1, 1)
        feeds[spec.name] = model.check(spec.name, arr, spec, allow_non_finite)
    return feeds


def _by_name(model: OnnxModel, spec: Any, columns: list[Any], arr: np.ndarray) -> np.ndarray:
    """Check the column names of rows sent to a single-tensor model, and put the columns in input order.

    With the model's ``feature_names`` the names must be exactly those (any order; reordered here).
    Without them the names cannot be checked, but their count must match the input's width.
    """
    if len(set(map(str, columns))) != len(columns):
        raise BadRequest(f"dataframe column names must be distinct; got {columns}")
    expected = model.feature_names
    if expected is None:
        width = spec.shape[-1] if len(spec.shape) == 2 else -1
        if width >= 0 and len(columns) != width:
            raise BadRequest(
                f"dataframe has {len(columns)} columns {columns}; input {spec.name!r} takes {width}"
            )
        return arr
    if list(columns) == list(expected):
        return arr
    missing = [n for n in expected if n not in columns]
    unknown = [c for c in columns if c not in expected]
    if missing or unknown:
        raise BadRequest(
            f"dataframe columns do not match the model's features: missing {missing}, unknown {unknown}; "
            f"expected {list(expected)}"
        )
    if arr.ndim != 2 or arr.shape[1] != len(columns):
        raise BadRequest(f"every dataframe row must have one value per column ({len(columns)})")
    return np.ascontiguousarray(arr[:, [columns.index(n) for n in expected]])


def mlflow_feeds(req: Any, model: OnnxModel, allow_non_finite: bool) -> tuple[dict[str, np.ndarray], bool]:
    """Translate an MLflow scoring request into feeds.

    Args:
        req: the decoded JSON body.
        model: the chosen model.
        allow_non_finite: accept NaN and infinity.

    Returns:
        The feeds, and whether the input was a dataframe (answered as records).

    Raises:
        BadRequest: the body has none or several of the accepted keys, or does not fit the model.
    """
    if not isinstance(req, dict):
        raise BadRequest("MLflow scoring request must be a JSON object")
    keys = [k for k in ("inputs", "instances", "dataframe_split", "dataframe_records") if k in req]
    if len(keys) != 1:
        raise BadRequest(
            "MLflow scoring request needs exactly one of 'inputs', 'instances', 'dataframe_split', "
            f"'dataframe_records'; got {sorted(req)}"
        )
    key = keys[0]
    value = req[key]
    if key == "inputs":
        return _tensor(model, value, allow_non_finite, key), False
    if key == "instances":
        if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
            names = list(value[0])
            try:
                stacked = {n: [r[n] for r in value] for n in names}
            except KeyError as e:
                raise BadRequest(f"every instance must have the same keys; missing {e}") from e
            return _tensor(model, stacked, allow_non_finite, key), False
        return _tensor(model, value, allow_non_finite, key), False
    if key == "dataframe_split":
        if not isinstance(value, dict) or not isinstance(value.get("data"), list):
            raise BadRequest("'dataframe_split' must be an object with 'columns' and a 'data' list of rows")
        columns = value.get("columns") or []
        if not isinstance(columns, list):
            raise BadRequest("'dataframe_split.columns' must be a list")
        return _columns(model, columns, value["data"], allow_non_finite), True
    if not isinstance(value, list) or not value or not all(isinstance(r, dict) for r in value):
        raise BadRequest("'dataframe_records' must be a non-empty list of objects")
    columns = list(value[0])
    try:
        rows = [[r[c] for c in columns] for r in value]
    except KeyError as e:
        raise BadRequest(f"every record must have the same columns; missing {e}") from e
    return _columns(model, columns, rows, allow_non_finite), True


def mlflow_response(model: OnnxModel, outputs: list[Any], records: bool) -> bytes:
    """Build an MLflow scoring response.

    Args:
        model: the model (output names).
        outputs: the outputs.
        records: answer one object per row (dataframe input) instead of one list per output.

    Returns:
        JSON bytes ``{"predictions": ...}``.
    """
    if not records:
        return orjson.dumps(
            {"predictions": dict(zip(model.output_names, outputs, strict=True))}, option=_OPTS
        )
    lists = [o.tolist() for o in outputs]
    n = len(lists[0]) if lists else 0
    preds = [{name: col[i] for name, col in zip(model.output_names, lists, strict=True)} for i in range(n)]
    return orjson.dumps({"predictions": preds})
