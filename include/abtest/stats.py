"""JSON entry point for one comparison or one SRM check: ``python -m include.abtest.stats``.

Reads one JSON object on stdin and writes one JSON object on stdout.

Comparison input::

    {"metric_type": "mean" | "proportion" | "ratio",
     "difference": "absolute" | "relative",            (default absolute)
     "alpha": 0.05,                                    (default 0.05)
     "alternative": "two-sided" | "greater" | "less",  (default two-sided)
     "control": {...}, "treatment": {...},
     "sequential": null | {"tuning_parameter": 5000},
     "cuped": null | {"control": {"pre_sum", "pre_sum_squares", "cross_sum"}, "treatment": {...}},
     "prior": null | {"mean": 0, "variance": 1}}        (optional proper prior, Bayesian view)

An arm is ``{"n", "sum", "sum_squares"}`` for a mean, ``{"n", "sum"}`` for a proportion
(``sum`` = successes) and ``{"n", "num_sum", "num_sum_squares", "den_sum",
"den_sum_squares", "cross_sum"}`` for a ratio. Output: ``control_mean``,
``treatment_mean``, ``effect``, ``ci`` ([low, high], an infinite bound as "inf"/"-inf"),
``se``, ``p_value``, ``chance_to_win``, ``expected_loss``, ``df``, ``cuped`` and ``error``.

SRM input ``{"srm": {"counts": [...], "weights": [...]}}`` gives ``{"srm_p_value": ...,
"srm_statistic": ..., "expected": [...], "mismatch": bool, "error": null}``.

Exit status: 0 computed; 1 the data allow no test (zero variance, control mean zero for a
relative effect; ``error`` says which); 2 bad input (bad JSON, unknown field, negative n,
a variance below zero, n too small); 3 an unexpected internal error. No traceback is ever
written.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from include.abtest.bayesian import NormalPrior
from include.abtest.compare import MIN_UNITS_PER_ARM, SequentialConfig, compare
from include.abtest.errors import AbTestError
from include.abtest.sequential import DEFAULT_TUNING_PARAMETER
from include.abtest.srm import srm_test
from include.abtest.sufficient import ArmStats, CupedStats, MeanStats, ProportionStats, RatioStats

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_NO_TEST = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3

Count = Annotated[int, Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class MeanArm(_Strict):
    """A mean-metric arm."""

    n: Count
    sum: float
    sum_squares: float


class ProportionArm(_Strict):
    """A proportion arm; ``sum`` is the number of successes."""

    n: Count
    sum: Count


class RatioArm(_Strict):
    """A ratio-metric arm (per-unit numerator Y and denominator X)."""

    n: Count
    num_sum: float
    num_sum_squares: float
    den_sum: float
    den_sum_squares: float
    cross_sum: float


class CupedArm(_Strict):
    """The pre-period covariate of one arm."""

    pre_sum: float
    pre_sum_squares: float
    cross_sum: float


class CupedInput(_Strict):
    """CUPED covariates of both arms."""

    control: CupedArm
    treatment: CupedArm


class SequentialInput(_Strict):
    """Sequential testing settings."""

    tuning_parameter: float = Field(DEFAULT_TUNING_PARAMETER, gt=0)


class PriorInput(_Strict):
    """A proper normal prior on the effect."""

    mean: float = 0.0
    variance: float = Field(gt=0)


class ComparisonRequest(_Strict):
    """One comparison of a treatment with its control."""

    metric_type: Literal["mean", "proportion", "ratio"]
    difference: Literal["absolute", "relative"] = "absolute"
    alpha: float = Field(0.05, gt=0, lt=1)
    alternative: Literal["two-sided", "greater", "less"] = "two-sided"
    control: dict[str, Any]
    treatment: dict[str, Any]
    sequential: SequentialInput | None = None
    cuped: CupedInput | None = None
    prior: PriorInput | None = None


class SrmInput(_Strict):
    """Observed units and configured weights per variant."""

    counts: list[Count] = Field(min_length=2)
    weights: list[Annotated[float, Field(gt=0)]] = Field(min_length=2)


class SrmRequest(_Strict):
    """A sample-ratio-mismatch check alone."""

    srm: SrmInput


class BadInput(AbTestError):
    """Raised when the JSON input of the entry point is malformed; the message names the field."""

    code = "bad_input"


_ARM_MODELS: dict[str, type[_Strict]] = {"mean": MeanArm, "proportion": ProportionArm, "ratio": RatioArm}


def _describe(e: ValidationError, prefix: str = "") -> str:
    parts = []
    for err in e.errors():
        loc = ".".join(str(x) for x in (*([prefix] if prefix else []), *err["loc"])) or "input"
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def _arm(req: ComparisonRequest, arm: str) -> ArmStats:
    raw = req.control if arm == "control" else req.treatment
    try:
        model = _ARM_MODELS[req.metric_type].model_validate(raw)
    except ValidationError as e:
        raise BadInput(_describe(e, arm)) from e
    n = int(model.n)  # type: ignore[attr-defined]
    if n < MIN_UNITS_PER_ARM:
        raise BadInput(
            f"{arm}.n: n too small, at least {MIN_UNITS_PER_ARM} units per arm are needed, got {n}"
        )
    try:
        if isinstance(model, MeanArm):
            cov = None if req.cuped is None else getattr(req.cuped, arm)
            if cov is None:
                return MeanStats(n=n, sum=model.sum, sum_squares=model.sum_squares)
            return CupedStats(
                n, model.sum, model.sum_squares, cov.pre_sum, cov.pre_sum_squares, cov.cross_sum
            )
        if isinstance(model, ProportionArm):
            cov = None if req.cuped is None else getattr(req.cuped, arm)
            if cov is None:
                return ProportionStats(n=n, successes=model.sum)
            # A 0/1 outcome has sum of squares equal to its sum.
            return CupedStats(n, model.sum, model.sum, cov.pre_sum, cov.pre_sum_squares, cov.cross_sum)
        assert isinstance(model, RatioArm)
        if req.cuped is not None:
            raise BadInput("cuped: CUPED is supported for mean and proportion metrics, not ratio")
        return RatioStats(
            n, model.num_sum, model.num_sum_squares, model.den_sum, model.den_sum_squares, model.cross_sum
        )
    except BadInput:
        raise
    except AbTestError as e:
        raise BadInput(f"{arm}: {e.message}") from e


def _run_comparison(obj: dict[str, Any]) -> tuple[dict[str, Any], int]:
    try:
        req = ComparisonRequest.model_validate(obj)
    except ValidationError as e:
        raise BadInput(_describe(e)) from e
    control = _arm(req, "control")
    treatment = _arm(req, "treatment")
    sequential = None if req.sequential is None else SequentialConfig(req.sequential.tuning_parameter)
    prior = None if req.prior is None else NormalPrior(req.prior.mean, req.prior.variance)
    result = compare(
        control,
        treatment,
        difference=req.difference,
        alpha=req.alpha,
        alternative=req.alternative,
        sequential=sequential,
        prior=prior,
    )
    return result.to_dict(), EXIT_OK if result.error is None else EXIT_NO_TEST


def _run_srm(obj: dict[str, Any]) -> tuple[dict[str, Any], int]:
    try:
        req = SrmRequest.model_validate(obj)
    except ValidationError as e:
        raise BadInput(_describe(e)) from e
    res = srm_test(req.srm.counts, req.srm.weights)
    return {
        "srm_p_value": res.p_value,
        "srm_statistic": res.statistic,
        "expected": list(res.expected),
        "mismatch": res.mismatch,
        "error": None,
    }, EXIT_OK


def run(text: str) -> tuple[dict[str, Any], int]:
    """Answer one JSON request.

    Args:
        text: the JSON document read from stdin.

    Returns:
        ``(response, exit_status)``; a response with ``error`` set when the input is bad or
        the data allow no test.
    """
    try:
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise BadInput(f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from e
        if not isinstance(obj, dict):
            raise BadInput(f"input must be a JSON object, got {type(obj).__name__}")
        if "srm" in obj:
            return _run_srm(obj)
        return _run_comparison(obj)
    except AbTestError as e:
        return {"error": e.message}, EXIT_BAD_INPUT
    except Exception as e:  # the CLI boundary: never let a traceback out
        log.debug("internal error", exc_info=True)
        return {"error": f"internal error: {type(e).__name__}: {e}"}, EXIT_INTERNAL


def main(argv: list[str] | None = None) -> int:
    """Read one JSON request on stdin, write the JSON response on stdout.

    Args:
        argv: command-line arguments (none are accepted besides ``-h``/``--help``).

    Returns:
        The exit status (0 ok, 1 no test possible, 2 bad input, 3 internal error).
    """
    args = sys.argv[1:] if argv is None else argv
    if args:
        if args[0] in ("-h", "--help"):
            sys.stdout.write((__doc__ or "") + "\n")
            return EXIT_OK
        sys.stdout.write(
            json.dumps({"error": f"no arguments are accepted, got {args!r}; JSON goes on stdin"}) + "\n"
        )
        return EXIT_BAD_INPUT
    response, status = run(sys.stdin.read())
    sys.stdout.write(json.dumps(response, allow_nan=False) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
