"""Layout rules checked on the tree: unique test module names, module length."""

from __future__ import annotations

from collections import Counter

from support import REPO


def test_test_module_basenames_are_unique_across_folders() -> None:
    """Test modules are imported by basename (rootdir import mode, no packages): two files with the same
    name in different folders make collection of the whole suite fail."""
    names = Counter(p.name for p in (REPO / "tests").rglob("test_*.py") if ".venv" not in p.parts)
    assert [n for n, c in names.items() if c > 1] == []


def test_no_module_of_the_domain_or_the_router_is_over_400_lines() -> None:
    """Issue 11: one job per module; a module past 400 lines is doing more than one."""
    roots = [REPO / "include", REPO / "serving_images" / "router" / "router"]
    long = {
        str(p.relative_to(REPO)): n
        for root in roots
        for p in root.rglob("*.py")
        if "_proto" not in p.parts and (n := len(p.read_text().splitlines())) > 400
    }
    assert long == {}
