"""Typed values that DAG steps hand each other through XCom: frozen dataclasses with plain-dict forms.

A step module (``include/<domain>/steps.py``) takes and returns small frozen dataclasses that mix in
:class:`XcomRecord`. ``to_xcom()`` gives the plain dict a task returns (JSON types only: no pickles,
no paths on a worker's disk); ``from_xcom()`` checks a dict field by field against the dataclass's
annotations and raises :class:`InvalidXcom` naming the record and the field when it does not fit.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Self, Union

from include.errors import ModelgateError


class InvalidXcom(ModelgateError):
    """Raised when an XCom value is not the record a step expects; the message names the field."""

    code = "invalid_xcom"


class XcomRecord:
    """Mixin for the frozen dataclasses that steps pass through XCom."""

    def to_xcom(self) -> dict[str, Any]:
        """Return the plain-dict (JSON) form; nested records become dicts, tuples lists."""
        if not dataclasses.is_dataclass(self):
            raise TypeError(f"{type(self).__name__} must be a dataclass")
        return {f.name: _encode(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_xcom(cls, data: Any) -> Self:
        """Rebuild a record from :meth:`to_xcom`'s form, checking every field.

        Args:
            data: the value pulled from XCom.

        Returns:
            The record.

        Raises:
            InvalidXcom: ``data`` is not a dict, lacks a required field, has an unknown one, or a field
                has the wrong type; the message says which (``Record.field: ...``).
        """
        name = cls.__name__
        if not isinstance(data, dict):
            raise InvalidXcom(f"{name}: expected a dict, got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
        unknown = sorted(str(k) for k in data if k not in fields)
        if unknown:
            raise InvalidXcom(f"{name}: unknown field(s) {unknown}; expected {sorted(fields)}")
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for field_name, f in fields.items():
            if field_name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise InvalidXcom(f"{name}.{field_name}: missing")
                continue
            values[field_name] = _decode(hints[field_name], data[field_name], f"{name}.{field_name}")
        return cls(**values)


def _encode(value: Any) -> Any:
    if isinstance(value, XcomRecord):
        return value.to_xcom()
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp)


def _decode(tp: Any, value: Any, where: str) -> Any:
    """Return ``value`` checked against the annotation ``tp`` (records rebuilt, floats from ints)."""
    if tp is Any:
        return value
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return _decode_union(tp, args, value, where)
    if origin is typing.Literal:
        if value not in args:
            raise InvalidXcom(f"{where}: expected one of {list(args)}, got {value!r}")
        return value
    if isinstance(tp, type) and issubclass(tp, XcomRecord):
        try:
            return tp.from_xcom(value)
        except InvalidXcom as e:
            raise InvalidXcom(f"{where}: {e.message}") from e
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise InvalidXcom(f"{where}: expected an object with string keys, got {type(value).__name__}")
        return {k: _decode(args[1] if args else Any, v, f"{where}[{k!r}]") for k, v in value.items()}
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise InvalidXcom(f"{where}: expected a list, got {type(value).__name__}")
        items = [_decode(args[0] if args else Any, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    return _decode_scalar(tp, value, where)


def _decode_union(tp: Any, args: tuple[Any, ...], value: Any, where: str) -> Any:
    if value is None and type(None) in args:
        return None
    for option in (a for a in args if a is not type(None)):
        try:
            return _decode(option, value, where)
        except InvalidXcom:
            continue
    raise InvalidXcom(f"{where}: expected {tp}, got {type(value).__name__}")


def _decode_scalar(tp: Any, value: Any, where: str) -> Any:
    if tp not in (str, bool, int, float):
        raise TypeError(f"{where}: annotation {tp} is not supported in an XCom record")
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, tp) and (tp is bool or not isinstance(value, bool)):
        return value
    raise InvalidXcom(f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {value!r:.60}")
