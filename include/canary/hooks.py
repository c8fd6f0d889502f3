"""Named points of a canary run where tests may inject a fault (kill-and-rerun tests).

The controller calls :func:`reached` at a few points whose crash must leave a state a re-run can
complete (for example ``after_routes:2``: the router took stage 2, the registry does not know yet).
Nothing happens there unless a test registered a callback with :func:`on_point`; production code
never kills or fails itself.
"""

from __future__ import annotations

from collections.abc import Callable

_callbacks: list[Callable[[str], None]] = []


def on_point(callback: Callable[[str], None]) -> Callable[[], None]:
    """Register ``callback(point)`` to run at every named point.

    Args:
        callback: called with the point's name, for example ``after_routes:2``.

    Returns:
        A function that unregisters the callback.
    """
    _callbacks.append(callback)
    return lambda: _callbacks.remove(callback)


def reached(point: str) -> None:
    """Tell the registered callbacks that a run reached ``point``.

    Args:
        point: the point's name.
    """
    for callback in list(_callbacks):
        callback(point)
