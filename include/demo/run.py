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


def _register(bin_dir: Path, env: dict[str, str], airflow_url: str, conf: dict[str, Any]) -> None:
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
    from include.registry import audit
    from include.registry import registry as reg
    from include.stack import StackConfig, stack_env

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
        _register(bin_dir, env, cfg.airflow_url, conf)
        stages.append({"stage": f"register {label}", "seconds": round(time.monotonic() - t0, 1)})

    described = reg.describe(name)
    by_sha = {v["sha256"]: v["version"] for v in described["versions"]}
    v1 = by_sha.get(art.metrics["models"]["v1"]["sha256"])
    v2 = by_sha.get(art.metrics["models"]["v2"]["sha256"])
    aliases = described["aliases"]
    if v1 is None or aliases.get("champion") != v1:
        raise DemoFailed(f"expected v1 (version {v1}) to be champion, aliases are {aliases}")
    if v2 is None or aliases.get("challenger") != v2:
        raise DemoFailed(f"expected v2 (version {v2}) to be challenger, aliases are {aliases}")
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
