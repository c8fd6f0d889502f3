"""The ``models:/`` URI grammar: ``models:/<name>@<alias>`` and ``models:/<name>/<version>``.

Anything else that starts with ``models:/`` is malformed; anything that does not is a local path
(an ``.onnx`` file or an MLflow model directory), which this module leaves to the loaders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SCHEME = "models:/"
"""The prefix of a registry URI."""

_URI_RE = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


class MalformedModelUri(ValueError):
    """Raised when a ``models:/`` URI is neither ``models:/<name>@<alias>`` nor ``models:/<name>/<n>``."""


@dataclass(frozen=True)
class ModelUri:
    """A parsed registry URI: a name and exactly one of alias or version.

    Attributes:
        name: registered model name.
        alias: the alias (``champion``, ``challenger``, ...) or None.
        version: the version number as text, or None.
    """

    name: str
    alias: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        if self.alias is not None:
            return alias_uri(self.name, self.alias)
        return version_uri(self.name, str(self.version))


def is_registry_uri(uri: str) -> bool:
    """Return whether ``uri`` names a registry model (starts with ``models:/``).

    Args:
        uri: a model source.

    Returns:
        True for ``models:/`` URIs, well-formed or not.
    """
    return uri.startswith(SCHEME)


def parse_model_uri(uri: str) -> ModelUri | None:
    """Parse a model source.

    Args:
        uri: ``models:/name@alias``, ``models:/name/N`` or a local path.

    Returns:
        The parsed URI, or None when ``uri`` is not a registry URI (a local path).

    Raises:
        MalformedModelUri: ``uri`` starts with ``models:/`` but matches neither form.
    """
    m = _URI_RE.match(uri)
    if m is not None:
        return ModelUri(m["name"], m["alias"], m["version"])
    if is_registry_uri(uri):
        raise MalformedModelUri(
            f"malformed model URI {uri!r}: use models:/<name>@<alias> or models:/<name>/<version>"
        )
    return None


def version_uri(name: str, version: str | int) -> str:
    """Return the pinned URI ``models:/<name>/<version>``.

    Args:
        name: registered model name.
        version: version number.

    Returns:
        The URI.
    """
    return f"{SCHEME}{name}/{version}"


def alias_uri(name: str, alias: str) -> str:
    """Return ``models:/<name>@<alias>``.

    Args:
        name: registered model name.
        alias: the alias.

    Returns:
        The URI.
    """
    return f"{SCHEME}{name}@{alias}"
