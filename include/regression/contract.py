"""The contract check: does the challenger's signature keep the champion's callers working, and
does a breaking change come with a major semver bump?"""

from __future__ import annotations

from typing import TYPE_CHECKING

from include.regression.results import CheckResult, Figure

if TYPE_CHECKING:
    from include.regression.policy import Policy


def _dims_ok(old: tuple[int | None, ...], new: tuple[int | None, ...], widen_ok: bool) -> bool:
    if len(old) != len(new):
        return False
    for a, b in zip(old, new, strict=True):
        if a == b:
            continue
        if widen_ok and b is None:  # the new model accepts any size where the old one wanted a fixed one
            continue
        if not widen_ok and a is None:  # callers never relied on a fixed size here
            continue
        return False
    return True


def signature_breaks(champion_sig: str, challenger_sig: str) -> list[str]:
    """List what makes the challenger's signature incompatible with the champion's.

    Compatible: every champion input exists with the same dtype and a shape that accepts the same
    data (a fixed axis may become dynamic), no new inputs, every champion output exists with the same
    dtype and a shape at least as specific. New outputs are fine.

    Args:
        champion_sig: ``modelgate.signature`` JSON of the champion.
        challenger_sig: the challenger's.

    Returns:
        One sentence per breaking difference (empty when compatible).
    """
    from include.registry.signature import Signature

    old, new = Signature.from_json(champion_sig), Signature.from_json(challenger_sig)
    breaks: list[str] = []
    new_in = {t.name: t for t in new.inputs}
    for t in old.inputs:
        n = new_in.get(t.name)
        if n is None:
            breaks.append(f"input {t.name!r} was removed")
        elif n.dtype != t.dtype:
            breaks.append(f"input {t.name!r} changed type {t.dtype} -> {n.dtype}")
        elif not _dims_ok(t.shape, n.shape, widen_ok=True):
            breaks.append(f"input {t.name!r} changed shape {list(t.shape)} -> {list(n.shape)}")
    for name in sorted(set(new_in) - {t.name for t in old.inputs}):
        breaks.append(f"new required input {name!r}")
    new_out = {t.name: t for t in new.outputs}
    for t in old.outputs:
        n = new_out.get(t.name)
        if n is None:
            breaks.append(f"output {t.name!r} was removed")
        elif n.dtype != t.dtype:
            breaks.append(f"output {t.name!r} changed type {t.dtype} -> {n.dtype}")
        elif not _dims_ok(t.shape, n.shape, widen_ok=False):
            breaks.append(f"output {t.name!r} changed shape {list(t.shape)} -> {list(n.shape)}")
    return breaks


def check_contract(
    champion_sig: str, challenger_sig: str, champion_semver: str, challenger_semver: str, policy: Policy
) -> CheckResult:
    """Signature compatibility with the champion; a breaking change needs a major semver bump.

    Args:
        champion_sig: champion ``modelgate.signature``.
        challenger_sig: challenger ``modelgate.signature``.
        champion_semver: champion ``modelgate.semver``.
        challenger_semver: challenger ``modelgate.semver``.
        policy: the model's policy.

    Returns:
        ``pass`` when compatible, or breaking with a major bump (``breaking`` figure true: later
        comparisons with the champion are skipped); ``fail`` for a breaking change without one.
    """
    from include.registry.errors import InvalidConf
    from include.registry.manifest import parse_semver

    breaks = signature_breaks(champion_sig, challenger_sig)
    figures: dict[str, Figure] = {
        "compatible": not breaks,
        "breaking": bool(breaks),
        "champion_semver": champion_semver,
        "challenger_semver": challenger_semver,
        "breaking_changes": "; ".join(breaks),
    }
    if not breaks:
        return CheckResult("contract", "pass", "signature compatible with the champion's", figures)
    try:
        major_bump = parse_semver(challenger_semver)[0] > parse_semver(champion_semver)[0]
    except InvalidConf as e:
        figures["major_bump"] = False
        return CheckResult(
            "contract", "fail", f"breaking signature change ({'; '.join(breaks)}) and {e.message}", figures
        )
    figures["major_bump"] = major_bump
    if major_bump or not policy.contract.breaking_change_needs_major_bump:
        how = "declared by a major bump" if major_bump else "allowed by policy"
        return CheckResult(
            "contract",
            "pass",
            f"breaking signature change {how} ({champion_semver} -> {challenger_semver}): "
            f"{'; '.join(breaks)}; comparisons with the champion are skipped",
            figures,
        )
    return CheckResult(
        "contract",
        "fail",
        f"breaking signature change without a major semver bump ({champion_semver} -> {challenger_semver}): "
        f"{'; '.join(breaks)}",
        figures,
    )
