"""Where the evidence lives for a browser: MLflow runs and artifacts, Airflow DAG runs, audit records."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote


@dataclass(frozen=True)
class Links:
    """Builds the URLs the timeline links to.

    Args:
        mlflow_url: MLflow as a browser reaches it (None: no MLflow links).
        airflow_url: the Airflow UI's base URL ("" for links relative to the page's server).
        experiments: MLflow run id → experiment id, for run pages (runs not in it get no run link).
    """

    mlflow_url: str | None
    airflow_url: str = ""
    experiments: dict[str, str] = field(default_factory=dict)

    def run(self, run_id: str | None) -> str | None:
        """The MLflow UI page of a run."""
        if not (self.mlflow_url and run_id and run_id in self.experiments):
            return None
        return f"{self.mlflow_url.rstrip('/')}/#/experiments/{self.experiments[run_id]}/runs/{run_id}"

    def artifact(self, run_id: str | None, path: str) -> str | None:
        """A run's artifact served by the MLflow server (reports)."""
        if not (self.mlflow_url and run_id):
            return None
        return f"{self.mlflow_url.rstrip('/')}/get-artifact?path={quote(path)}&run_uuid={quote(run_id)}"

    def dag_run(self, dag_id: str, run_id: str | None) -> str | None:
        """The Airflow UI page of a DAG run."""
        if not run_id or run_id == "None":
            return None
        return f"{self.airflow_url.rstrip('/')}/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}"
