"""Evidence of a canary as people read it: the approval form's markdown and the tag-sized stage summary."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from include.canary.state import MAX_TAG_CHARS


def fit_summary(summary: dict[str, Any]) -> dict[str, Any]:
    while len(json.dumps(summary)) > MAX_TAG_CHARS and summary["reasons"]:
        summary["reasons"] = summary["reasons"][:-1]
    return summary


def _interval(bounds: list[float | None] | None) -> str:
    """``[low, high]`` of a judge interval; an open (None) bound is shown as ∞, no interval (NoData) as nothing."""
    if not bounds or len(bounds) != 2 or bounds == [None, None]:
        return ""
    low = "-∞" if bounds[0] is None else _num(bounds[0])
    high = "∞" if bounds[1] is None else _num(bounds[1])
    return f"[{low}, {high}]"


def evidence_markdown(plan: dict[str, Any], result: dict[str, Any]) -> str:
    """Return a markdown table of a stage's judgement (shown in the approval form).

    Args:
        plan: the plan.
        result: the stage's judge result.

    Returns:
        Markdown.
    """
    lines = [
        f"**{plan['model']}** v{plan['version']} vs champion v{plan['champion']}, stage {result['stage']} "
        f"({result['weight_bp'] / 100:g} %): score **{result['score']}**, decision **{result['decision']}**",
        "",
        "| metric | class | canary | baseline | effect [interval] | tolerance | p | n canary / baseline |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m in result["metrics"]:
        c, b = (
            m["canary"].get("p50", m["canary"].get("mean")),
            m["baseline"].get("p50", m["baseline"].get("mean")),
        )
        lines.append(
            f"| {m['name']} | {m['classification']}{' (failed)' if m['failed'] else ''} | {_num(c)} | {_num(b)} "
            f"| {_num(m['effect'])} {_interval(m.get('interval'))} | {_num(m['tolerance'])} | {_num(m['p_value'])} | {m['n_canary']} / {m['n_baseline']} |"
        )
    excluded = result.get("excluded_without_consent")
    if excluded:
        lines += ["", f"Requests without consent, not judged: canary {excluded['canary']}, "
                  f"baseline {excluded['baseline']} (docs/privacy.md)."]  # fmt: skip
    lines += ["", *[f"- {r}" for r in result["reasons"]]]
    return "\n".join(lines)


def _num(x: Any) -> str:
    return "-" if x is None else f"{x:.4g}"


def start_markdown(model: str, version: str, champion: str, stages: Sequence[float], bake_seconds: float,
                   regression_tags: dict[str, str]) -> str:  # fmt: skip
    """Return the markdown shown before traffic moves: what is compared and the regression evidence.

    Args:
        model: the model name.
        version: the candidate version.
        champion: the champion version.
        stages: the traffic stages in percent.
        bake_seconds: bake time of each stage.
        regression_tags: the version's ``modelgate.regression.*`` tags.

    Returns:
        Markdown.
    """
    head = (
        f"**{model}** version **{version}** against champion **{champion}**; stages "
        f"{stages} %, bake {bake_seconds:g} s each.\n\n"
    )
    if not regression_tags:
        return head + "No regression tags on this version."
    return (
        head
        + "Regression evidence:\n\n"
        + "\n".join(f"- `{k}`: {v[:200]}" for k, v in sorted(regression_tags.items()))
    )
