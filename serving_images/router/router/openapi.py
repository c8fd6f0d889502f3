"""The hand-written OpenAPI 3.1 description of every endpoint, served as data at ``/openapi.json``."""

from __future__ import annotations

from typing import Any

from router import __version__

_ERR = {
    "description": "error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]+$"},
}
_VERSION = {
    "name": "version",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]+$"},
}
_ROUTING_HEADERS = [
    {
        "name": "X-Unit-Id",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "maxLength": 128},
        "description": "Sticky assignment key: the same unit always gets the same variant while weights stay.",
    },
    {
        "name": "X-Consent",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "enum": ["true", "false", "1", "0", "yes", "no"]},
        "description": "Consent of the unit (also OIP v2 parameters.consent; without either the deployment's "
        "ROUTER_CONSENT_DEFAULT, deny unless configured). Without consent the prediction event holds no "
        "unit id and no sampled inputs (docs/privacy.md). Another value is answered with 400.",
    },
    {
        "name": "X-Request-Id",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "maxLength": 64},
    },
]
_RESP_HEADERS = {
    "X-Variant": {"schema": {"type": "string"}, "description": "variant that answered"},
    "X-Model-Version": {
        "schema": {"type": "string"},
        "description": "registry version number or sha256 prefix",
    },
    "X-Request-Id": {"schema": {"type": "string"}},
}
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _ok(schema: dict[str, Any], headers: bool = False) -> dict[str, Any]:
    r: dict[str, Any] = {"description": "ok", **_json(schema)}
    if headers:
        r["headers"] = _RESP_HEADERS
    return r


def _infer_op(summary: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "summary": summary,
        "parameters": [*params, *_ROUTING_HEADERS],
        "requestBody": {"required": True, **_json({"$ref": "#/components/schemas/InferenceRequest"})},
        "responses": {
            "200": _ok({"$ref": "#/components/schemas/InferenceResponse"}, True),
            "400": _ERR,
            "404": _ERR,
            "413": _ERR,
            "503": _ERR,
        },
    }


def _mlflow_op(summary: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "summary": summary,
        "parameters": [*params, *_ROUTING_HEADERS],
        "requestBody": {"required": True, **_json({"$ref": "#/components/schemas/MlflowRequest"})},
        "responses": {
            "200": _ok({"type": "object", "required": ["predictions"]}, True),
            "400": _ERR,
            "404": _ERR,
            "413": _ERR,
            "503": _ERR,
        },
    }


def _admin_get(summary: str, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "security": _BEARER,
            "parameters": params or [],
            "responses": {"200": _ok({"type": "object"}), "401": _ERR, "403": _ERR, "404": _ERR},
        }
    }


def openapi_document() -> dict[str, Any]:
    """Return the OpenAPI document.

    Returns:
        The document as data.
    """
    tensor = {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "datatype": {
                "type": "string",
                "enum": [
                    "BOOL",
                    "UINT8",
                    "UINT16",
                    "UINT32",
                    "UINT64",
                    "INT8",
                    "INT16",
                    "INT32",
                    "INT64",
                    "FP16",
                    "FP32",
                    "FP64",
                ],
            },
            "data": {"type": "array"},
            "parameters": {"type": "object"},
        },
    }
    routes = {
        "type": "object",
        "required": ["variants"],
        "properties": {
            "salt": {"type": "string"},
            "champion": {"type": "string"},
            "variants": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["name", "uri", "weight_bp"],
                    "properties": {
                        "name": {"type": "string"},
                        "uri": {"type": "string"},
                        "weight_bp": {"type": "integer", "minimum": 0, "maximum": 10000},
                    },
                },
            },
            "shadow": {
                "type": "object",
                "required": ["variant", "uri", "percent"],
                "properties": {
                    "variant": {"type": "string"},
                    "uri": {"type": "string"},
                    "percent": {"type": "number", "minimum": 0, "maximum": 100},
                },
            },
            "guard": {
                "type": "object",
                "properties": {
                    "enabled": {"type": "boolean"},
                    "window": {"type": "integer", "minimum": 1},
                    "min_requests": {"type": "integer", "minimum": 1},
                    "max_error_rate": {"type": "number", "minimum": 0, "maximum": 1},
                    "max_latency_ms": {"type": "number", "exclusiveMinimum": 0},
                    "max_slow_rate": {"type": "number", "minimum": 0, "maximum": 1},
                    "max_latency_excess_ms": {"type": ["number", "null"], "exclusiveMinimum": 0},
                },
            },
            "allow_non_finite": {"type": "boolean"},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "modelgate router",
            "version": __version__,
            "description": "Open Inference Protocol v2 and MLflow scoring for ONNX models, with sticky "
            "weighted splits, shadow scoring, a guard and an admin API.",
        },
        "paths": {
            "/v2": {"get": {"summary": "Server metadata", "responses": {"200": _ok({"type": "object"})}}},
            "/v2/health/live": {
                "get": {"summary": "Liveness", "responses": {"200": _ok({"type": "object"})}}
            },
            "/v2/health/ready": {
                "get": {
                    "summary": "Readiness (503 while starting or draining); body ready, generation (routes "
                    "store generation served), stale (store unreachable); header X-Routes-Generation",
                    "responses": {"200": _ok({"type": "object"}), "503": _ERR},
                }
            },
            "/v2/models/{name}": {
                "get": {
                    "summary": "Model metadata",
                    "parameters": [_NAME],
                    "responses": {"200": _ok({"$ref": "#/components/schemas/Metadata"}), "404": _ERR},
                }
            },
            "/v2/models/{name}/ready": {
                "get": {
                    "summary": "Model readiness",
                    "parameters": [_NAME],
                    "responses": {"200": _ok({"type": "object"}), "404": _ERR, "503": _ERR},
                }
            },
            "/v2/models/{name}/versions/{version}": {
                "get": {
                    "summary": "Metadata of one version (registry version number, sha256 prefix or variant name)",
                    "parameters": [_NAME, _VERSION],
                    "responses": {"200": _ok({"$ref": "#/components/schemas/Metadata"}), "404": _ERR},
                }
            },
            "/v2/models/{name}/infer": {"post": _infer_op("OIP v2 inference through the split", [_NAME])},
            "/v2/models/{name}/versions/{version}/infer": {
                "post": _infer_op("OIP v2 inference on one version, bypassing the split", [_NAME, _VERSION])
            },
            "/invocations": {"post": _mlflow_op("MLflow scoring protocol on the default model", [])},
            "/models/{name}/invocations": {"post": _mlflow_op("MLflow scoring protocol on a model", [_NAME])},
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "ok",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {"summary": "This document", "responses": {"200": _ok({"type": "object"})}}
            },
            "/admin/routes": _admin_get("The whole routes document"),
            "/admin/models/{name}/routes": {
                **_admin_get("One model's routes", [_NAME]),
                "put": {
                    "summary": "Replace one model's routes: validated and loaded here, committed to the routes "
                    "store (answer carries its generation), followed by every replica",
                    "security": _BEARER,
                    "parameters": [_NAME],
                    "requestBody": {"required": True, **_json(routes)},
                    "responses": {
                        "200": _ok({"type": "object"}), "400": _ERR, "401": _ERR, "403": _ERR, "503": _ERR,
                    },
                },
                "delete": {
                    "summary": "Stop serving a model (on every replica, through the routes store)",
                    "security": _BEARER,
                    "parameters": [_NAME],
                    "responses": {
                        "200": _ok({"type": "object"}), "401": _ERR, "403": _ERR, "404": _ERR, "503": _ERR,
                    },
                },
            },
            "/admin/reload": {
                "post": {
                    "summary": "Make the routes file the desired state of every model (through the store)",
                    "security": _BEARER,
                    "responses": {
                        "200": _ok({"type": "object"}), "400": _ERR, "401": _ERR, "403": _ERR, "503": _ERR,
                    },
                }
            },
            "/admin/stats": _admin_get("Per-variant live statistics"),
            "/admin/guard/events": _admin_get("Guard events"),
            "/admin/changes": _admin_get(
                "Accepted route changes (append-only log)",
                [
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1},
                    }
                ],
            ),
            "/admin/errors": _admin_get("Refused changes and load errors"),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "code"],
                    "properties": {"error": {"type": "string"}, "code": {"type": "string"}},
                },
                "InferenceRequest": {
                    "type": "object",
                    "required": ["inputs"],
                    "properties": {
                        "id": {"type": "string"},
                        "parameters": {"type": "object"},
                        "inputs": {"type": "array", "items": tensor},
                        "outputs": {"type": "array", "items": {"type": "object"}},
                    },
                },
                "InferenceResponse": {
                    "type": "object",
                    "required": ["model_name", "outputs"],
                    "properties": {
                        "model_name": {"type": "string"},
                        "model_version": {"type": "string"},
                        "id": {"type": "string"},
                        "outputs": {"type": "array", "items": tensor},
                    },
                },
                "MlflowRequest": {
                    "type": "object",
                    "properties": {
                        "inputs": {},
                        "instances": {"type": "array"},
                        "dataframe_split": {
                            "type": "object",
                            "properties": {"columns": {"type": "array"}, "data": {"type": "array"}},
                        },
                        "dataframe_records": {"type": "array", "items": {"type": "object"}},
                    },
                },
                "Metadata": {
                    "type": "object",
                    "required": ["name", "inputs", "outputs"],
                    "properties": {
                        "name": {"type": "string"},
                        "versions": {"type": "array"},
                        "platform": {"type": "string"},
                        "inputs": {"type": "array"},
                        "outputs": {"type": "array"},
                    },
                },
            },
        },
    }
