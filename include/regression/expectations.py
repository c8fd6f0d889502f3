"""Great-expectations suites for the regression gate, kept as templates in ``validation/``.

A template is a GE suite document (``name``, ``meta``, ``expectations``) plus repeated sections
(``per_feature.numeric`` / ``per_feature.categorical`` for inputs, ``per_class`` for outputs).
:func:`input_suite` and :func:`output_suite` expand a template into a concrete suite: every string
that is exactly ``"{name}"`` becomes the value of ``name`` (a number, list or string). The concrete
suite is validated in an ephemeral GE context with a pandas datasource (nothing is written into
``validation/``); the result is also rendered as HTML with GE's own Data Docs page renderer.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.regression.errors import SuiteError

if TYPE_CHECKING:
    import pandas as pd

    from include.synthetic import FeatureSpec

log = logging.getLogger(__name__)

VALIDATION_DIR = Path(__file__).resolve().parents[2] / "validation"
_PLACEHOLDER = re.compile(r"^\{([a-z_]+)\}$")
_SUITE_KEYS = ("name", "meta", "expectations")


@dataclass(frozen=True)
class SuiteResult:
    """Outcome of one suite on one DataFrame.

    Attributes:
        suite: the suite's name.
        success: every expectation held.
        evaluated: number of expectations run.
        failed: ``"<expectation type>(<column>): <unexpected count> unexpected"`` per failure.
        result: GE's validation result as JSON data (kept as an artifact).
        html: the result rendered by GE's Data Docs page renderer (kept as an artifact).
    """

    suite: str
    success: bool
    evaluated: int
    failed: tuple[str, ...]
    result: dict[str, Any] = field(repr=False)
    html: str = field(default="", repr=False)


def load_template(name: str, directory: Path | None = None) -> dict[str, Any]:
    """Read a suite template from ``validation/``.

    Args:
        name: file name, e.g. ``regression_inputs.suite.json``.
        directory: where to look (default: the repository's ``validation/``).

    Returns:
        The template document.

    Raises:
        SuiteError: the file is missing, not JSON, or lacks ``name``/``expectations``.
    """
    path = (directory or VALIDATION_DIR) / name
    if "/" in name or "\\" in name:
        raise SuiteError(f"suite {name!r} must be a file name inside validation/")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise SuiteError(f"{path}: cannot read the suite template ({e.strerror or e})") from e
    except ValueError as e:
        raise SuiteError(f"{path}: not valid JSON ({e})") from e
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("name"), str)
        or not isinstance(doc.get("expectations"), list)
    ):
        raise SuiteError(f"{path}: a suite template needs a 'name' string and an 'expectations' list")
    return doc


def _fill(value: Any, values: dict[str, Any], where: str) -> Any:
    if isinstance(value, str):
        m = _PLACEHOLDER.match(value)
        if m is None:
            return value
        if m[1] not in values:
            raise SuiteError(f"{where}: unknown placeholder {value!r}; known: {sorted(values)}")
        return values[m[1]]
    if isinstance(value, list):
        return [_fill(v, values, where) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, values, where) for k, v in value.items()}
    return value


def _section(template: dict[str, Any], *path: str) -> list[dict[str, Any]]:
    node: Any = template
    for key in path:
        node = node.get(key, []) if isinstance(node, dict) else []
    if not isinstance(node, list):
        raise SuiteError(f"suite {template['name']}: {'.'.join(path)} must be a list of expectations")
    return node


def _suite(template: dict[str, Any], expectations: list[Any]) -> dict[str, Any]:
    return {"name": template["name"], "meta": template.get("meta", {}), "expectations": expectations}


def input_suite(
    template: dict[str, Any], spec: FeatureSpec, min_rows: int, range_tolerance: float = 0.0
) -> dict[str, Any]:
    """Expand the input template for a feature spec.

    Args:
        template: the document from :func:`load_template`.
        spec: the champion's feature spec.
        min_rows: rows the sample must have at least.
        range_tolerance: share of ``max - min`` allowed beyond the spec's range.

    Returns:
        A concrete GE suite document.

    Raises:
        SuiteError: a placeholder has no value or a section is malformed.
    """
    from include.synthetic.spec import CategoricalFeature

    name = template["name"]
    table = {"feature_names": spec.feature_names, "min_rows": int(min_rows)}
    expectations = list(_fill(template["expectations"], table, name))
    for feature in spec.features:
        null = feature.null_fraction
        mostly = 1.0 if null == 0 else max(0.0, 1.0 - 2.0 * null - 0.01)
        values: dict[str, Any] = {"column": feature.name, "not_null_mostly": mostly}
        if isinstance(feature, CategoricalFeature):
            values["values"] = list(feature.values)
            kind = "categorical"
        else:
            slack = range_tolerance * (feature.max - feature.min)
            values.update({"min": feature.min - slack, "max": feature.max + slack})
            kind = "numeric"
        expectations += _fill(_section(template, "per_feature", kind), values, f"{name} ({feature.name})")
    return _suite(template, expectations)


def output_suite(
    template: dict[str, Any], n_classes: int, classes: list[int], sum_tolerance: float
) -> dict[str, Any]:
    """Expand the output template for a classifier with ``n_classes`` probability columns.

    Args:
        template: the document from :func:`load_template`.
        n_classes: width of the probabilities output.
        classes: the known class labels.
        sum_tolerance: allowed ``|sum - 1|`` per row.

    Returns:
        A concrete GE suite document.

    Raises:
        SuiteError: a placeholder has no value or a section is malformed.
    """
    name = template["name"]
    prob_columns = [f"probability_{k}" for k in range(n_classes)]
    table = {
        "columns": ["label", *prob_columns, "probability_sum"],
        "classes": [int(c) for c in classes],
        "sum_min": 1.0 - sum_tolerance,
        "sum_max": 1.0 + sum_tolerance,
    }
    expectations = list(_fill(template["expectations"], table, name))
    for column in prob_columns:
        expectations += _fill(_section(template, "per_class"), {"column": column}, f"{name} ({column})")
    return _suite(template, expectations)


def validate(frame: pd.DataFrame, suite_doc: dict[str, Any]) -> SuiteResult:
    """Validate a DataFrame against a concrete suite in an ephemeral GE context.

    Args:
        frame: the data (its index is ignored).
        suite_doc: a document from :func:`input_suite` or :func:`output_suite`.

    Returns:
        The outcome with GE's result as JSON data.

    Raises:
        SuiteError: GE refuses the suite (unknown expectation type or bad arguments).
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_def = (
        ctx.data_sources.add_pandas("modelgate_regression")
        .add_dataframe_asset(suite_doc["name"])
        .add_batch_definition_whole_dataframe("whole_frame")
    )
    try:
        suite = ctx.suites.add(
            gx.ExpectationSuite(**{k: suite_doc[k] for k in _SUITE_KEYS if k in suite_doc})
        )
    except Exception as e:  # GE raises pydantic/its own errors for unknown types and bad kwargs
        raise SuiteError(f"suite {suite_doc.get('name')!r} is not a valid expectation suite: {e}") from e
    if len(suite.expectations) != len(suite_doc["expectations"]):
        # GE logs and drops an expectation it cannot build (unknown type, bad kwargs): refuse instead
        kept = {e.expectation_type for e in suite.expectations}
        dropped = sorted({str(d.get("type")) for d in suite_doc["expectations"]} - kept) or [
            "(bad arguments)"
        ]
        raise SuiteError(
            f"suite {suite_doc.get('name')!r} is not a valid expectation suite: great-expectations could not "
            f"build {len(suite_doc['expectations']) - len(suite.expectations)} expectation(s): {', '.join(dropped)}"
        )
    definition = ctx.validation_definitions.add(
        gx.ValidationDefinition(name=f"{suite_doc['name']}_validation", data=batch_def, suite=suite)
    )
    result = definition.run(
        batch_parameters={"dataframe": frame.reset_index(drop=True)}, result_format="SUMMARY"
    )
    failed: list[str] = []
    for r in result.results:
        if r.success:
            continue
        cfg = r.expectation_config
        column = cfg.kwargs.get("column") if cfg is not None else None
        label = f"{cfg.type}({column})" if cfg is not None and column else str(cfg.type if cfg else "unknown")
        info = r.exception_info or {}
        if info.get("raised_exception"):
            failed.append(f"{label}: error {str(info.get('exception_message'))[:200]}")
        elif "unexpected_count" in (r.result or {}):
            failed.append(f"{label}: {r.result['unexpected_count']} unexpected")
        else:
            failed.append(
                f"{label}: observed {json.dumps(r.result.get('observed_value'), default=str)[:200]}"
            )
    doc = result.to_json_dict()
    html = _render_html(result)
    log.info("suite %s: %s (%d failed)", suite_doc["name"], "pass" if result.success else "FAIL", len(failed))
    return SuiteResult(suite_doc["name"], bool(result.success), len(result.results), tuple(failed), doc, html)


def _render_html(result: Any) -> str:
    """Render a GE validation result as a standalone Data Docs page (GE's own renderer and template)."""
    from great_expectations.render.renderer.page_renderer import ValidationResultsPageRenderer
    from great_expectations.render.view.view import DefaultJinjaPageView

    document = ValidationResultsPageRenderer().render(result)
    return str(DefaultJinjaPageView().render(document))
