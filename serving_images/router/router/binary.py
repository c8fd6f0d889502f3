"""The binary tensor extension of OIP v2 on REST (KServe/Triton ``binary_tensor_data``).

A request with header ``Inference-Header-Content-Length: N`` carries N bytes of JSON followed by the
raw bytes of every input whose ``parameters.binary_data_size`` is set, in the order of ``inputs``
(little-endian, row-major, no padding). An answer carries its outputs as raw bytes when the request
asks for it (request parameter ``binary_data_output: true``, or ``parameters.binary_data: true`` on an
entry of ``outputs``): the JSON part then names each binary output's ``binary_data_size``, the response
has header ``Inference-Header-Content-Length`` and type ``application/octet-stream``. ``outputs`` in a
request selects and orders the answered outputs, binary or not.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from router.codecs import oip_response
from router.errors import BadRequest
from router.model import DATATYPES, OnnxModel

HEADER = b"inference-header-content-length"
_OPTS = orjson.OPT_SERIALIZE_NUMPY


def decode_binary(body: bytes, header_length: bytes) -> Any:
    """Split a binary-extension body into its JSON request, binary inputs decoded into arrays.

    Args:
        body: the whole request body.
        header_length: the ``Inference-Header-Content-Length`` value.

    Returns:
        The decoded JSON request; each binary input's ``data`` is a read-only numpy array over ``body``.

    Raises:
        BadRequest: the header length, a ``binary_data_size`` or the byte count is wrong.
    """
    try:
        n = int(header_length)
    except ValueError:
        n = -1
    if not 0 < n <= len(body):
        raise BadRequest(
            f"Inference-Header-Content-Length must be an integer from 1 to the body size ({len(body)}), "
            f"got {header_length.decode('latin-1')!r}"
        )
    try:
        req = orjson.loads(body[:n])
    except orjson.JSONDecodeError as e:
        raise BadRequest(f"the JSON part of the request (first {n} bytes) is not valid JSON: {e}") from e
    inputs = req.get("inputs") if isinstance(req, dict) else None
    if not isinstance(inputs, list):
        raise BadRequest("OIP v2 request must be an object with a non-empty 'inputs' list")
    view = memoryview(body)
    offset = n
    for item in inputs:
        params = item.get("parameters") if isinstance(item, dict) else None
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        if size is None:
            continue
        name = item.get("name")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadRequest(f"input {name!r}: binary_data_size must be a non-negative integer, got {size!r}")
        if "data" in item:
            raise BadRequest(f"input {name!r} has both 'data' and binary_data_size; send one of them")
        dtype = DATATYPES.get(item.get("datatype"))
        if dtype is None:
            raise BadRequest(
                f"input {name!r}: datatype {item.get('datatype')!r} cannot be sent as binary data; "
                f"known: {sorted(DATATYPES)}"
            )
        dt = np.dtype(dtype).newbyteorder("<")
        if size % dt.itemsize or offset + size > len(body):
            raise BadRequest(
                f"input {name!r}: binary_data_size {size} is not a whole number of {item['datatype']} "
                f"values or runs past the end of the body ({len(body) - offset} bytes left)"
            )
        item["data"] = np.frombuffer(view[offset : offset + size], dtype=dt)
        offset += size
    if offset != len(body):
        raise BadRequest(
            f"the body has {len(body) - offset} bytes after the inputs' binary data; "
            "binary_data_size of the inputs must add up to the body size minus the JSON header"
        )
    return req


def check_outputs(wanted: Any, model: OnnxModel) -> None:
    """Check the ``outputs`` of an OIP v2 REST request against the model.

    Args:
        wanted: the request's ``outputs``.
        model: the chosen model.

    Raises:
        BadRequest: not a list of objects, or a name the model does not have.
    """
    if not isinstance(wanted, list) or not all(isinstance(w, dict) for w in wanted):
        raise BadRequest("'outputs' must be a list of objects with a 'name'")
    for w in wanted:
        if w.get("name") not in model.output_names:
            raise BadRequest(f"model has no output {w.get('name')!r}; outputs are {model.output_names}")


def oip_answer(
    req: Any, model_name: str, version: str, request_id: str, model: OnnxModel, outputs: list[np.ndarray]
) -> tuple[bytes, int | None]:
    """Build the answer to an OIP v2 REST request: JSON, or JSON and binary outputs when asked.

    Args:
        req: the decoded request (asks for outputs and binary answers).
        model_name: the model name.
        version: the served version.
        request_id: the request id.
        model: the model that answered.
        outputs: its outputs.

    Returns:
        The body, and the length of its JSON part when it carries binary outputs (else None).

    Raises:
        BadRequest: ``outputs`` is malformed or names an output the model does not have.
    """
    wanted = req.get("outputs")
    params = req.get("parameters")
    all_binary = isinstance(params, dict) and params.get("binary_data_output") is True
    if not wanted and not all_binary:
        return oip_response(model_name, version, request_id, model, outputs), None
    by_name = {spec.name: (spec, out) for spec, out in zip(model.outputs, outputs, strict=True)}
    chosen: list[tuple[Any, np.ndarray, bool]] = []
    if wanted:
        check_outputs(wanted, model)
        for w in wanted:
            spec, out = by_name[w["name"]]
            p = w.get("parameters")
            flag = p.get("binary_data") if isinstance(p, dict) else None
            chosen.append((spec, out, all_binary if flag is None else flag is True))
    else:
        chosen = [(spec, out, True) for spec, out in by_name.values()]
    docs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for spec, out, binary in chosen:
        doc: dict[str, Any] = {"name": spec.name, "datatype": spec.datatype, "shape": list(out.shape)}
        if binary:
            blob = np.ascontiguousarray(out, dtype=out.dtype.newbyteorder("<")).tobytes()
            doc["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            doc["data"] = out.ravel()
        docs.append(doc)
    head = orjson.dumps(
        {"model_name": model_name, "model_version": version, "id": request_id, "outputs": docs}, option=_OPTS
    )
    if not blobs:
        return head, None
    return b"".join([head, *blobs]), len(head)
