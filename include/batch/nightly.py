"""The steps of the ``nightly_batch_inference`` DAG, as plain functions (no Airflow here).

Layout of one date (local paths in the embedded default, URLs in production)::

    <input_root>/dt=YYYY-MM-DD/part-*.parquet           input partitions
    <output_root>/dt=YYYY-MM-DD/<part>.parquet          scored partitions (keys + predictions)
    <output_root>/dt=YYYY-MM-DD/<part>.manifest.json    the job's manifest of each partition
    <output_root>/dt=YYYY-MM-DD/_PUBLISHED.json         what was validated and published, with which model
    <output_root>/_quarantine/dt=YYYY-MM-DD/<part>.*    failing partitions, with <part>.reason.json
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from include.batch import storage
from include.batch.errors import BatchError, BatchInputError, BatchModelError
from modelgate_contracts.uris import MalformedModelUri, parse_model_uri, version_uri

log = logging.getLogger(__name__)

PUBLISHED = "_PUBLISHED.json"
QUARANTINE = "_quarantine"
_REPO = Path(__file__).resolve().parents[2]


def default_roots() -> tuple[str, str]:
    """Return the embedded default input and output roots: ``<home>/batch/input`` and ``<home>/batch/scores``."""
    from include.config import get_settings

    home = get_settings().home
    return str(home / "batch" / "input"), str(home / "batch" / "scores")


def pin_model(uri: str, tracking_uri: str | None = None) -> str:
    """Turn an alias URI into the version it points to now, so every partition of a run uses it.

    Args:
        uri: ``models:/name@alias`` (pinned), or any other model URI (returned unchanged).
        tracking_uri: MLflow server (default from settings).

    Returns:
        ``models:/name/N`` for alias URIs, else ``uri``.

    Raises:
        BatchModelError: the alias is not set.
    """
    try:
        ref = parse_model_uri(uri)
    except MalformedModelUri as e:
        raise BatchModelError(str(e)) from e
    if ref is None or ref.alias is None:
        return uri
    from include.registry.registry import get_alias_version

    version = get_alias_version(ref.name, ref.alias, tracking_uri=tracking_uri)
    if version is None:
        raise BatchModelError(f"{uri}: alias {ref.alias!r} is not set on model {ref.name!r}")
    pinned = version_uri(ref.name, version)
    log.info("event=pin_model uri=%s pinned=%s", uri, pinned)
    return pinned


def plan_run(
    day: date, model_uri: str, input_root: str | None = None, output_root: str | None = None
) -> dict[str, Any]:
    """List the date's partitions and pin the model (the first step of a run).

    Args:
        day: the data date.
        model_uri: the model to use (alias URIs are pinned to a version).
        input_root: folder holding ``dt=YYYY-MM-DD`` partition folders (default under home).
        output_root: folder receiving scored ``dt=YYYY-MM-DD`` folders (default under home).

    Returns:
        ``date``, ``partitions`` (file paths), ``model_uri`` (pinned), ``output_dir``, ``quarantine_dir``.

    Raises:
        BatchInputError: the date has no partitions.
        BatchModelError: the alias is not set.
    """
    d_in, d_out = default_roots()
    in_root, out_root = (input_root or d_in).rstrip("/"), (output_root or d_out).rstrip("/")
    folder = f"{in_root}/dt={day.isoformat()}"
    fs, inner = storage.filesystem(folder)
    files = storage.list_input_files(fs, inner, folder)
    prefix = folder.split("://", 1)[0] + "://" if "://" in folder else ""
    partitions = [f"{prefix}{f}" for f in files]
    return {
        "date": day.isoformat(),
        "partitions": partitions,
        "model_uri": pin_model(model_uri),
        "output_dir": f"{out_root}/dt={day.isoformat()}",
        "quarantine_dir": f"{out_root}/{QUARANTINE}/dt={day.isoformat()}",
    }


def run_local(args: Sequence[str], timeout_s: float = 6 * 3600) -> dict[str, Any]:
    """Run the batch job for one partition as a local process (the ``local`` backend).

    Args:
        args: the job's arguments (:func:`include.batch.pods.job_arguments`).
        timeout_s: wall-clock limit.

    Returns:
        The job's JSON result line for the partition.

    Raises:
        BatchInputError: the job rejected the input (exit 3; not worth a retry).
        BatchModelError: the model could not be resolved or loaded (exit 4).
        BatchError: any other failure (worth a retry).
    """
    import json

    cmd = [sys.executable, "-m", "include.batch", *args]
    try:
        proc = subprocess.run(cmd, cwd=_REPO, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as e:
        raise BatchError(f"batch job timed out after {timeout_s:.0f}s: {' '.join(args)}") from e
    for line in proc.stderr.splitlines():
        log.info("job: %s", line)
    if proc.returncode == 0:
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        return dict(json.loads(lines[-1])) if lines else {}
    tail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit code {proc.returncode}"
    tail = tail.removeprefix("modelgate batch: error: ")
    if proc.returncode == 3:
        raise BatchInputError(tail)
    if proc.returncode == 4:
        raise BatchModelError(tail)
    raise BatchError(f"batch job failed with exit code {proc.returncode}: {tail}")


def _sha256_bytes(fs: Any, path: str) -> str | None:
    try:
        with fs.open_input_stream(path) as f:
            return hashlib.sha256(f.read()).hexdigest()
    except (OSError, FileNotFoundError):
        return None


def _check_partition(
    fs: Any, out_dir: str, part: str, model_uri: str, validator: Any
) -> tuple[str | None, dict[str, Any] | None]:
    """Return (reason it fails or None, manifest)."""
    stem = storage.basename(part).removesuffix(".parquet")
    man = storage.read_json(fs, storage.join(out_dir, f"{stem}.manifest.json"))
    out = storage.join(out_dir, f"{stem}.parquet")
    if man is None or not storage.exists(fs, out):
        return "no output: the batch job failed for this partition (see its task log)", man
    uri = man.get("model", {}).get("uri")
    if uri != model_uri:
        return f"scored with {uri}, not the run's pinned {model_uri}", man
    verdict = validator.validate(out, int(man["input"]["rows"]))
    if not verdict.success:
        return f"failed expectations: {', '.join(verdict.failed)}", man
    return None, man


def _quarantine(fs: Any, out_dir: str, q_dir: str, part: str, reason: str) -> None:
    stem = storage.basename(part).removesuffix(".parquet")
    fs.create_dir(q_dir, recursive=True)
    for name in (f"{stem}.parquet", f"{stem}.manifest.json"):
        if storage.exists(fs, storage.join(out_dir, name)):
            fs.move(storage.join(out_dir, name), storage.join(q_dir, name))
    storage.write_json_atomic(
        fs,
        storage.join(q_dir, f"{stem}.reason.json"),
        {"partition": part, "reason": reason, "at": datetime.now(UTC).isoformat(timespec="seconds")},
    )
    log.warning("event=quarantine partition=%s reason=%s", part, reason)


def validate_and_publish(plan: dict[str, Any], checkpoint: str | None = None) -> dict[str, Any]:
    """Validate every partition's output; quarantine the failing ones, publish the rest.

    A partition already listed in ``_PUBLISHED.json`` with the same manifest is not validated again.

    Args:
        plan: the result of :func:`plan_run`.
        checkpoint: the checkpoint JSON (default ``validation/batch_outputs.checkpoint.json``).

    Returns:
        ``date``, ``output_dir``, ``model_uri``, ``published`` (partition files), ``rows``,
        ``quarantined`` (``{"partition", "reason"}`` dicts).
    """
    from include.batch.validate import DEFAULT_CHECKPOINT, OutputValidator

    fs, out_dir = storage.filesystem(plan["output_dir"])
    _, q_dir = storage.filesystem(plan["quarantine_dir"])
    fs.create_dir(out_dir, recursive=True)
    before = storage.read_json(fs, storage.join(out_dir, PUBLISHED)) or {}
    known = {p["partition"]: p.get("manifest_sha256") for p in before.get("partitions", [])}
    validator: OutputValidator | None = None
    published: list[dict[str, Any]] = []
    quarantined: list[dict[str, str]] = []
    for part in plan["partitions"]:
        stem = storage.basename(part).removesuffix(".parquet")
        man_sha = _sha256_bytes(fs, storage.join(out_dir, f"{stem}.manifest.json"))
        if man_sha is not None and known.get(part) == man_sha:
            seen = storage.read_json(fs, storage.join(out_dir, f"{stem}.manifest.json")) or {}
            published.append({"partition": part, "rows": seen["output"]["rows"], "manifest_sha256": man_sha})
            continue
        validator = validator or OutputValidator(Path(checkpoint) if checkpoint else DEFAULT_CHECKPOINT)
        reason, man = _check_partition(fs, out_dir, part, plan["model_uri"], validator)
        if reason is not None:
            _quarantine(fs, out_dir, q_dir, part, reason)
            quarantined.append({"partition": part, "reason": reason})
        else:
            assert man is not None
            published.append({"partition": part, "rows": man["output"]["rows"], "manifest_sha256": man_sha})
    doc = {
        "date": plan["date"],
        "model_uri": plan["model_uri"],
        "partitions": published,
        "quarantined": quarantined,
        "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if before.get("partitions") != published or before.get("quarantined") != quarantined:
        storage.write_json_atomic(fs, storage.join(out_dir, PUBLISHED), doc)
    return {
        "date": plan["date"],
        "output_dir": plan["output_dir"],
        "model_uri": plan["model_uri"],
        "published": [p["partition"] for p in published],
        "rows": sum(int(p["rows"]) for p in published),
        "quarantined": quarantined,
    }


def backend_task(backend: str, kubernetes_enabled: bool) -> str:
    """Return the task the DAG branches to for a backend name (the Variable's value).

    Args:
        backend: ``local`` or ``kubernetes``.
        kubernetes_enabled: whether the deployment put the kubernetes branch into the DAG.

    Returns:
        ``score_local`` or ``pod_args``.

    Raises:
        BatchError: unknown backend, or kubernetes while the deployment has not enabled it.
    """
    if backend == "local":
        return "score_local"
    if backend == "kubernetes" and kubernetes_enabled:
        return "pod_args"
    raise BatchError(
        f"Variable modelgate_batch_backend={backend!r}: use 'local' or 'kubernetes' (the latter needs "
        "MODELGATE_BATCH_KUBERNETES=1 in the scheduler's and DAG processor's environment)"
    )


def quarantine_summary(report: dict[str, Any]) -> str | None:
    """Return a one-line account of the quarantined partitions of a report, or ``None`` when there are none."""
    q = report.get("quarantined") or []
    if not q:
        return None
    return f"{len(q)} partition(s) quarantined: " + "; ".join(f"{x['partition']}: {x['reason']}" for x in q)


_PLAN_KEYS = ("date", "model_uri", "output_dir", "quarantine_dir")


def partition_jobs(plan: dict[str, Any]) -> list[dict[str, str]]:
    """Split a plan into one small reference dict per partition (what the DAG maps over).

    Args:
        plan: the result of :func:`plan_run`.

    Returns:
        ``{"partition", "date", "model_uri", "output_dir", "quarantine_dir"}`` per partition.
    """
    return [{"partition": p, **{k: str(plan[k]) for k in _PLAN_KEYS}} for p in plan["partitions"]]


def plan_of(jobs: Sequence[dict[str, str]]) -> dict[str, Any]:
    """Rebuild the plan from the per-partition dicts of :func:`partition_jobs`.

    Args:
        jobs: the per-partition dicts (non-empty, all of one run).

    Returns:
        The plan.

    Raises:
        BatchError: empty, or the dicts disagree on date, model or folders.
    """
    if not jobs:
        raise BatchError("no partitions in the plan")
    heads = {tuple(j[k] for k in _PLAN_KEYS) for j in jobs}
    if len(heads) != 1:
        raise BatchError(f"partitions of one run disagree on {_PLAN_KEYS}: {sorted(heads)}")
    return {**{k: jobs[0][k] for k in _PLAN_KEYS}, "partitions": [j["partition"] for j in jobs]}
