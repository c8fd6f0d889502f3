"""The steps of the ``regression_testing`` DAG, typed: each takes and returns frozen records.

resolve → first version? → contract → inputs → score → compare → decide. The records (:mod:`include.xcom`)
are what the DAG's tasks hand each other through XCom: the target (names, versions, manifests, policy),
check results, the MLflow run id and counts; the data itself (synthetic inputs, scores, suite results,
the report) stays in the MLflow run of the test (:mod:`include.regression.pipeline` does the work).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from include.regression import pipeline, runstore, target, verdict
from include.regression.results import CheckResult
from include.xcom import XcomRecord

__all__ = [
    "Check",
    "Compared",
    "Decision",
    "Prepared",
    "Scored",
    "Target",
    "check_contract",
    "compare",
    "decide",
    "prepare_inputs",
    "record_first_version",
    "resolve",
    "score",
]


@dataclass(frozen=True)
class Target(XcomRecord):
    """The version under test, the champion it is compared with (``None`` for a first version), the policy."""

    model_name: str
    version: str
    champion_version: str | None
    first_version: bool
    challenger: dict[str, Any]
    champion: dict[str, Any] | None
    policy: dict[str, Any]


@dataclass(frozen=True)
class Check(XcomRecord):
    """One check's outcome (:class:`~include.regression.results.CheckResult` as a record)."""

    name: str
    status: str
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, result: dict[str, Any]) -> Check:
        """Return the record of a check result's dict form (``CheckResult.to_dict()``)."""
        return cls.from_xcom(result)

    def result(self) -> CheckResult:
        """Return the domain object."""
        return CheckResult.from_dict(self.to_xcom())


@dataclass(frozen=True)
class Prepared(XcomRecord):
    """The test's MLflow run (holds inputs and scores), the input check, row count and spec source."""

    mlflow_run_id: str
    inputs: Check
    rows: int
    spec_source: str | None


@dataclass(frozen=True)
class Scored(XcomRecord):
    """The challenger's output check and determinism check."""

    outputs: Check
    determinism: Check


@dataclass(frozen=True)
class Compared(XcomRecord):
    """Challenger against champion: agreement, score distribution, quality on the holdout, latency."""

    agreement: Check
    distribution: Check
    quality: Check
    latency: Check


@dataclass(frozen=True)
class Decision(XcomRecord):
    """The verdict with its reasons, and where the report is."""

    verdict: str
    reasons: list[str]
    model_name: str
    version: str
    mlflow_run_id: str
    report: str

    @property
    def passed(self) -> bool:
        """Whether the challenger may go on to the canary."""
        return self.verdict == "pass"

    def failure(self) -> str:
        """Return the one-line message a failed run ends with."""
        return (
            f"regression verdict {self.verdict} for models:/{self.model_name}/{self.version}: "
            + "; ".join(self.reasons)
            + f" (report: {self.report})"
        )


def resolve(conf: dict[str, Any], asset_extras: list[dict[str, Any]], tracking_uri: str) -> Target:
    """Return the version to test (conf wins over the triggering asset events) and its champion.

    ``tracking_uri`` is the MLflow server (the DAG's connection); every step that talks to MLflow takes it.

    Raises:
        RegressionError: nothing to test, or the version or its manifest cannot be read.
    """
    return Target.from_xcom(target.resolve_target(conf, asset_extras, tracking_uri))


def record_first_version(t: Target, actor: str, run_id: str, tracking_uri: str) -> bool:
    """Record verdict ``pass`` for a version with no champion; return whether the comparison goes on."""
    return verdict.record_first_version(t.to_xcom(), actor, run_id, tracking_uri)


def check_contract(t: Target) -> Check:
    """Check the challenger's signature and semver against the champion's."""
    return Check.of(pipeline.check_contract(t.to_xcom()))


def prepare_inputs(t: Target, contract: Check, airflow_run_id: str, tracking_uri: str) -> Prepared:
    """Open the test's MLflow run (once per Airflow run), draw and validate the synthetic inputs."""
    run_id = runstore.start_run(t.to_xcom(), airflow_run_id, tracking_uri)
    prepared = pipeline.prepare_inputs(t.to_xcom(), contract.to_xcom(), run_id, tracking_uri)
    return Prepared.from_xcom({"mlflow_run_id": run_id, **prepared})


def score(t: Target, contract: Check, prepared: Prepared, tracking_uri: str) -> Scored:
    """Score the inputs with both models; check the challenger's outputs and its determinism."""
    run = prepared.mlflow_run_id
    out = pipeline.score(t.to_xcom(), contract.to_xcom(), prepared.to_xcom(), run, tracking_uri)
    return Scored.from_xcom(out)


def compare(t: Target, contract: Check, prepared: Prepared, scored: Scored, tracking_uri: str) -> Compared:
    """Compare the challenger with the champion (agreement, distribution, quality, latency)."""
    run = prepared.mlflow_run_id
    out = pipeline.compare(
        t.to_xcom(), contract.to_xcom(), prepared.to_xcom(), scored.to_xcom(), run, tracking_uri
    )
    return Compared.from_xcom(out)


def decide(
    t: Target,
    contract: Check,
    prepared: Prepared,
    scored: Scored,
    compared: Compared,
    actor: str,
    run_id: str,
    tracking_uri: str,
) -> Decision:
    """Combine every check into the verdict; write tags, report, metrics and the audit record."""
    checks = [prepared.inputs, contract, scored.outputs, scored.determinism, compared.agreement,
              compared.distribution, compared.quality, compared.latency]
    out = verdict.decide(t.to_xcom(), [c.to_xcom() for c in checks], prepared.mlflow_run_id, actor, run_id,
                         tracking_uri)
    return Decision.from_xcom(out)
