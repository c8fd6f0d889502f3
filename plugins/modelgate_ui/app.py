"""The plugin's FastAPI app: the evidence of a model as JSON and as a page, and answers to approvals.

Mounted by the api-server at ``/modelgate`` (see ``plugins/modelgate_ui_plugin.py``):

- ``GET /modelgate/`` lists the registered models; ``GET /modelgate/models/{name}`` is the page and
  ``GET /modelgate/api/models/{name}`` the same evidence as JSON;
- ``GET /modelgate/runs/{dag_id}/{run_id}`` (the DAG-run tab) opens the page of the run's model;
- ``POST /modelgate/api/approvals/{dag_id}/{run_id}/{task_id}/{map_index}`` answers a human-in-the-loop
  request through Airflow's own REST API, as the caller (Airflow checks that the caller may answer).

Every route needs a valid Airflow token (:mod:`plugins.modelgate_ui.auth`). The gathering itself is
``include.evidence`` (no Airflow); this module only reads what Airflow knows (HITL requests, the
router connection) and translates.
"""

from __future__ import annotations

import asyncio
import logging
from html import escape
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

import httpx
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from include.evidence.errors import EvidenceError
from include.evidence.gather import Sources, check_name, gather
from include.evidence.page import render
from plugins.modelgate_ui.auth import Caller, caller, same_origin

log = logging.getLogger(__name__)

ROUTER_CONN_ID = "modelgate_router"
CallerDep = Annotated[Caller, Depends(caller)]


def airflow_api(request: Request) -> str:
    """The Airflow REST API's base URL: ``[api] base_url`` when set, else the server this request reached."""
    from airflow.configuration import conf

    base = conf.get("api", "base_url", fallback="") or ""
    if not base or base.startswith("/"):
        base = f"{request.url.scheme}://{request.url.netloc}{base}"
    return base.rstrip("/")


def router_replicas() -> tuple[list[str], str]:
    """Return the router replica URLs and admin token from the ``modelgate_router`` connection.

    The connection's extra may list ``{"replicas": [...]}`` (read by the gates' own parser,
    :func:`include.routing.replicas.replicas_from_extra`); else its host is the one replica. Without
    the connection, ``MODELGATE_ROUTER_URL`` and ``ROUTER_ADMIN_TOKEN`` (the settings) are used.
    """
    from airflow.models.connection import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    from include.config import get_settings
    from include.routing.replicas import replicas_from_extra

    try:
        conn = Connection.get_connection_from_secrets(ROUTER_CONN_ID)
    except AirflowNotFoundException:
        s = get_settings()
        return [s.router_url], s.router_admin_token
    url = f"{conn.schema or 'http'}://{conn.host}" + (f":{conn.port}" if conn.port else "")
    return replicas_from_extra(conn.extra_dejson if conn.extra else None, url), conn.password or ""


def mlflow_identity() -> Any:
    """The identity this api-server reads MLflow with: the ``modelgate_mlflow`` connection's
    (:func:`plugins.mlflow_hook.identity_of`), else the secrets folder's ``airflow``."""
    from airflow.models.connection import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    from include.registry.credentials import role_identity
    from plugins.mlflow_hook import CONN_ID, identity_of

    try:
        return identity_of(Connection.get_connection_from_secrets(CONN_ID))
    except AirflowNotFoundException:
        return role_identity("airflow")


def sources() -> Sources:
    """Where the evidence is read from in this api-server (MLflow read as :func:`mlflow_identity`)."""
    from include.config import get_settings
    from include.registry.credentials import use_identity

    use_identity(mlflow_identity())  # every MLflow read of this process goes as the same identity
    s = get_settings()
    urls, token = router_replicas()
    mlflow_ui = s.mlflow_ui_url or s.tracking_uri
    return Sources(tracking_uri=s.tracking_uri, mlflow_url=mlflow_ui, replicas=urls, router_token=token)


async def _airflow(request: Request, who: Caller, method: str, path: str, **kw: Any) -> httpx.Response:
    """Call Airflow's REST API as the caller (their token), so Airflow's own access rules apply."""
    async with httpx.AsyncClient(base_url=airflow_api(request), timeout=30) as c:
        return await c.request(method, path, headers={"Authorization": f"Bearer {who.token}"}, **kw)


async def hitl_details(request: Request, who: Caller) -> list[dict[str, Any]]:
    """The unanswered human-in-the-loop requests the caller may see."""
    try:
        r = await _airflow(request, who, "GET", "/api/v2/dags/~/dagRuns/~/hitlDetails",
                           params={"response_received": "false", "limit": 100})  # fmt: skip
    except httpx.HTTPError as e:
        log.warning("HITL requests could not be read: %s", e)
        return []
    if r.status_code != 200:
        log.warning("HITL requests could not be read: HTTP %s %s", r.status_code, r.text[:200])
        return []
    return list(r.json().get("hitl_details", []))


async def evidence(request: Request, who: Caller, name: str) -> dict[str, Any]:
    """The evidence document of model ``name`` as the caller may see it."""
    check_name(name)
    details = await hitl_details(request, who)
    return await asyncio.to_thread(gather, name, sources(), details, who.id)


def _prefix(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def create_app() -> FastAPI:
    """Build the plugin's app (mounted by the api-server; tests mount it the same way)."""
    app = FastAPI(title="modelgate evidence", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(EvidenceError)
    async def _evidence_error(request: Request, e: EvidenceError) -> Response:
        return JSONResponse({"detail": e.message, "code": e.code}, status_code=e.status)

    @app.get("/api/models/{name}")
    async def model_json(name: str, request: Request, who: CallerDep) -> dict[str, Any]:
        return await evidence(request, who, name)

    @app.get("/models/{name}", response_class=HTMLResponse)
    async def model_page(name: str, request: Request, who: CallerDep, notice: str | None = None) -> HTMLResponse:
        doc = await evidence(request, who, name)
        return HTMLResponse(render(doc, _prefix(request), who.name, notice))

    @app.get("/", response_class=HTMLResponse)
    async def index(request: Request, who: CallerDep) -> HTMLResponse:
        names = await asyncio.to_thread(_model_names)
        items = "".join(f'<li><a href="{_prefix(request)}/models/{quote(n)}">{escape(n)}</a></li>' for n in names)
        return HTMLResponse(f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>modelgate</title></head>"
                            f"<body><h1>modelgate models</h1><ul>{items}</ul></body></html>")  # fmt: skip

    @app.get("/runs/{dag_id}/{run_id}")
    async def run_page(dag_id: str, run_id: str, request: Request, who: CallerDep) -> Response:
        r = await _airflow(request, who, "GET", f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}")
        if r.status_code != 200:
            raise HTTPException(r.status_code, f"DAG run {dag_id}/{run_id}: {r.text[:300]}")
        conf = r.json().get("conf") or {}
        name = conf.get("model") or conf.get("model_name") or conf.get("name")
        if not name:
            return RedirectResponse(f"{_prefix(request)}/", status_code=303)
        return RedirectResponse(f"{_prefix(request)}/models/{quote(check_name(str(name)))}", status_code=303)

    @app.post("/api/approvals/{dag_id}/{run_id}/{task_id}/{map_index}")
    async def answer(dag_id: str, run_id: str, task_id: str, map_index: int, request: Request, who: CallerDep) -> Response:
        body, model = await answer_body(request, who)
        path = (f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}/taskInstances/"
                f"{quote(task_id, safe='')}/{map_index}/hitlDetails")  # fmt: skip
        r = await _airflow(request, who, "PATCH", path, json=body)
        log.info("%s answered %s/%s/%s[%s] with %s: HTTP %s", who.name, dag_id, run_id, task_id, map_index,
                 body["chosen_options"], r.status_code)  # fmt: skip
        if model:
            notice = (f"answered {task_id}: {', '.join(body['chosen_options'])}" if r.status_code == 200
                      else f"answer refused by Airflow (HTTP {r.status_code}): {_detail(r)}")  # fmt: skip
            return RedirectResponse(f"{_prefix(request)}/models/{quote(check_name(model))}?notice={quote(notice)}", 303)
        if r.status_code != 200:
            raise HTTPException(r.status_code, f"Airflow refused the answer: {_detail(r)}")
        return JSONResponse(r.json())

    return app


async def answer_body(request: Request, who: Caller) -> tuple[dict[str, Any], str]:
    """Read an answer: a JSON ``{"chosen_options": [...]}`` (API) or the page's form (``option``, ``model``).

    Returns:
        The body for Airflow's HITL API, and the model whose page to return to ("" for JSON).

    Raises:
        HTTPException: 400 for a body that names no answer; 403 for a cookie-signed form from elsewhere.
    """
    if "application/x-www-form-urlencoded" in request.headers.get("content-type", ""):
        if who.via_cookie and not same_origin(request):
            raise HTTPException(403, "answers signed in by cookie must come from this server's own page")
        fields = parse_qs((await request.body()).decode("utf-8", "replace"))
        body: dict[str, Any] = {"chosen_options": fields.get("option", []), "params_input": {}}
        model = (fields.get("model") or [""])[0]
    else:
        try:
            body = await request.json()
        except ValueError as e:
            raise HTTPException(400, 'the body must be JSON {"chosen_options": [...]} or a form') from e
        if not isinstance(body, dict) or not isinstance(body.get("chosen_options"), list):
            raise HTTPException(400, 'the body must name the answer: {"chosen_options": ["Approve"]}')
        body.setdefault("params_input", {})
        model = ""
    if not body["chosen_options"]:
        raise HTTPException(400, "no option chosen")
    return body, model


def _detail(r: httpx.Response) -> str:
    try:
        return str(r.json().get("detail", r.text))[:300]
    except ValueError:
        return r.text[:300]


def _model_names() -> list[str]:
    from mlflow.tracking import MlflowClient

    from include.config import get_settings

    return sorted(m.name for m in MlflowClient(get_settings().tracking_uri).search_registered_models())
