"""`make audit`: run pip-audit on the lock and fail on any vulnerability without a recorded exception.

Exceptions live in ``.pip-audit-ignore``, one per line::

    VULN-ID  PACKAGE  RECORDED  REVIEW-BY  REASON...

(dates as YYYY-MM-DD). An exception matches a finding by its id or one of its aliases (CVE, GHSA,
PYSEC) for that package; one past its review date no longer counts. Packages pip-audit could not
look up are listed and counted; ``--strict`` makes them fail too.

Exit codes: 0 clean (or only accepted findings), 1 an unaccepted vulnerability (or, with
``--strict``, an unaudited package), 2 a malformed exceptions file or pip-audit gave no report.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Exception_:
    """One recorded exception."""

    vuln_id: str
    package: str
    recorded: date
    review_by: date
    reason: str


class GateError(Exception):
    """Raised when the exceptions file is malformed or pip-audit produced no report."""


def parse_exceptions(text: str) -> list[Exception_]:
    """Parse the exceptions file; every line needs id, package, two dates and a reason."""
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 4)
        if len(parts) < 5:
            raise GateError(f"line {n}: expected 'VULN-ID PACKAGE RECORDED REVIEW-BY REASON', got {line!r}")
        try:
            recorded, review_by = date.fromisoformat(parts[2]), date.fromisoformat(parts[3])
        except ValueError as e:
            raise GateError(f"line {n}: dates must be YYYY-MM-DD: {e}") from e
        if review_by < recorded:
            raise GateError(f"line {n}: review date {review_by} is before the recorded date {recorded}")
        out.append(Exception_(parts[0], parts[1].lower(), recorded, review_by, parts[4]))
    return out


def evaluate(report: dict[str, Any], exceptions: list[Exception_], today: date, strict: bool) -> tuple[int, list[str]]:
    """Return (exit code, lines to print) for a pip-audit JSON report."""
    lines: list[str] = []
    failed, skipped, audited, used, reasons = 0, [], 0, set(), set()
    for dep in report.get("dependencies", []):
        name = str(dep.get("name", "")).lower()
        if "skip_reason" in dep:
            skipped.append(name)
            reasons.add(str(dep["skip_reason"]).split(":")[0])
            continue
        audited += 1
        for v in dep.get("vulns", []):
            ids = {v.get("id", ""), *v.get("aliases", [])}
            match = next((e for e in exceptions if e.package == name and e.vuln_id in ids), None)
            if match and match.review_by >= today:
                used.add(match)
                lines.append(f"accepted {name} {dep.get('version')} {v.get('id')}: {match.reason} "
                             f"(recorded {match.recorded}, review by {match.review_by})")
                continue
            failed += 1
            why = f"exception expired on {match.review_by}" if match else "no recorded exception"
            fixes = ", ".join(v.get("fix_versions", [])) or "none"
            lines.append(f"VULNERABLE {name} {dep.get('version')} {v.get('id')} (fix: {fixes}; {why})")
    for e in exceptions:
        if e not in used:
            lines.append(f"note: exception {e.vuln_id} for {e.package} matched nothing (remove it?)")
    lines.append(f"{audited} packages audited, {failed} unaccepted vulnerabilities, {len(skipped)} not audited")
    if skipped:
        lines.append(f"not audited ({'; '.join(sorted(reasons))}): {', '.join(sorted(skipped)[:20])}"
                     + (" ..." if len(skipped) > 20 else ""))
    if skipped and not audited:
        lines.append("WARNING: nothing was audited: the advisory service answered for no package of the lock")
    if failed:
        return 1, lines
    if strict and skipped:
        lines.append("--strict: packages that could not be audited fail the gate")
        return 1, lines
    return 0, lines


def run_pip_audit(requirements: Path) -> dict[str, Any]:
    """Run pip-audit on a fully pinned requirements file and return its JSON report."""
    cmd = [sys.executable, "-m", "pip_audit", "-r", str(requirements), "--disable-pip", "--no-deps",
           "--format", "json", "--aliases", "on", "--progress-spinner", "off"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    try:
        report: dict[str, Any] = json.loads(res.stdout)
    except json.JSONDecodeError as e:
        raise GateError(f"pip-audit gave no report (exit {res.returncode}): {res.stderr.strip()[-2000:]}") from e
    return report


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requirements", type=Path, default=Path("constraints.txt"))
    p.add_argument("--ignore-file", type=Path, default=Path(".pip-audit-ignore"))
    p.add_argument("--report", type=Path, help="evaluate this pip-audit JSON report instead of running it")
    p.add_argument("--today", type=date.fromisoformat, default=date.today())
    p.add_argument("--strict", action="store_true", help="also fail when a package could not be audited")
    args = p.parse_args(argv)
    try:
        text = args.ignore_file.read_text() if args.ignore_file.exists() else ""
        exceptions = parse_exceptions(text)
        report = json.loads(args.report.read_text()) if args.report else run_pip_audit(args.requirements)
    except GateError as e:
        print(f"audit: {e}", file=sys.stderr)
        return 2
    code, lines = evaluate(report, exceptions, args.today, args.strict)
    print("\n".join(f"audit: {line}" for line in lines))
    return code


if __name__ == "__main__":
    sys.exit(main())
