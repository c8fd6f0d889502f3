"""Test modules are imported by basename (rootdir import mode, no packages): two files with the same
name in different folders make collection of the whole suite fail, so each name must be unique."""

from __future__ import annotations

from collections import Counter

from support import REPO


def test_test_module_basenames_are_unique_across_folders() -> None:
    names = Counter(p.name for p in (REPO / "tests").rglob("test_*.py") if ".venv" not in p.parts)
    assert [n for n, c in names.items() if c > 1] == []
