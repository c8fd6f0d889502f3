"""resolve_target refuses a conf actor before touching the registry: the actor is the triggering user."""

from __future__ import annotations

import pytest

from include.regression.errors import TargetError
from include.regression.target import resolve_target


@pytest.mark.parametrize("actor", ["ci-bot", "", None])
def test_conf_actor_is_refused(actor: str | None) -> None:
    with pytest.raises(TargetError, match=r"conf\.actor is not accepted: the actor is the authenticated user"):
        resolve_target({"model_name": "churn", "version": "2", "actor": actor}, None, "http://unused")


def test_no_model_is_a_clear_error() -> None:
    with pytest.raises(TargetError, match="nothing to test"):
        resolve_target({}, [], "http://unused")
