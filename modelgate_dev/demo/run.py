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
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from include.synthetic.files import atomic_write
from modelgate_dev.settings import get_dev_settings

log = logging.getLogger(__name__)

SCENARIOS = ("good", "bad-canary")
REPO = Path(__file__).resolve().parents[2]


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
    from modelgate_dev.demo.train import DemoArtifacts, train_demo_models

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


def _ensure_stack(cfg: Any, policy: str) -> dict[str, str]:
    """Start the stack with the demo's canary policy (restart it when it runs with another one)."""
    from modelgate_dev.stack import down, running_pid, stack_env, started_with

    os.environ["MODELGATE_CANARY_POLICY"] = policy
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("ROUTER_EVENTS_INPUT_SAMPLE", "0.5")  # the drift stage compares sampled inputs
    if running_pid(cfg) is not None and started_with(cfg).get("MODELGATE_CANARY_POLICY") != policy:
        print(f"the running stack has another canary policy; restarting it with {policy}")
        down(cfg)
    env = {**os.environ, **stack_env(cfg)}
    if subprocess.run([sys.executable, "-m", "modelgate_dev.stack", "up"], env=env).returncode != 0:
        raise DemoFailed("the local stack did not come up (see the message above)")
    os.environ.update(
        {k: env[k] for k in ("MODELGATE_HOME", "MODELGATE_TRACKING_URI", "MLFLOW_TRACKING_URI")}
    )
    # the production profile's audit/control database (PostgreSQL): the demo's own audit records and
    # its final verify go where the stack's do, not to a SQLite file under home
    if "MODELGATE_AUDIT_DB_URL" in env:
        os.environ["MODELGATE_AUDIT_DB_URL"] = env["MODELGATE_AUDIT_DB_URL"]
    # MLflow runs with basic-auth: the demo's own registry reads and its A/B analysis run write as the
    # pipeline's writer identity (password file under the stack's secrets; never in the environment)
    from include.registry.credentials import role_identity, use_identity

    use_identity(role_identity("airflow"))
    return env


def _to_inbox(path: Path) -> Path:
    """Copy a file into ``<home>/inbox/demo/`` (registration reads only from allowed roots)."""
    from include.registry.sources import inbox

    dest = inbox() / "demo" / path.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, dest)
    return dest


def _conf(name: str, path: Path, art: Any, label: str) -> dict[str, Any]:
    meta = art.metrics["models"][label]
    return {
        "model_name": name,
        "artifact_uri": str(_to_inbox(path)),
        "feature_spec_uri": str(_to_inbox(Path(art.feature_spec))),
        "lineage": {
            "data_uri": str(art.reference),
            "data_sha256": art.metrics["training_data_sha256"],
            "params": meta["params"],
            "metrics": {"auc": meta["auc"], "accuracy": meta["accuracy"]},
        },
    }


def _expect(
    scenario: str,
    name: str,
    label: str,
    cand: str,
    champion: str,
    regression: dict[str, Any],
    outcome: dict[str, Any],
) -> None:
    """Raise DemoFailed unless the candidate's regression and canary ended as the scenario says."""
    from include.canary import controller as cc

    if regression["verdict"] != "pass":
        raise DemoFailed(f"expected {label} to pass regression, got {regression}")
    expected = cc.PROMOTED if scenario == "good" else cc.ROLLED_BACK
    if outcome["verdict"] != expected:
        raise DemoFailed(
            f"expected the canary of {label} (version {cand}) to end {expected}, got {outcome['verdict']}: "
            f"{outcome['reason']}"
        )
    want_champion = cand if scenario == "good" else champion
    if str(outcome["champion"]) != want_champion:
        raise DemoFailed(f"expected version {want_champion} to be champion, got {outcome['champion']}")
    served = [r for r in outcome["routes"] if r[2] > 0]
    if served != [r for r in outcome["routes"] if r[1] == f"models:/{name}/{want_champion}"]:
        raise DemoFailed(f"expected the champion alone to get traffic, routes are {outcome['routes']}")
    from modelgate_dev.canary.demo import replicas_agree

    disagreement = replicas_agree(outcome.get("replicas") or [])
    if disagreement:
        raise DemoFailed(f"expected every router replica on one generation, champion at 10000 bp: {disagreement}")


class _Demo:
    """One demo run on the local stack: the clients, the stage timings and the approvals given."""

    def __init__(self, scenario: str) -> None:
        from include.routing.client import RouterClient
        from modelgate_dev.cli import AirflowClient
        from modelgate_dev.stack import StackConfig, admin_password, router_token

        self.scenario = scenario
        self.started = time.monotonic()
        self.cfg = StackConfig.from_env()
        self.bin_dir = Path(sys.executable).parent
        self.env = _ensure_stack(self.cfg, str(REPO / "policies" / "canary_demo.yaml"))
        self.demo_dir = self.cfg.home / "demo"
        self.art = _demo_models(self.demo_dir / "models")
        self.name = get_dev_settings().demo_model
        self.stages: list[dict[str, Any]] = []
        self.approvals: list[dict[str, Any]] = []
        self.client = AirflowClient(self.cfg.airflow_url, "admin", admin_password(self.cfg))
        for dag_id in ("regression_testing", "canary_promotion"):  # both run on Asset events
            self.client.unpause(dag_id)
        self.router_url = f"http://127.0.0.1:{self.cfg.router_port}"
        self.router = RouterClient(
            self.router_url, router_token(self.cfg), actor="demo", replicas=self.cfg.router_urls
        )

    def _timed(self, stage: str, t0: float) -> None:
        self.stages.append({"stage": stage, "seconds": round(time.monotonic() - t0, 1)})

    def register(self, label: str, path: Path) -> tuple[str, bool, datetime]:
        """Register ``path`` through the REST API; return (version, newly created, start time)."""
        from include.registry import registry as reg

        print(f"registering {label} ({path.name}) through the Airflow REST API ...")
        t0 = time.monotonic()
        since = datetime.now(UTC)
        from include.registry.artifact import sha256_file

        sha = sha256_file(path)
        conf = _conf(self.name, path, self.art, label[:2])
        created = _register(self.bin_dir, self.env, self.cfg.airflow_url, conf, self.name, sha)
        self._timed(f"register {label}", t0)
        version = reg.find_by_source_sha(reg.get_client(), self.name, sha)
        if version is None:
            raise DemoFailed(f"{label} is not in the registry after its registration run")
        return str(version.version), created, since

    def wait(self, dag_id: str, label: str, since: datetime, timeout: float) -> dict[str, Any]:
        """Wait for the run of ``dag_id`` started after ``since``, answering its approval requests."""
        from modelgate_dev.cli import CliError

        print(f"waiting for {dag_id} on {label} ...")
        t0 = time.monotonic()
        while True:
            for d in self.client.pending_approvals(dag_id):
                ti = d["task_instance"]
                print(f"  {ti['task_id']}: {d.get('subject')} -> Approve through the REST API")
                self.client.answer(d, "Approve", f"demo: {label} is the better model by its labelled holdout")
                self.approvals.append(
                    {
                        "dag_id": dag_id,
                        "task_id": ti["task_id"],
                        "run_id": ti["dag_run_id"],
                        "answer": "Approve",
                    }
                )
            try:
                run = self.client.wait_for_run_after(dag_id, since, timeout=3, poll=1)
            except CliError:
                if time.monotonic() - t0 > timeout:
                    raise DemoFailed(f"{dag_id} on {label} did not end within {timeout:.0f}s") from None
                continue
            self._timed(f"{dag_id} {label}", t0)
            print(f"  {dag_id} run {run['dag_run_id']}: {run['state']}")
            return run

    def champion_stage(self) -> str:
        """v1: the first version becomes champion after a (trivial) regression run; routes to it."""
        from include.canary import controller as cc
        from include.registry import registry as reg

        _, created, since = self.register("v1", self.art.model("v1"))
        if created and self.wait("regression_testing", "v1", since, 300)["state"] != "success":
            raise DemoFailed("regression_testing of v1 failed")
        champion = reg.get_alias_version(self.name, "champion")
        if champion is None:
            raise DemoFailed(f"{self.name} has no champion after registering v1")
        if self.router.get_routes(self.name) is None:
            print(f"routing {self.name} to its champion, version {champion}")
            routes = cc.desired_routes(None, self.name, str(champion), None, 0, None)
            answer = self.router.put_routes(self.name, routes, "demo")
            # traffic goes to every replica: start it only once each serves the model (no 404 meanwhile)
            self.router.wait_converged(answer.get("generation"))
        return str(champion)

    def candidate(self) -> tuple[str, Path]:
        """The candidate of the scenario: v2, or a slow copy of v2 for ``bad-canary``."""
        if self.scenario == "good":
            return "v2", self.art.model("v2")
        from modelgate_dev.canary.faulty import make_slow_copy

        path = self.demo_dir / "models" / "churn-v2-slow.onnx"
        print("writing v2-slow: v2's predictions, about 10 ms more per call ...")
        return "v2-slow", make_slow_copy(self.art.model("v2"), path, target_ms=10.0)

    def canary_stage(self, label: str, path: Path) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """Register the candidate under live traffic; regression and canary follow on Asset events."""
        from include.canary import controller as cc
        from include.registry import registry as reg
        from include.synthetic.spec import FeatureSpec
        from modelgate_dev.canary.demo import canary_outcome, replica_views
        from modelgate_dev.traffic.generator import TrafficConfig, TrafficThread

        traffic = TrafficThread(
            TrafficConfig(
                self.router_url,
                self.name,
                rate=40.0,
                duration_s=540.0,
                n_units=2000,
                replica_urls=tuple(self.cfg.router_urls[1:]),
            ),
            FeatureSpec.from_json(self.art.feature_spec),
        ).start()
        regression_run = canary_run = None
        try:
            cand, created, since = self.register(label, path)
            if created:
                regression_run = self.wait("regression_testing", label, since, 300)
                if regression_run["state"] != "success":
                    raise DemoFailed(f"regression_testing of {label} ended {regression_run['state']}")
                canary_run = self.wait("canary_promotion", label, since, 480)
            elif cc.version_tags(self.name, cand).get(cc.TAG_VERDICT) is None:
                print(f"{label} was registered before but never went through a canary: starting one")
                since = datetime.now(UTC)
                self.client.trigger(
                    "canary_promotion", {"model_name": self.name, "version": cand}
                )
                canary_run = self.wait("canary_promotion", label, since, 480)
            else:
                print(f"{label} was registered before: its regression and canary already ran")
        finally:
            report = traffic.stop()
        outcome = canary_outcome(self.name, cand, self.router)
        outcome["replicas"] = replica_views(self.cfg.router_urls, self.name)
        outcome["run"] = canary_run and {"run_id": canary_run["dag_run_id"], "state": canary_run["state"]}
        outcome["traffic"] = report.to_dict()
        outcome["approvals"] = [a for a in self.approvals if a["dag_id"] == "canary_promotion"]
        tags = reg.get_client().get_model_version(self.name, cand).tags
        regression = {
            "version": cand,
            "verdict": tags.get("modelgate.regression.verdict"),
            "run": regression_run
            and {"run_id": regression_run["dag_run_id"], "state": regression_run["state"]},
        }
        return cand, regression, outcome

    def summary(self, label: str, cand: str, regression: dict[str, Any], canary: dict[str, Any],
                ab: dict[str, Any] | None, drift: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
        """Write ``<home>/demo/summary.json`` and return it."""
        from include.registry import audit
        from include.registry import registry as reg
        from modelgate_dev.production.readback import profile_summary

        described = reg.describe(self.name)
        verified = audit.verify()
        metrics = self.art.metrics["models"]
        summary = {
            "scenario": self.scenario,
            "ok": verified.ok,
            "airflow_ui": self.cfg.airflow_url,
            "airflow_user": "admin",
            "airflow_password_file": str(self.cfg.home / "secrets" / "airflow-admin-password"),
            "mlflow_ui": self.cfg.mlflow_url,
            "model": self.name,
            "candidate": {"label": label, "version": cand},
            "versions": described["versions"],
            "aliases": described["aliases"],
            "holdout_auc": {"v1": metrics["v1"]["auc"], "v2": metrics["v2"]["auc"]},
            "regression": regression,
            "canary": canary,
            "ab": ab,
            "drift": drift,
            "audit": {"ok": verified.ok, "records": verified.records, "problems": verified.problems},
            "profile": profile_summary(self.cfg, self.env, self.scenario),
            "stages": self.stages,
            "seconds": round(time.monotonic() - self.started, 1),
        }
        text = json.dumps(summary, indent=2, default=str) + "\n"
        atomic_write(self.demo_dir / "summary.json", lambda tmp: tmp.write_text(text, encoding="utf-8"))
        return summary


def run(scenario: str) -> dict[str, Any]:
    """Run the demo scenario and return the summary.

    ``good``: v1 registered (first version, champion), v2 registered, regression v2 vs v1 passes,
    the canary moves live traffic to v2 in the demo policy's stages and promotes it (marginal
    stages are approved through the REST API), then an A/B experiment v1 against v2 runs through
    the router, ``ab_analysis`` decides, the ship is approved through the REST API and v2 is
    confirmed champion. ``bad-canary``: a copy of v2 that predicts the same but takes several ms
    more per call passes regression (its offline latency stays inside the budget) and is cut by
    the router's guard and rolled back by the canary under live traffic; the champion keeps 100 %.

    Raises:
        DemoFailed: a stage did not end as expected.
    """
    started = datetime.now(UTC)
    demo = _Demo(scenario)
    champion = demo.champion_stage()
    label, path = demo.candidate()
    cand, regression, canary = demo.canary_stage(label, path)
    _expect(scenario, demo.name, label, cand, champion, regression, canary)
    ab = _ab_stage(demo, champion, cand) if scenario == "good" else None
    from modelgate_dev.demo.drift import drift_stage

    return demo.summary(label, cand, regression, canary, ab, drift_stage(demo, started))


def _ab_stage(demo: _Demo, control: str, treatment: str) -> dict[str, Any]:
    """A/B v1 (control) against v2 through the router, analysed by ``ab_analysis``, ship approved over REST."""
    from include.registry import registry as reg
    from modelgate_dev.abtest.demo import prepare_ab_experiment, read_results

    t0 = time.monotonic()
    routes = demo.router.get_routes(demo.name) or {}
    routes["variants"] = [
        {"name": "v1", "uri": f"models:/{demo.name}/{control}", "weight_bp": 5000},
        {"name": "v2", "uri": f"models:/{demo.name}/{treatment}", "weight_bp": 5000},
    ]
    routes["champion"] = "v2"
    routes.pop("guard", None)
    demo.router.put_routes(demo.name, routes, "demo-ab")
    print("A/B: v1 against v2 at 50/50 through the router (simulated units; v2 converts 15 % better) ...")
    exp_id, conf = prepare_ab_experiment(
        demo.router_url, demo.name, demo.cfg.home / "events", demo.demo_dir / "ab",
        control=("v1", control), treatment=("v2", treatment), lift=0.15, n_units=4000,
        feature_spec=str(demo.art.feature_spec), wait_seconds=120,
    )  # fmt: skip
    demo._timed("A/B traffic", t0)
    since = datetime.now(UTC)
    demo.client.unpause("ab_analysis")
    run_id = demo.client.trigger("ab_analysis", {**conf, "experiments": [exp_id]})
    run = demo.wait("ab_analysis", "v2", since, 300)
    summary = demo.client.xcom("ab_analysis", run_id, "analyse", map_index=0)
    result = read_results(summary, demo.demo_dir / "ab", demo.cfg.mlflow_url)
    result.update(
        true_lift=0.15,
        run={"run_id": run["dag_run_id"], "state": run["state"]},
        approvals=[a for a in demo.approvals if a["dag_id"] == "ab_analysis"],
        champion=reg.get_alias_version(demo.name, "champion"),
        routes=[
            (v["name"], v["uri"], v["weight_bp"])
            for v in (demo.router.get_routes(demo.name) or {})["variants"]
        ],
    )
    if run["state"] != "success" or result["decision"] != "ship" or not result["approvals"]:
        raise DemoFailed(f"expected ab_analysis to ship v2 after an approval, got {result}")
    if str(result["champion"]) != treatment:
        raise DemoFailed(
            f"expected version {treatment} champion after the A/B ship, got {result['champion']}"
        )
    return result


def _print_summary(s: dict[str, Any]) -> None:
    print(f"\n=== modelgate demo summary ({s['scenario']}) ===")
    print(f"Airflow UI : {s['airflow_ui']}  (user admin, password in {s['airflow_password_file']})")
    print(f"MLflow UI  : {s['mlflow_ui']}")
    for v in s["versions"]:
        print(f"  {s['model']} version {v['version']}  semver {v['semver']}  sha256 {v['sha256'][:12]}…")
    print(f"aliases    : {s['aliases']}")
    print(f"holdout AUC: v1 {s['holdout_auc']['v1']:.4f}  v2 {s['holdout_auc']['v2']:.4f}")
    c, r = s["candidate"], s["regression"]
    print(f"candidate  : {c['label']} = version {c['version']}; regression {r['verdict']}")
    k = s["canary"]
    print(f"canary     : {k['verdict']} ({k['reason']})")
    for st in k["stages"]:
        print(
            f"  stage {st.get('stage')}: {json.dumps({x: st[x] for x in st if x != 'stage'}, default=str)[:160]}"
        )
    if k["guard_events"]:
        print(f"  router guard cut the canary {len(k['guard_events'])} time(s): {k['guard_events'][0]}")
    t = k["traffic"]
    print(f"traffic    : {t.get('sent')} requests, {t.get('ok')} ok, by version {t.get('by_version')}")
    print(f"routes now : {k['routes']}")
    ab = s.get("ab")
    if ab:
        lo, hi = ab["ci"]
        print(
            f"A/B        : {ab['experiment']}: conversion effect {ab['effect']:+.3f} (95 % CI {lo:+.3f} .. {hi:+.3f}, "
            f"p = {ab['p_value']:.3g}; simulated true lift {ab['true_lift']:+.2f}) -> {ab['decision']}, "
            f"approved over REST, champion version {ab['champion']}"
        )
        print(f"A/B report : {ab['report_url']}")
    d = s.get("drift")
    if d:
        print(
            f"drift      : {d['verdict']} (drifted {d['drifted']}, no data {d['no_data']}, "
            f"{d['n_sampled_inputs']} sampled inputs); report {d['report_file']} and {d['report_url']}"
        )
    a = s["audit"]
    print(f"audit log  : {'OK' if a['ok'] else 'TAMPERED'} ({a['records']} records)")
    print(
        f"took {s['seconds']}s; summary in .local/demo/summary.json; the stack stays up (make down stops it)"
    )


def main(argv: list[str] | None = None) -> int:
    """CLI entry point of ``make demo``."""
    parser = argparse.ArgumentParser(prog="python -m modelgate_dev.demo.run")
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
    _screenshots(summary)
    return 0 if summary["ok"] else 1


def _screenshots(summary: dict[str, Any]) -> None:
    """The plugin page and the reports in headless Chromium; screenshots under $MODELGATE_HOME/screenshots.

    What the browser saw is added to ``summary.json`` under ``screenshots`` (``{file: {"ok", "errors",
    "missing"}}``, or ``{"error": ...}`` when none could be taken).
    """
    from modelgate_dev.browser import demo_screenshots

    home = Path(summary["airflow_password_file"]).parents[1]
    seen: dict[str, Any] = {}
    try:
        for c in demo_screenshots(summary, home, Path(summary["airflow_password_file"]).read_text().strip()):
            print(f"screenshot : {c.screenshot} {'OK' if c.ok else f'PROBLEMS {c.errors} missing {c.missing}'}")
            name = c.screenshot.name if c.screenshot else c.url
            seen[name] = {"ok": c.ok, "errors": c.errors, "missing": c.missing}
    except Exception as e:  # the screenshots are evidence, not a gate: say why they are missing
        print(f"screenshots: not taken ({type(e).__name__}: {e})")
        seen = {"error": f"{type(e).__name__}: {e}"}
    text = json.dumps({**summary, "screenshots": seen}, indent=2, default=str)
    atomic_write(home / "demo" / "summary.json", lambda tmp: tmp.write_text(text, encoding="utf-8"))


if __name__ == "__main__":
    sys.exit(main())
