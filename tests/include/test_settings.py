"""Every ``MODELGATE_*`` variable the code names is declared by a settings class, each field documented."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest
from pydantic import AliasChoices
from pydantic_settings import BaseSettings
from support import REPO

from include.batch.pods import BatchPodSettings
from include.batch.settings import BatchRunSettings
from include.config import Settings
from modelgate_dev.settings import DevSettings

CLASSES: list[type[BaseSettings]] = [Settings, BatchRunSettings, BatchPodSettings, DevSettings]
NAME = re.compile(r"^MODELGATE_[A-Z0-9_]*[A-Z0-9]$")


def _env_names(cls: type[BaseSettings]) -> set[str]:
    prefix = cls.model_config.get("env_prefix", "")
    names = set()
    for field, info in cls.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(c) for c in alias.choices)
        else:
            names.add(f"{prefix}{field}".upper())
    return names


def _named_in_code() -> dict[str, list[str]]:
    """Variable name → places, for every string constant ``MODELGATE_...`` in the code."""
    found: dict[str, list[str]] = {}
    for root in ("include", "plugins", "dags", "modelgate_dev"):
        for path in sorted((REPO / root).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and NAME.match(node.value):
                    found.setdefault(node.value, []).append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def test_every_variable_the_code_names_is_declared_by_a_settings_class() -> None:
    declared = set().union(*(_env_names(c) for c in CLASSES))
    used = _named_in_code()
    assert len(used) >= 8, "the scan finds the variables the stack sets"
    missing = {name: where for name, where in used.items() if name not in declared}
    assert missing == {}


def test_no_module_of_the_domain_reads_the_environment_itself() -> None:
    allowed = {"include/config.py"}
    bad = []
    for path in sorted((REPO / "include").rglob("*.py")):
        rel = str(path.relative_to(REPO))
        text = path.read_text(encoding="utf-8")
        if rel not in allowed and re.search(r"os\.environ(\.get)?\(?\[?\"MODELGATE_", text):
            bad.append(rel)
    assert not bad, bad


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_settings_field_has_a_docstring(cls: type[BaseSettings]) -> None:
    tree = ast.parse(inspect.getsource(cls))
    body = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)).body
    undocumented = [
        stmt.target.id
        for stmt, nxt in zip(body, [*body[1:], None], strict=True)
        if isinstance(stmt, ast.AnnAssign)
        and isinstance(stmt.target, ast.Name)
        and stmt.target.id != "model_config"
        and not (isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant))
    ]
    assert undocumented == []


def test_settings_read_the_environment_and_ignore_empty_values(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MODELGATE_CANARY_POLICY", "")
    monkeypatch.setenv("ROUTER_EVENTS_ROOT", str(tmp_path / "router-events"))
    monkeypatch.setenv("ROUTER_ADMIN_TOKEN", "t0k")
    monkeypatch.setenv("MODELGATE_BATCH_KUBERNETES", "true")
    s = Settings()
    assert s.canary_policy is None
    assert s.resolved_events_root() == str(tmp_path / "router-events")
    assert s.router_admin_token == "t0k"
    monkeypatch.setenv("MODELGATE_EVENTS_ROOT", str(tmp_path / "ours"))
    assert Settings().resolved_events_root() == str(tmp_path / "ours")
    assert BatchRunSettings().kubernetes is True
