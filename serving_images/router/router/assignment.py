"""Variant assignment: pure, deterministic functions, no I/O.

Sticky assignment uses weighted rendezvous hashing: every (model, salt, variant, unit) gets a
stable uniform number ``u`` from blake2b, the score is ``-ln(u) / weight`` and the lowest score
wins. The chance of a variant is exactly its share of the weights, a unit keeps its variant while
the weights stay, and when weights change units only move *into* variants whose weight rose or
*out of* variants whose weight fell (raising a canary from 5 % to 25 % moves no canary unit out).
"""

from __future__ import annotations

import hashlib
import math
from bisect import bisect_right
from collections.abc import Sequence

_SCALE = float(2**64)


class Assigner:
    """Assigns units of one model to its variants by weight.

    Args:
        model: the model name (part of the hash).
        salt: experiment salt (part of the hash).
        variants: ``(name, weight_bp)`` pairs; weights need not sum to anything in particular.
    """

    __slots__ = ("_cache", "_cum", "_names", "_prefixes", "_total", "names")

    CACHE_SIZE = 65_536
    """Units whose variant is remembered; the memo is emptied when full (an Assigner never changes)."""

    def __init__(self, model: str, salt: str, variants: Sequence[tuple[str, int]]) -> None:
        live = [(n, w) for n, w in variants if w > 0]
        self.names = tuple(n for n, _ in variants)
        self._names = tuple(n for n, _ in live)
        self._prefixes = tuple(
            (hashlib.blake2b(f"{model}\x1f{salt}\x1f{n}\x1f".encode(), digest_size=8), float(w))
            for n, w in live
        )
        cum: list[int] = []
        t = 0
        for _, w in live:
            t += w
            cum.append(t)
        self._cum = tuple(cum)
        self._total = t
        self._cache: dict[bytes, str] = {}

    def sticky(self, unit_id: bytes) -> str:
        """Return the variant of a unit.

        Args:
            unit_id: the unit's id as bytes (the ``X-Unit-Id`` header).

        Returns:
            The variant name.
        """
        cache = self._cache
        hit = cache.get(unit_id)
        if hit is not None:
            return hit
        best = ""
        best_score = math.inf
        for (prefix, w), name in zip(self._prefixes, self._names, strict=True):
            h = prefix.copy()
            h.update(unit_id)
            u = (int.from_bytes(h.digest(), "big") + 0.5) / _SCALE
            score = -math.log(u) / w
            if score < best_score:
                best_score = score
                best = name
        if len(cache) >= self.CACHE_SIZE:
            cache.clear()
        cache[unit_id] = best
        return best

    def random(self, r: float) -> str:
        """Return a variant for a request without a unit id.

        Args:
            r: a uniform number in [0, 1).

        Returns:
            The variant name.
        """
        i = bisect_right(self._cum, r * self._total)
        return self._names[min(i, len(self._names) - 1)]


def assign(model: str, salt: str, unit_id: str, variants: Sequence[tuple[str, int]]) -> str:
    """Return the variant of ``unit_id`` among weighted ``variants`` (convenience wrapper).

    Args:
        model: the model name.
        salt: the experiment salt.
        unit_id: the unit id.
        variants: ``(name, weight_bp)`` pairs.

    Returns:
        The variant name.
    """
    return Assigner(model, salt, variants).sticky(unit_id.encode())
