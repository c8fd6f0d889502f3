"""What the ``regression_testing`` DAG's tasks call: each step reads and writes MLflow, returns small dicts.

Large data (synthetic inputs, scores, suite results, the report) travel as artifacts of one MLflow
run per test (experiment ``modelgate-regression``, found again by the Airflow run id on a retry);
XCom carries the MLflow run id, check results and figures only.

Steps: :func:`resolve_target` → :func:`record_first_version` → :func:`check_contract` →
:func:`prepare_inputs` → :func:`score` → :func:`compare` → :func:`decide`.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from include.regression import checks as ck
from include.regression.errors import TargetError
from include.regression.policy import Policy, load_policy

if TYPE_CHECKING:
    import pandas as pd

    from include.regression.scoring import Classifier
    from include.synthetic import FeatureSpec

log = logging.getLogger(__name__)

EXPERIMENT = "modelgate-regression"
TAG_PREFIX = "modelgate.regression."
INPUTS_ARTIFACT = "inputs/inputs.parquet"
SPEC_ARTIFACT = "inputs/feature_spec.json"
CHAMPION_SCORES = "scores/champion.parquet"
CHALLENGER_SCORES = "scores/challenger.parquet"
CASE_COLUMN = "case"
FIRST_VERSION_REASON = "first version: no champion to compare with"
MAX_TAG_CHARS = 4000


# ---------------------------------------------------------------- target


def resolve_target(conf: dict[str, Any] | None, asset_extras: list[dict[str, Any]] | None) -> dict[str, Any]:
    """Work out which version to test and against which champion, and load the model's policy.

    ``conf`` ``{"model_name", "version"}`` wins; otherwise the newest triggering asset event's extra
    (``model_registered``: ``model_name``, ``version``) is used.

    Args:
        conf: the DAG run's conf.
        asset_extras: extras of the triggering asset events, oldest first.

    Returns:
        ``model_name``, ``version``, ``champion_version`` (None when there is none or it is this
        version), ``first_version``, ``challenger``/``champion`` manifests (semver, signature,
        feature_spec) and ``policy`` (as data).

    Raises:
        TargetError: no model/version given, or the version does not exist or has no manifest.
        PolicyError: the model's policy is invalid.
    """
    from include.registry import manifest as mf
    from include.registry import registry as reg

    source = conf if conf and conf.get("model_name") else None
    if source is None and asset_extras:
        source = asset_extras[-1]
        if len(asset_extras) > 1:
            log.warning("%d asset events in this run; testing the newest: %s", len(asset_extras), source)
    if not source or not source.get("model_name") or source.get("version") in (None, ""):
        raise TargetError(
            'nothing to test: trigger with conf {"model_name": ..., "version": ...} or through the '
            "modelgate_model_registered asset"
        )
    name = mf.validate_model_name(source["model_name"])
    version = str(source["version"])
    policy = load_policy(name)
    challenger = _manifest(name, version)
    champion_version = reg.get_alias_version(name, mf.ALIAS_CHAMPION)
    first = champion_version is None or champion_version == version
    return {
        "model_name": name,
        "version": version,
        "champion_version": None if first else champion_version,
        "first_version": first,
        "challenger": challenger,
        "champion": None if first else _manifest(name, str(champion_version)),
        "policy": policy.to_dict(),
    }


def _manifest(name: str, version: str) -> dict[str, Any]:
    from mlflow.exceptions import MlflowException

    from include.registry import manifest as mf
    from include.registry import registry as reg

    try:
        mv = reg.get_client().get_model_version(name, version)
    except MlflowException as e:
        raise TargetError(f"models:/{name}/{version} does not exist in the registry") from e
    if mv.tags.get(mf.TAG_STATUS) != mf.STATUS_READY or mf.TAG_SIGNATURE not in mv.tags:
        raise TargetError(
            f"models:/{name}/{version} has no complete modelgate manifest (register it through model_registration)"
        )
    return {
        "version": version,
        "semver": mv.tags.get(mf.TAG_SEMVER, ""),
        "signature": mv.tags[mf.TAG_SIGNATURE],
        "feature_spec": mv.tags.get(mf.TAG_FEATURE_SPEC),
    }


def _policy(target: dict[str, Any]) -> Policy:
    return Policy.from_dict(target["policy"])


def record_first_version(target: dict[str, Any], actor: str, run_id: str) -> bool:
    """For a version with no champion to compare with, record verdict ``pass`` and stop.

    Args:
        target: from :func:`resolve_target`.
        actor: who acts (audit).
        run_id: the Airflow run id.

    Returns:
        True when there is a champion and the gate must run; False after recording the first-version pass.
    """
    if not target["first_version"]:
        return True
    from include.registry import registry as reg
    from include.registry.audit import append_audit

    name, version = target["model_name"], target["version"]
    tags = {
        TAG_PREFIX + "verdict": "pass",
        TAG_PREFIX + "reasons": json.dumps([FIRST_VERSION_REASON]),
        TAG_PREFIX + "champion_version": "",
        TAG_PREFIX + "checked_at": datetime.now(UTC).isoformat(),
        TAG_PREFIX + "airflow_run_id": run_id,
    }
    reg.set_version_tags(name, version, tags, actor=actor, run_id=run_id)
    append_audit(
        actor,
        "regression_verdict",
        f"models:/{name}/{version}",
        None,
        {"verdict": "pass", "reasons": [FIRST_VERSION_REASON], "champion_version": None},
        run_id,
    )
    log.info("models:/%s/%s: %s", name, version, FIRST_VERSION_REASON)
    return False


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


# ---------------------------------------------------------------- MLflow run


def start_run(target: dict[str, Any], airflow_run_id: str) -> str:
    """Return the MLflow run holding this test's evidence, created once per Airflow run.

    Args:
        target: from :func:`resolve_target`.
        airflow_run_id: the Airflow run id (a retry finds the same MLflow run).

    Returns:
        The MLflow run id.
    """
    from include.registry import registry as reg

    client = reg.get_client()
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


def _log_bytes(run_id: str, artifact_path: str, data: bytes) -> None:
    from include.registry import registry as reg

    folder, _, filename = artifact_path.rpartition("/")
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / filename
        p.write_bytes(data)
        reg.get_client().log_artifact(run_id, str(p), folder or None)


def _log_frame(run_id: str, artifact_path: str, frame: pd.DataFrame) -> None:
    import io

    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    _log_bytes(run_id, artifact_path, buf.getvalue())


def _download(run_id: str, artifact_path: str, dst: Path) -> Path:
    import mlflow

    return Path(
        mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path, dst_path=str(dst))
    )


def _read_frame(run_id: str, artifact_path: str) -> pd.DataFrame:
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        return pd.read_parquet(_download(run_id, artifact_path, Path(tmp)))


def _log_suite(run_id: str, stem: str, suite_doc: dict[str, Any], result: Any) -> None:
    _log_bytes(run_id, f"expectations/{stem}.suite.json", json.dumps(suite_doc, indent=1).encode())
    _log_bytes(
        run_id, f"expectations/{stem}.result.json", json.dumps(result.result, indent=1, default=str).encode()
    )
    _log_bytes(run_id, f"expectations/{stem}.html", result.html.encode())


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


def prepare_inputs(target: dict[str, Any], contract: dict[str, Any], mlflow_run_id: str) -> dict[str, Any]:
    """Draw synthetic inputs from the feature spec, validate them with the input suite, keep them.

    Args:
        target: from :func:`resolve_target`.
        contract: from :func:`check_contract`.
        mlflow_run_id: from :func:`start_run`.

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
        spec_path = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
        spec = FeatureSpec.from_json(spec_path)
        _log_bytes(mlflow_run_id, SPEC_ARTIFACT, spec_path.read_bytes())
    frame = synthetic_frame(spec, policy)
    suite_doc = ex.input_suite(
        ex.load_template(policy.inputs.suite), spec, policy.synthetic.rows, policy.inputs.range_tolerance
    )
    result = ex.validate(frame[spec.feature_names], suite_doc)
    _log_suite(mlflow_run_id, "inputs", suite_doc, result)
    _log_frame(mlflow_run_id, INPUTS_ARTIFACT, frame)
    check = ck.from_suite("inputs", result)
    check.figures.update(
        {"rows": len(frame), "edge_cases": int((frame[CASE_COLUMN] != "sample").sum()), "spec_source": source}
    )
    return {"inputs": check.to_dict(), "rows": len(frame), "spec_source": source}


# ---------------------------------------------------------------- scoring


def _classifier(target: dict[str, Any], version: str) -> Classifier:
    from include.registry.resolve import resolve_model_uri
    from include.regression.scoring import Classifier

    policy = _policy(target)
    resolved = resolve_model_uri(f"models:/{target['model_name']}/{version}")
    return Classifier(resolved.path, policy.outputs.label_output, policy.outputs.probabilities_output)


def _spec_features(mlflow_run_id: str) -> list[str]:
    from include.synthetic import FeatureSpec

    with tempfile.TemporaryDirectory() as tmp:
        return FeatureSpec.from_json(_download(mlflow_run_id, SPEC_ARTIFACT, Path(tmp))).feature_names


def score(
    target: dict[str, Any], contract: dict[str, Any], prepared: dict[str, Any], mlflow_run_id: str
) -> dict[str, Any]:
    """Score the inputs with both models, check the challenger's outputs with the output suite and determinism.

    Args:
        target: from :func:`resolve_target`.
        contract: from :func:`check_contract`.
        prepared: from :func:`prepare_inputs`.
        mlflow_run_id: from :func:`start_run`.

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
    features = _spec_features(mlflow_run_id)
    frame = _read_frame(mlflow_run_id, INPUTS_ARTIFACT)
    try:
        challenger = _classifier(target, target["version"])
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
    _log_frame(mlflow_run_id, CHALLENGER_SCORES, out)
    if not _breaking(contract):
        champion = _classifier(target, target["champion_version"])
        champ_out = champion.predict(champion.matrix(frame, features)).frame()
        champ_out[CASE_COLUMN] = frame[CASE_COLUMN].to_numpy()
        _log_frame(mlflow_run_id, CHAMPION_SCORES, champ_out)
    n_classes = first.probabilities.shape[1]
    classes = policy.outputs.classes if policy.outputs.classes is not None else list(range(n_classes))
    suite_doc = ex.output_suite(
        ex.load_template(policy.outputs.suite), n_classes, classes, policy.outputs.sum_tolerance
    )
    result = ex.validate(out.drop(columns=[CASE_COLUMN]), suite_doc)
    _log_suite(mlflow_run_id, "outputs", suite_doc, result)
    outputs = ck.from_suite("outputs", result)
    bad_cases = out.loc[~np.isfinite(out["probability_sum"]), CASE_COLUMN]
    outputs.figures["nonfinite_rows"] = len(bad_cases)
    outputs.figures["nonfinite_edge_cases"] = int((bad_cases != "sample").sum())
    return {
        "outputs": outputs.to_dict(),
        "determinism": ck.check_determinism(first, second, policy).to_dict(),
    }


# ---------------------------------------------------------------- behaviour


def _predictions(frame: pd.DataFrame) -> Any:
    from include.regression.scoring import Predictions

    prob_cols = [c for c in frame.columns if c.startswith("probability_") and c != "probability_sum"]
    return Predictions(frame["label"].to_numpy(), frame[prob_cols].to_numpy(dtype=np.float64))


def _holdout_path(uri: str, tmp: Path) -> Path:
    import mlflow

    if uri.startswith("runs:/"):
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp)))
    return Path(os.path.expandvars(uri)).expanduser()


def _quality(
    target: dict[str, Any], features: list[str], champion: Classifier, challenger: Classifier
) -> ck.CheckResult:
    import pandas as pd

    qp = _policy(target).quality
    if not qp.holdout_uri:
        return ck.skipped("quality", "no labelled holdout in the policy (quality.holdout_uri)")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = _holdout_path(qp.holdout_uri, Path(tmp))
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
) -> dict[str, Any]:
    """Compare the challenger's behaviour with the champion's: agreement, distribution, quality, latency.

    Args:
        target: from :func:`resolve_target`.
        contract: from :func:`check_contract`.
        prepared: from :func:`prepare_inputs`.
        scored: from :func:`score`.
        mlflow_run_id: from :func:`start_run`.

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
    champ = _predictions(_read_frame(mlflow_run_id, CHAMPION_SCORES))
    chall = _predictions(_read_frame(mlflow_run_id, CHALLENGER_SCORES))
    results = {
        "agreement": ck.check_agreement(champ, chall, policy),
        "distribution": ck.check_distribution(champ, chall, policy),
    }
    features = _spec_features(mlflow_run_id)
    champion = _classifier(target, target["champion_version"])
    challenger = _classifier(target, target["version"])
    results["quality"] = _quality(target, features, champion, challenger)
    frame = _read_frame(mlflow_run_id, INPUTS_ARTIFACT)
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


# ---------------------------------------------------------------- verdict


def _tag_value(v: Any) -> str:
    if isinstance(v, float):
        return repr(round(v, 6)) if np.isfinite(v) else str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)[:MAX_TAG_CHARS]


def verdict_tags(report: dict[str, Any]) -> dict[str, str]:
    """Return every ``modelgate.regression.*`` tag of a report: verdict, reasons, each check's status and figures.

    Args:
        report: the report document from :func:`decide`.

    Returns:
        Tag name → string value.
    """
    tags = {
        TAG_PREFIX + "verdict": report["verdict"],
        TAG_PREFIX + "reasons": json.dumps(report["reasons"])[:MAX_TAG_CHARS],
        TAG_PREFIX + "champion_version": str(report["champion_version"]),
        TAG_PREFIX + "checked_at": report["checked_at"],
        TAG_PREFIX + "airflow_run_id": str(report["airflow_run_id"]),
        TAG_PREFIX + "mlflow_run_id": report["mlflow_run_id"],
        TAG_PREFIX + "report": f"runs:/{report['mlflow_run_id']}/report/report.html",
        TAG_PREFIX + "policy_sha256": report["policy_sha256"],
        TAG_PREFIX + "policy_sources": ",".join(report["policy"].get("sources", [])),
    }
    for c in report["checks"]:
        tags[f"{TAG_PREFIX}{c['name']}.status"] = c["status"]
        for k, v in c["figures"].items():
            tags[f"{TAG_PREFIX}{c['name']}.{k}"] = _tag_value(v)
    return tags


def decide(
    target: dict[str, Any], results: list[dict[str, Any]], mlflow_run_id: str, actor: str, airflow_run_id: str
) -> dict[str, Any]:
    """Combine the checks into the verdict and leave the evidence: report, tags, metrics, audit record.

    Args:
        target: from :func:`resolve_target`.
        results: every check result as data (inputs, contract, outputs, determinism, agreement,
            distribution, quality, latency).
        mlflow_run_id: from :func:`start_run`.
        actor: who acts (audit).
        airflow_run_id: the Airflow run id.

    Returns:
        ``verdict``, ``reasons``, ``model_name``, ``version``, ``mlflow_run_id``, ``report``.
    """
    from include.registry import registry as reg
    from include.registry.audit import append_audit
    from include.regression import report as rp

    policy = _policy(target)
    checks = ck.excuse_drift([ck.CheckResult.from_dict(r) for r in results], policy)
    verdict, reasons = ck.verdict(checks)
    name, version = target["model_name"], target["version"]
    doc = {
        "model_name": name,
        "version": version,
        "champion_version": target["champion_version"],
        "verdict": verdict,
        "reasons": reasons,
        "checks": [c.to_dict() for c in checks],
        "policy": target["policy"],
        "policy_sha256": policy.sha256(),
        "challenger": {k: target["challenger"][k] for k in ("semver", "feature_spec")},
        "champion": {k: target["champion"][k] for k in ("semver", "feature_spec")},
        "rows": next((c.figures.get("rows") for c in checks if c.name == "inputs"), 0),
        "checked_at": datetime.now(UTC).isoformat(),
        "airflow_run_id": airflow_run_id,
        "mlflow_run_id": mlflow_run_id,
    }
    images = rp.plots(*_scores_for_plots(mlflow_run_id), policy.distribution.bins, _latency_figures(checks))
    client = reg.get_client()
    _log_bytes(mlflow_run_id, "report/report.json", json.dumps(doc, indent=1, default=str).encode())
    _log_bytes(mlflow_run_id, "report/report.html", rp.render_html(doc, images).encode())
    metrics = {
        f"{c.name}.{k}": float(v)
        for c in checks
        for k, v in c.figures.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)
    }
    for key, value in metrics.items():
        client.log_metric(mlflow_run_id, key, value)
    client.set_tag(mlflow_run_id, "modelgate.regression.verdict", verdict)
    client.set_terminated(mlflow_run_id, "FINISHED")
    reg.set_version_tags(name, version, verdict_tags(doc), actor=actor, run_id=airflow_run_id)
    append_audit(
        actor,
        "regression_verdict",
        f"models:/{name}/{version}",
        None,
        {
            "verdict": verdict,
            "reasons": reasons,
            "champion_version": target["champion_version"],
            "mlflow_run_id": mlflow_run_id,
            "policy_sha256": doc["policy_sha256"],
        },
        airflow_run_id,
    )
    log.info("models:/%s/%s regression verdict %s %s", name, version, verdict, reasons)
    return {
        "verdict": verdict,
        "reasons": reasons,
        "model_name": name,
        "version": version,
        "mlflow_run_id": mlflow_run_id,
        "report": f"runs:/{mlflow_run_id}/report/report.html",
    }


def _scores_for_plots(mlflow_run_id: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    from mlflow.exceptions import MlflowException

    out: list[np.ndarray | None] = []
    for path in (CHAMPION_SCORES, CHALLENGER_SCORES):
        try:
            out.append(_predictions(_read_frame(mlflow_run_id, path)).positive_scores)
        except (MlflowException, OSError):
            out.append(None)
    return out[0], out[1]


def _latency_figures(checks: list[ck.CheckResult]) -> dict[str, Any] | None:
    lat = next((c for c in checks if c.name == "latency"), None)
    return lat.figures if lat is not None and lat.status != "skipped" else None
