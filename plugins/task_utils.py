"""Helpers shared by DAG task bodies: who acts, and domain errors as non-retried task failures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def domain_errors_fail_task() -> Iterator[None]:
    """Turn a ``ModelgateError`` (bad input, not a transient fault) into ``AirflowFailException``.

    Bad conf or a bad artifact will not get better by retrying, so the task fails at once with the
    error's message, which names the problem. Other exceptions keep the task's retry policy.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from include.errors import ModelgateError

    try:
        yield
    except ModelgateError as e:
        raise AirflowFailException(f"{e.code}: {e.message}") from e


def actor_of(context: dict[str, Any]) -> str:
    """Return who acts in this run: the authenticated user who triggered it, else ``airflow:<dag_id>``.

    Never a conf field: a run triggered by asset event or schedule has no triggering user and acts as
    the DAG itself. The DAGs refuse a conf ``actor`` (``include.errors.CONF_ACTOR_REFUSED``).
    """
    dag_run = context.get("dag_run")
    user = getattr(dag_run, "triggering_user_name", None) if dag_run is not None else None
    dag_id = getattr(dag_run, "dag_id", "unknown")
    return str(user) if user else f"airflow:{dag_id}"


def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a domain function with domain errors turned into task failures."""
    with domain_errors_fail_task():
        return fn(*args, **kwargs)
