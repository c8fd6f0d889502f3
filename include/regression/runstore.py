"""The MLflow run that holds one regression test's evidence: created once per Airflow run, artifacts in and out.

Large data (synthetic inputs, scores, suite results, the report) travel as artifacts of this run;
XCom carries the run id only.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

EXPERIMENT = "modelgate-regression"
INPUTS_ARTIFACT = "inputs/inputs.parquet"
SPEC_ARTIFACT = "inputs/feature_spec.json"
CHAMPION_SCORES = "scores/champion.parquet"
CHALLENGER_SCORES = "scores/challenger.parquet"


def start_run(target: dict[str, Any], airflow_run_id: str, tracking_uri: str) -> str:
    """Return the MLflow run holding this test's evidence, created once per Airflow run.

    Args:
        target: from :func:`resolve_target`.
        airflow_run_id: the Airflow run id (a retry finds the same MLflow run).
        tracking_uri: the MLflow server.

    Returns:
        The MLflow run id.
    """
    from include.registry import registry as reg

    client = reg.get_client(tracking_uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    exp_id = exp.experiment_id if exp is not None else client.create_experiment(EXPERIMENT)
    name, version = target["model_name"], target["version"]
    found = client.search_runs(
        [exp_id],
        filter_string=(
            f"tags.`modelgate.airflow_run_id` = '{airflow_run_id}' and tags.`modelgate.model_name` = '{name}' "
            f"and tags.`modelgate.version` = '{version}'"
        ),
        max_results=1,
    )
    if found:
        return str(found[0].info.run_id)
    run = client.create_run(
        exp_id,
        run_name=f"regression-{name}-{version}",
        tags={
            "modelgate.airflow_run_id": airflow_run_id,
            "modelgate.model_name": name,
            "modelgate.version": version,
            "modelgate.champion_version": str(target["champion_version"]),
        },
    )
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "policy.json"
        p.write_text(json.dumps(target["policy"], indent=1, sort_keys=True))
        client.log_artifact(run.info.run_id, str(p))
    return str(run.info.run_id)


def log_bytes(run_id: str, artifact_path: str, data: bytes, tracking_uri: str) -> None:
    from include.registry import registry as reg

    folder, _, filename = artifact_path.rpartition("/")
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / filename
        p.write_bytes(data)
        reg.get_client(tracking_uri).log_artifact(run_id, str(p), folder or None)


def log_frame(run_id: str, artifact_path: str, frame: pd.DataFrame, tracking_uri: str) -> None:
    import io

    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    log_bytes(run_id, artifact_path, buf.getvalue(), tracking_uri)


def download(run_id: str, artifact_path: str, dst: Path, tracking_uri: str) -> Path:
    from include.registry import registry as reg

    return Path(reg.get_client(tracking_uri).download_artifacts(run_id, artifact_path, str(dst)))


def read_frame(run_id: str, artifact_path: str, tracking_uri: str) -> pd.DataFrame:
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        return pd.read_parquet(download(run_id, artifact_path, Path(tmp), tracking_uri))


def log_suite(run_id: str, stem: str, suite_doc: dict[str, Any], result: Any, tracking_uri: str) -> None:
    result_json = json.dumps(result.result, indent=1, default=str).encode()
    suite_json = json.dumps(suite_doc, indent=1).encode()
    log_bytes(run_id, f"expectations/{stem}.suite.json", suite_json, tracking_uri)
    log_bytes(run_id, f"expectations/{stem}.result.json", result_json, tracking_uri)
    log_bytes(run_id, f"expectations/{stem}.html", result.html.encode(), tracking_uri)


def predictions(frame: pd.DataFrame) -> Any:
    from include.regression.scoring import Predictions

    prob_cols = [c for c in frame.columns if c.startswith("probability_") and c != "probability_sum"]
    return Predictions(frame["label"].to_numpy(), frame[prob_cols].to_numpy(dtype=np.float64))
