"""Fixtures of the router tests: tiny ONNX models and real router processes on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from support import REPO, free_port, make_logreg_onnx, mlflow_env, stop, wait_http

ROUTER_DIR = REPO / "serving_images" / "router"
ADMIN_TOKEN = "test-admin-token"
READ_TOKEN = "test-read-token"
PIN_TOKEN = "test-pin-token"


def make_broken_onnx(path: Path, n_features: int = 4) -> Path:
    """Write a model that passes its zero-input warm-up but fails at run time on any non-zero input.

    It gathers from a one-element tensor at index ``int(sum(|x|) * 1000)``: index 0 for the warm-up's
    zeros, out of bounds for real rows.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Abs", ["input"], ["a"]),
        helper.make_node("ReduceSum", ["a"], ["s"], keepdims=0),
        helper.make_node("Mul", ["s", "k"], ["sk"]),
        helper.make_node("Cast", ["sk"], ["idx"], to=TensorProto.INT64),
        helper.make_node("Gather", ["table", "idx"], ["g"]),
        helper.make_node("MatMul", ["input", "W"], ["z"]),
        helper.make_node("Add", ["z", "g"], ["zg"]),
        helper.make_node("Sigmoid", ["zg"], ["p1"]),
        helper.make_node("Sub", ["one", "p1"], ["p0"]),
        helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "broken",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, n_features])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
        initializer=[
            numpy_helper.from_array(np.ones((n_features, 1), dtype=np.float32), "W"),
            numpy_helper.from_array(np.array([1000.0], dtype=np.float32), "k"),
            numpy_helper.from_array(np.array([0.0], dtype=np.float32), "table"),
            numpy_helper.from_array(np.array([1.0], dtype=np.float32), "one"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


@dataclass
class Router:
    """A running router process."""

    proc: subprocess.Popen[bytes]
    url: str
    state_dir: Path
    events_root: Path
    log_path: Path
    routes_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kw)

    def admin(self, token: str = ADMIN_TOKEN) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, headers={"Authorization": f"Bearer {token}"})

    def stop(self) -> int:
        stop(self.proc, timeout=30)
        return int(self.proc.returncode)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]


def start_router(
    tmp: Path,
    routes: dict[str, Any],
    extra_env: dict[str, str] | None = None,
    args: list[str] | None = None,
    scheme: str = "http",
    wait: bool = True,
) -> Router:
    """Start ``python -m router`` on a free port with ``routes`` and wait until it is ready."""
    tmp.mkdir(parents=True, exist_ok=True)
    routes_path = tmp / "routes.yaml"
    routes_path.write_text(yaml.safe_dump(routes))
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "PYTHONPATH": os.pathsep.join([str(ROUTER_DIR), str(REPO)]),
            "ROUTER_ADMIN_TOKEN": ADMIN_TOKEN,
            "ROUTER_API_KEYS": (
                f'[{{"name": "reader", "token": "{READ_TOKEN}", "roles": ["read"]}},'
                f' {{"name": "pinner", "token": "{PIN_TOKEN}", "roles": ["pin"]}}]'
            ),
            "ROUTER_STATE_DIR": str(tmp / "state"),
            "ROUTER_EVENTS_ROOT": str(tmp / "events"),
            "ROUTER_EVENTS_FLUSH_SECONDS": "0.5",
            "ROUTER_SHUTDOWN_GRACE_SECONDS": "0",  # tests that exercise the grace period set it
            "ROUTER_LOG_LEVEL": "info",
        }
    )
    env.update(mlflow_env("router", required=False))  # reads the registry as `router`, as in the stack
    env.update(extra_env or {})
    log_path = tmp / "router.log"
    cmd = [
        sys.executable,
        "-m",
        "router",
        "--routes",
        str(routes_path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *(args or []),
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=ROUTER_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"{scheme}://127.0.0.1:{port}"
    r = Router(proc, url, tmp / "state", tmp / "events", log_path, routes_path, env)
    if wait:
        try:
            if scheme == "http":
                wait_http(f"{url}/v2/health/ready", timeout=60, proc=proc)
        except Exception:
            stop(proc)
            raise RuntimeError(
                f"router did not start:\n{log_path.read_text(errors='replace')[-3000:]}"
            ) from None
    return r


class InProcessRouter:
    """The router app built by ``create_app`` in this process, spoken to through httpx's ASGI transport.

    For tests of parsing, assignment, protocols and the admin API: no process, no socket. The app's
    startup runs on a private event loop that also runs every request; events are off unless asked.
    """

    def __init__(self, tmp: Path, routes: dict[str, Any], env: dict[str, str] | None = None) -> None:
        import asyncio

        from router.app import create_app
        from router.auth import KeyRing
        from router.dataplane import DataPlane
        from router.settings import ApiKey, RouterSettings

        tmp.mkdir(parents=True, exist_ok=True)
        self.state_dir = tmp / "state"
        self.routes_path = tmp / "routes.yaml"
        self.routes_path.write_text(yaml.safe_dump(routes))
        values: dict[str, Any] = {
            "routes": self.routes_path,
            "state_dir": tmp / "state",
            "events_root": str(tmp / "events"),
            "events_enabled": False,
            "admin_token": ADMIN_TOKEN,
            "api_keys": [
                ApiKey(name="reader", token=READ_TOKEN, roles=["read"]),  # type: ignore[arg-type]
                ApiKey(name="pinner", token=PIN_TOKEN, roles=["pin"]),  # type: ignore[arg-type]
            ],
        }
        values.update(env or {})
        self.settings = RouterSettings(**values)
        self.plane = DataPlane(self.settings)
        self.app = create_app(self.plane, KeyRing(self.settings))
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self.app.startup())

    def client(self, **kw: Any) -> _SyncAsgiClient:
        return _SyncAsgiClient(self, kw.pop("headers", None))

    def admin(self, token: str = ADMIN_TOKEN) -> _SyncAsgiClient:
        return _SyncAsgiClient(self, {"Authorization": f"Bearer {token}"})

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.run_until_complete(self.app.shutdown())
        self.loop.close()


class _SyncAsgiClient:
    """A synchronous face on ``httpx.AsyncClient(transport=ASGITransport(app))`` (same calls as httpx.Client)."""

    def __init__(self, router: InProcessRouter, headers: dict[str, str] | None) -> None:
        self._router = router
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=router.app), base_url="http://router", headers=headers
        )

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        return self._router.loop.run_until_complete(self._client.request(method, url, **kw))

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("POST", url, **kw)

    def put(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("PUT", url, **kw)

    def delete(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("DELETE", url, **kw)

    def __enter__(self) -> _SyncAsgiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._router.loop.run_until_complete(self._client.aclose())


@pytest.fixture
def inproc_factory(tmp_path: Path) -> Iterator[Callable[..., InProcessRouter]]:
    """Build in-process routers for a test; every one is shut down afterwards."""
    built: list[InProcessRouter] = []

    def factory(routes: dict[str, Any], name: str = "inproc", **env: Any) -> InProcessRouter:
        r = InProcessRouter(tmp_path / name, routes, env)
        built.append(r)
        return r

    yield factory
    for r in built:
        r.close()


@pytest.fixture
def router_factory(tmp_path: Path) -> Iterator[Callable[..., Router]]:
    """Start routers for a test; every one is stopped afterwards."""
    started: list[Router] = []

    def factory(routes: dict[str, Any], name: str = "router", **kw: Any) -> Router:
        r = start_router(tmp_path / name, routes, **kw)
        started.append(r)
        return r

    yield factory
    for r in started:
        stop(r.proc)


@pytest.fixture
def models(tmp_path: Path) -> dict[str, Path]:
    """Three different valid 4-feature models and one broken one."""
    d = tmp_path / "models"
    return {
        "a": make_logreg_onnx(d / "a.onnx", seed=1),
        "b": make_logreg_onnx(d / "b.onnx", seed=2),
        "c": make_logreg_onnx(d / "c.onnx", seed=3),
        "broken": make_broken_onnx(d / "broken.onnx"),
    }


def two_variants(a: Path, b: Path, canary_bp: int = 2000, **extra: Any) -> dict[str, Any]:
    """A routes document with one model ``churn``: champion ``a`` and canary ``b``."""
    return {
        "models": {
            "churn": {
                "salt": "exp-1",
                "variants": [
                    {"name": "champion", "uri": str(a), "weight_bp": 10000 - canary_bp},
                    {"name": "canary", "uri": str(b), "weight_bp": canary_bp},
                ],
                **extra,
            }
        }
    }
