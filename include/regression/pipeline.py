"""What the ``regression_testing`` DAG's tasks call: each step reads and writes MLflow, returns small dicts.

Large data (synthetic inputs, scores, suite results, the report) travel as artifacts of one MLflow
run per test (experiment ``modelgate-regression``, found again by the Airflow run id on a retry);
XCom carries the MLflow run id, check results and figures only.

Steps: :func:`resolve_target` → :func:`record_first_version` → :func:`check_contract` →
:func:`prepare_inputs` → :func:`score` → :func:`compare` → :func:`decide`.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from include.regression import checks as ck
from include.regression.policy import Policy
from include.regression.runstore import (
    CHALLENGER_SCORES,
    CHAMPION_SCORES,
    EXPERIMENT,
    INPUTS_ARTIFACT,
    SPEC_ARTIFACT,
    download,
    log_bytes,
    log_frame,
    log_suite,
    predictions,
    read_frame,
    start_run,
)
from include.regression.target import resolve_target
from include.regression.verdict import (
    FIRST_VERSION_REASON,
    TAG_PREFIX,
    decide,
    record_first_version,
    verdict_tags,
)

if TYPE_CHECKING:
    import pandas as pd

    from include.regression.scoring import Classifier
    from include.synthetic import FeatureSpec

__all__ = [
    "EXPERIMENT",
    "FIRST_VERSION_REASON",
    "TAG_PREFIX",
    "check_contract",
    "compare",
    "decide",
    "prepare_inputs",
    "record_first_version",
    "resolve_target",
    "score",
    "start_run",
    "synthetic_frame",
    "verdict_tags",
]

log = logging.getLogger(__name__)

CASE_COLUMN = "case"


def _policy(target: dict[str, Any]) -> Policy:
    return Policy.from_dict(target["policy"])


# ---------------------------------------------------------------- contract


def check_contract(target: dict[str, Any]) -> dict[str, Any]:
    """Compare the challenger's signature and semver with the champion's.

    Args:
        target: from :func:`resolve_target`.

    Returns:
        The ``contract`` check result as data.
    """
    ch, cn = target["champion"], target["challenger"]
    result = ck.check_contract(ch["signature"], cn["signature"], ch["semver"], cn["semver"], _policy(target))
    log.info("contract: %s (%s)", result.status, result.reason)
    return result.to_dict()


def _breaking(contract: dict[str, Any]) -> bool:
    return contract["status"] == "pass" and bool(contract["figures"].get("breaking"))


# ---------------------------------------------------------------- inputs


def _spec_uri(target: dict[str, Any], contract: dict[str, Any]) -> tuple[str | None, str]:
    if _breaking(contract):
        return target["challenger"]["feature_spec"], "challenger"
    if target["champion"]["feature_spec"]:
        return target["champion"]["feature_spec"], "champion"
    return target["challenger"]["feature_spec"], "challenger"


def synthetic_frame(spec: FeatureSpec, policy: Policy) -> pd.DataFrame:
    """Sample the synthetic inputs and add the edge cases.

    Rows: ``synthetic.rows`` samples (``case`` = ``sample``), then, with ``synthetic.edge_cases``,
    ``spec.edge_cases()`` (extremes, tail quantiles, one feature at an extreme) and for every feature
    that had nulls in the reference a row with that feature missing (``<name>=null``).

    Args:
        spec: the feature spec.
        policy: the model's policy.

    Returns:
        Features in spec order plus a ``case`` column.
    """
    import pandas as pd

    frame = spec.sample(policy.synthetic.rows, seed=policy.synthetic.seed)
    frame[CASE_COLUMN] = "sample"
    parts = [frame]
    if policy.synthetic.edge_cases:
        edges = spec.edge_cases()
        labels = list(edges.index)
        edges = edges.reset_index(drop=True)
        edges[CASE_COLUMN] = labels
        parts.append(edges)
        median = edges[edges[CASE_COLUMN] == "all=median"]
        for f in spec.features:
            if f.null_fraction > 0:
                row = median.copy()
                row[f.name] = None
                row[CASE_COLUMN] = f"{f.name}=null"
                parts.append(row)
    return pd.concat(parts, ignore_index=True)


def prepare_inputs(
    target: dict[str, Any], contract: dict[str, Any], mlflow_run_id: str, tracking_uri: str
) -> dict[str, Any]:
    """Draw synthetic inputs from the feature spec, validate them with the input suite, keep them.

    Args:
        target: from :func:`resolve_target`.
        contract: from :func:`check_contract`.
        mlflow_run_id: from :func:`start_run`.
        tracking_uri: the MLflow server.

    Returns:
        ``inputs`` (check result as data), ``rows``, ``spec_source``.
    """
    from include.regression import expectations as ex
    from include.synthetic import FeatureSpec

    if contract["status"] != "pass":
        return {"inputs": ck.skipped("inputs", "contract failed").to_dict(), "rows": 0, "spec_source": None}
    policy = _policy(target)
    uri, source = _spec_uri(target, contract)
    if not uri:
        reason = f"no feature spec on the {source}; register it with feature_spec_uri"
        return {"inputs": ck.CheckResult("inputs", "error", reason).to_dict(), "rows": 0, "spec_source": None}
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=tmp, tracking_uri=tracking_uri, registry_uri=tracking_uri
        ))
        spec = FeatureSpec.from_json(spec_path)
        log_bytes(mlflow_run_id, SPEC_ARTIFACT, spec_path.read_bytes(), tracking_uri)
    frame = synthetic_frame(spec, policy)
    suite_doc = ex.input_suite(
        ex.load_template(policy.inputs.suite), spec, policy.synthetic.rows, policy.inputs.range_tolerance
    )
    result = ex.validate(frame[spec.feature_names], suite_doc)
    log_suite(mlflow_run_id, "inputs", suite_doc, result, tracking_uri)
    log_frame(mlflow_run_id, INPUTS_ARTIFACT, frame, tracking_uri)
    check = ck.from_suite("inputs", result)
    check.figures.update(
        {"rows": len(frame), "edge_cases": int((frame[CASE_COLUMN] != "sample").sum()), "spec_source": source}
    )
    return {"inputs": check.to_dict(), "rows": len(frame), "spec_source": source}


# ---------------------------------------------------------------- scoring


def _classifier(target: dict[str, Any], version: str, tracking_uri: str) -> Classifier:
    from include.registry.resolve import resolve_model_uri
    from include.regression.scoring import Classifier

    policy = _policy(target)
    resolved = resolve_model_uri(f"models:/{target['model_name']}/{version}", tracking_uri=tracking_uri)
    return Classifier(resolved.path, policy.outputs.label_output, policy.outputs.probabilities_output)


def _spec_features(mlflow_run_id: str, tracking_uri: str) -> list[str]:
    from include.synthetic import FeatureSpec

    with tempfile.TemporaryDirectory() as tmp:
        spec = FeatureSpec.from_json(download(mlflow_run_id, SPEC_ARTIFACT, Path(tmp), tracking_uri))
    return spec.feature_names


def score(
    target: dict[str, Any],
    contract: dict[str, Any],
    prepared: dict[str, Any],
    mlflow_run_id: str,
    tracking_uri: str,
) -> dict[str, Any]:
    """Score the inputs with both models, check the challenger's outputs with the output suite and determinism.

    Args:
        target: from :func:`resolve_target`.
        contract: from :func:`check_contract`.
        prepared: from :func:`prepare_inputs`.
        mlflow_run_id: from :func:`start_run`.
        tracking_uri: the MLflow server.

    Returns:
        ``outputs`` and ``determinism`` check results as data.
    """
    from include.regression import expectations as ex
    from include.regression.errors import UnsupportedModelError

    if prepared["inputs"]["status"] != "pass":
        why = "contract failed" if contract["status"] != "pass" else "no valid synthetic inputs"
        return {
            "outputs": ck.skipped("outputs", why).to_dict(),
            "determinism": ck.skipped("determinism", why).to_dict(),
        }
    policy = _policy(target)
    features = _spec_features(mlflow_run_id, tracking_uri)
    frame = read_frame(mlflow_run_id, INPUTS_ARTIFACT, tracking_uri)
    try:
        challenger = _classifier(target, target["version"], tracking_uri)
        x = challenger.matrix(frame, features)
        first, second = challenger.predict(x), challenger.predict(x)
    except UnsupportedModelError as e:
        err = ck.CheckResult("outputs", "error", f"the challenger cannot score the inputs: {e.message}")
        return {
            "outputs": err.to_dict(),
            "determinism": ck.skipped("determinism", "challenger cannot score").to_dict(),
        }
    out = first.frame()
    out[CASE_COLUMN] = frame[CASE_COLUMN].to_numpy()
    log_frame(mlflow_run_id, CHALLENGER_SCORES, out, tracking_uri)
    if not _breaking(contract):
        champion = _classifier(target, target["champion_version"], tracking_uri)
        champ_out = champion.predict(champion.matrix(frame, features)).frame()
        champ_out[CASE_COLUMN] = frame[CASE_COLUMN].to_numpy()
        log_frame(mlflow_run_id, CHAMPION_SCORES, champ_out, tracking_uri)
    n_classes = first.probabilities.shape[1]
    classes = policy.outputs.classes if policy.outputs.classes is not None else list(range(n_classes))
    suite_doc = ex.output_suite(
        ex.load_template(policy.outputs.suite), n_classes, classes, policy.outputs.sum_tolerance
    )
    result = ex.validate(out.drop(columns=[CASE_COLUMN]), suite_doc)
    log_suite(mlflow_run_id, "outputs", suite_doc, result, tracking_uri)
    outputs = ck.from_suite("outputs", result)
    bad_cases = out.loc[~np.isfinite(out["probability_sum"]), CASE_COLUMN]
    outputs.figures["nonfinite_rows"] = len(bad_cases)
    outputs.figures["nonfinite_edge_cases"] = int((bad_cases != "sample").sum())
    return {
        "outputs": outputs.to_dict(),
        "determinism": ck.check_determinism(first, second, policy).to_dict(),
    }


# ---------------------------------------------------------------- behaviour


def _holdout_path(uri: str, tmp: Path, tracking_uri: str) -> Path:
    import mlflow

    if uri.startswith("runs:/"):
        return Path(mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=str(tmp), tracking_uri=tracking_uri, registry_uri=tracking_uri
        ))
    return Path(os.path.expandvars(uri)).expanduser()


def _quality(
    target: dict[str, Any],
    features: list[str],
    champion: Classifier,
    challenger: Classifier,
    tracking_uri: str,
) -> ck.CheckResult:
    import pandas as pd

    qp = _policy(target).quality
    if not qp.holdout_uri:
        return ck.skipped("quality", "no labelled holdout in the policy (quality.holdout_uri)")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = _holdout_path(qp.holdout_uri, Path(tmp), tracking_uri)
            holdout = pd.read_parquet(path)
        except Exception as e:  # missing file, not Parquet, download failure: all make the check unusable
            return ck.CheckResult(
                "quality", "error", f"holdout {qp.holdout_uri!r} cannot be read: {str(e)[:300]}"
            )
    missing = [c for c in [*features, qp.label_column] if c not in holdout.columns]
    if missing:
        return ck.CheckResult("quality", "error", f"holdout {qp.holdout_uri!r} lacks columns {missing[:10]}")
    y = holdout[qp.label_column].to_numpy()
    res_c = champion.predict(champion.matrix(holdout, features))
    res_n = challenger.predict(challenger.matrix(holdout, features))
    return ck.check_quality(res_c, res_n, y, _policy(target))


def compare(
    target: dict[str, Any],
    contract: dict[str, Any],
    prepared: dict[str, Any],
    scored: dict[str, Any],
    mlflow_run_id: str,
    tracking_uri: str,
) -> dict[str, Any]:
    """Compare the challenger's behaviour with the champion's: agreement, distribution, quality, latency.

    Args:
        target: from :func:`resolve_target`.
        contract: from :func:`check_contract`.
        prepared: from :func:`prepare_inputs`.
        scored: from :func:`score`.
        mlflow_run_id: from :func:`start_run`.
        tracking_uri: the MLflow server.

    Returns:
        ``agreement``, ``distribution``, ``quality``, ``latency`` check results as data.
    """
    from include.regression.scoring import paired_latency

    names = ("agreement", "distribution", "quality", "latency")
    why = None
    if scored["outputs"]["status"] in ("skipped", "error"):
        why = "the challenger was not scored"
    elif _breaking(contract):
        why = "breaking signature change: not comparable with the champion"
    if why:
        return {n: ck.skipped(n, why).to_dict() for n in names}
    policy = _policy(target)
    champ = predictions(read_frame(mlflow_run_id, CHAMPION_SCORES, tracking_uri))
    chall = predictions(read_frame(mlflow_run_id, CHALLENGER_SCORES, tracking_uri))
    results = {
        "agreement": ck.check_agreement(champ, chall, policy),
        "distribution": ck.check_distribution(champ, chall, policy),
    }
    features = _spec_features(mlflow_run_id, tracking_uri)
    champion = _classifier(target, target["champion_version"], tracking_uri)
    challenger = _classifier(target, target["version"], tracking_uri)
    results["quality"] = _quality(target, features, champion, challenger, tracking_uri)
    frame = read_frame(mlflow_run_id, INPUTS_ARTIFACT, tracking_uri)
    sample = frame[frame[CASE_COLUMN] == "sample"]
    latency = paired_latency(
        champion,
        challenger,
        champion.matrix(sample, features),
        challenger.matrix(sample, features),
        policy.latency.runs,
        policy.latency.warmup,
    )
    results["latency"] = ck.check_latency(latency, policy)
    for r in results.values():
        log.info("%s: %s (%s)", r.name, r.status, r.reason)
    return {k: v.to_dict() for k, v in results.items()}
