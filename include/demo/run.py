"""``make demo``: the main job end to end on the embedded local stack.

Starts the stack (``make up``), trains the demo models, registers v1 through Airflow's REST API
exactly as CI would (``modelgate trigger``), waits, checks that v1 is champion, registers v2,
checks that v2 is challenger, verifies the audit log, prints a summary and writes it to
``<home>/demo/summary.json``. The stack stays up so the UIs can be opened; ``make down`` stops it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from include.synthetic.files import atomic_write

log = logging.getLogger(__name__)

SCENARIOS = ("good",)


class DemoFailed(Exception):
    """Raised when a demo stage does not end as expected; the message says which and why."""


def _run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    return res


def _register(
    bin_dir: Path, env: dict[str, str], airflow_url: str, conf: dict[str, Any], name: str, sha256: str
) -> bool:
    """Register through the REST API like CI; return False when the file was already registered."""
    from include.registry import registry as reg

    client = reg.get_client()
    known = name in {m.name for m in client.search_registered_models()} and (
        reg.find_by_source_sha(client, name, sha256) is not None
    )
    res = _run(
        [
            str(bin_dir / "modelgate"),
            "trigger",
            "model_registration",
            "--conf",
            json.dumps(conf),
            "--url",
            airflow_url,
            "--timeout",
            "600",
            "--poll",
            "1",
        ],
        env,
    )
    if res.returncode != 0:
        raise DemoFailed(f"registering {conf['artifact_uri']} failed (exit {res.returncode})")
    return not known


def _demo_models(out: Path) -> Any:
    """Train the demo models once; later demos reuse them (so re-runs register nothing new)."""
    from include.demo.train import DemoArtifacts, train_demo_models

    metrics_file = out / "metrics.json"
    if metrics_file.exists():
        metrics = json.loads(metrics_file.read_text())
        art = DemoArtifacts(
            out_dir=out,
            v1_model=out / "churn-v1.onnx",
            v2_model=out / "churn-v2.onnx",
            feature_spec=out / "feature_spec.json",
            reference=out / "reference.parquet",
            holdout=out / "holdout.parquet",
            metrics_file=metrics_file,
            metrics=metrics,
        )
        if all(p.exists() for p in (art.v1_model, art.v2_model, art.feature_spec, art.reference)):
            return art
    print("training the demo models ...")
    return train_demo_models(out)


def run(scenario: str) -> dict[str, Any]:
    """Run the demo scenario and return the summary.

    Raises:
        DemoFailed: a stage did not end as expected.
    """
    from include.cli import AirflowClient
    from include.registry import audit
    from include.registry import registry as reg
    from include.stack import StackConfig, admin_password, stack_env

    started = time.monotonic()
    cfg = StackConfig.from_env()
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, **stack_env(cfg)}
    if subprocess.run([sys.executable, "-m", "include.stack", "up"], env=env).returncode != 0:
        raise DemoFailed("the local stack did not come up (see the message above)")
    os.environ.update(
        {k: env[k] for k in ("MODELGATE_HOME", "MODELGATE_TRACKING_URI", "MLFLOW_TRACKING_URI")}
    )

    demo_dir = cfg.home / "demo"
    art = _demo_models(demo_dir / "models")
    name = os.environ.get("MODELGATE_DEMO_MODEL", "churn")
    stages: list[dict[str, Any]] = []
    client = AirflowClient(cfg.airflow_url, "admin", admin_password(cfg))
    client.unpause("regression_testing")  # runs on each registration's Asset event
    regression: dict[str, Any] = {}
    for label in ("v1", "v2"):
        meta = art.metrics["models"][label]
        conf = {
            "model_name": name,
            "artifact_uri": str(art.model(label)),
            "feature_spec_uri": str(art.feature_spec),
            "actor": "demo-ci",
            "lineage": {
                "data_uri": str(art.reference),
                "data_sha256": art.metrics["training_data_sha256"],
                "params": meta["params"],
                "metrics": {"auc": meta["auc"], "accuracy": meta["accuracy"]},
            },
        }
        print(f"registering {label} through the Airflow REST API ...")
        t0 = time.monotonic()
        since = datetime.now(UTC)
        created = _register(bin_dir, env, cfg.airflow_url, conf, name, meta["sha256"])
        stages.append({"stage": f"register {label}", "seconds": round(time.monotonic() - t0, 1)})
        if not created:
            print(f"{label} was already registered: no new regression run")
            continue
        print(f"waiting for regression_testing on {label} (scheduled by the registration Asset) ...")
        t0 = time.monotonic()
        run = client.wait_for_run_after("regression_testing", since, timeout=600)
        regression[label] = {"run_id": run["dag_run_id"], "state": run["state"]}
        stages.append({"stage": f"regression {label}", "seconds": round(time.monotonic() - t0, 1)})
        if run["state"] != "success":
            raise DemoFailed(f"regression_testing of {label} ended {run['state']} (run {run['dag_run_id']})")

    described = reg.describe(name)
    by_sha = {v["sha256"]: v["version"] for v in described["versions"]}
    v1 = by_sha.get(art.metrics["models"]["v1"]["sha256"])
    v2 = by_sha.get(art.metrics["models"]["v2"]["sha256"])
    aliases = described["aliases"]
    if v1 is None or aliases.get("champion") != v1:
        raise DemoFailed(f"expected v1 (version {v1}) to be champion, aliases are {aliases}")
    if v2 is None or aliases.get("challenger") != v2:
        raise DemoFailed(f"expected v2 (version {v2}) to be challenger, aliases are {aliases}")
    client_ml = reg.get_client()
    for label, version in (("v1", v1), ("v2", v2)):
        tags = client_ml.get_model_version(name, str(version)).tags
        regression.setdefault(label, {})["verdict"] = tags.get("modelgate.regression.verdict")
    if regression["v2"].get("verdict") != "pass":
        raise DemoFailed(f"expected v2 to pass regression, got {regression['v2']}")
    verified = audit.verify()
    summary = {
        "scenario": scenario,
        "ok": verified.ok,
        "airflow_ui": cfg.airflow_url,
        "airflow_user": "admin",
        "airflow_password_file": str(cfg.home / "secrets" / "airflow-admin-password"),
        "mlflow_ui": cfg.mlflow_url,
        "model": name,
        "versions": described["versions"],
        "aliases": aliases,
        "holdout_auc": {"v1": art.metrics["models"]["v1"]["auc"], "v2": art.metrics["models"]["v2"]["auc"]},
        "regression": regression,
        "audit": {"ok": verified.ok, "records": verified.records, "problems": verified.problems},
        "stages": stages,
        "seconds": round(time.monotonic() - started, 1),
    }
    out = demo_dir / "summary.json"
    text = json.dumps(summary, indent=2) + "\n"
    atomic_write(out, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return summary


def _print_summary(s: dict[str, Any]) -> None:
    print("\n=== modelgate demo summary ===")
    print(f"Airflow UI : {s['airflow_ui']}  (user admin, password in {s['airflow_password_file']})")
    print(f"MLflow UI  : {s['mlflow_ui']}")
    for v in s["versions"]:
        print(f"  {s['model']} version {v['version']}  semver {v['semver']}  sha256 {v['sha256'][:12]}…")
    print(f"aliases    : {s['aliases']}")
    print(f"holdout AUC: v1 {s['holdout_auc']['v1']:.4f}  v2 {s['holdout_auc']['v2']:.4f}")
    print(
        f"regression : v1 {s['regression']['v1'].get('verdict')}  v2 {s['regression']['v2'].get('verdict')}"
    )
    a = s["audit"]
    print(f"audit log  : {'OK' if a['ok'] else 'TAMPERED'} ({a['records']} records)")
    print(f"took {s['seconds']}s; the stack stays up (make down stops it)")


def main(argv: list[str] | None = None) -> int:
    """CLI entry point of ``make demo``."""
    parser = argparse.ArgumentParser(prog="python -m include.demo.run")
    parser.add_argument("--scenario", default="good", help=f"one of {SCENARIOS}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.scenario not in SCENARIOS:
        print(
            f"error: scenario {args.scenario!r} is not available yet; available: {list(SCENARIOS)}",
            file=sys.stderr,
        )
        return 2
    try:
        summary = run(args.scenario)
    except DemoFailed as e:
        print(f"demo failed: {e}", file=sys.stderr)
        return 1
    _print_summary(summary)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
