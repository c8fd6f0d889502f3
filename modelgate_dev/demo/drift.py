"""Demo stage: ``drift_monitoring`` on the demo model's champion over the demo's own traffic."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def drift_stage(demo: Any, started: datetime) -> dict[str, Any]:
    """Trigger ``drift_monitoring`` for the demo model over ``[started, now)`` and fetch its report.

    The champion's sampled inputs (``ROUTER_EVENTS_INPUT_SAMPLE``) are compared with its registered
    feature spec and its scores with the window before (empty on a fresh stack: the score is then
    listed as no data). The report is also copied to ``<home>/demo/drift_report.html``.

    Args:
        demo: the demo run (``modelgate_dev.demo.run._Demo``: client, cfg, name, wait, demo_dir).
        started: when the demo started.

    Returns:
        ``verdict``, ``drifted``, ``no_data``, ``run`` (Airflow), ``mlflow_run``, ``report_url``, ``report_file``.

    Raises:
        DemoFailed: the DAG run did not succeed or left no verdict.
    """
    from include.drift import monitor
    from include.registry import registry as reg
    from modelgate_dev.cli import CliError
    from modelgate_dev.demo.run import DemoFailed

    t0 = time.monotonic()
    end = datetime.now(UTC)
    conf = {
        "models": [demo.name],
        "events_root": str(demo.cfg.home / "events"),
        "end": end.isoformat(),
        "window_hours": max((end - started).total_seconds() / 3600, 0.05),
    }
    print("drift_monitoring: the champion's sampled inputs against its feature spec ...")  # noqa: T201
    since = datetime.now(UTC)
    try:
        demo.client.trigger("drift_monitoring", conf)
    except CliError as e:
        raise DemoFailed(
            f"cannot start drift_monitoring ({e}); a stack started before the DAG existed must be restarted "
            "(make down)"
        ) from e
    run = demo.wait("drift_monitoring", demo.name, since, 300)
    if run["state"] != "success":
        raise DemoFailed(f"drift_monitoring ended {run['state']}")
    client = reg.get_client()
    champion = reg.get_alias_version(demo.name, "champion")
    tags = client.get_model_version(demo.name, str(champion)).tags
    run_id = tags.get(monitor.TAG_RUN_ID)
    if not run_id:
        raise DemoFailed(f"drift_monitoring left no {monitor.TAG_RUN_ID} tag on version {champion}")
    results = json.loads(
        Path(client.download_artifacts(run_id, "results.json", str(demo.demo_dir))).read_text()
    )
    report = client.download_artifacts(run_id, "report.html", str(demo.demo_dir))
    target = demo.demo_dir / "drift_report.html"
    target.write_text(Path(report).read_text())
    experiment = client.get_run(run_id).info.experiment_id
    demo._timed("drift_monitoring", t0)
    return {
        "verdict": tags.get(monitor.TAG_VERDICT),
        "drifted": results.get("drifted", []),
        "no_data": results.get("no_data", []),
        "n_sampled_inputs": results.get("n_current_inputs"),
        "run": {"run_id": run["dag_run_id"], "state": run["state"]},
        "mlflow_run": run_id,
        "report_url": f"{demo.cfg.mlflow_url}/#/experiments/{experiment}/runs/{run_id}/artifacts",
        "report_file": str(target),
    }
