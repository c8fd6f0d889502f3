"""Airflow plugin: the modelgate evidence view (``/modelgate``), on the navigation bar and the DAG-run page.

Thin: the app is :func:`plugins.modelgate_ui.app.create_app`, the evidence is ``include.evidence``.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from plugins.modelgate_ui.app import create_app


class ModelgateUiPlugin(AirflowPlugin):
    """Mounts the evidence app at ``/modelgate`` and links it from the UI."""

    name = "modelgate_ui"
    fastapi_apps = [{"app": create_app(), "url_prefix": "/modelgate", "name": "modelgate evidence"}]
    external_views = [
        {"name": "modelgate", "href": "modelgate/", "destination": "nav", "category": "browse", "url_route": "modelgate"},
        {
            "name": "modelgate evidence",
            "href": "modelgate/runs/{DAG_ID}/{RUN_ID}",
            "destination": "dag_run",
            "url_route": "modelgate_run",
        },
    ]
