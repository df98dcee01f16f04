"""Plain record classes for the reading path, built without :mod:`dataclasses`.

``@dataclass`` writes each class's ``__init__``, ``__repr__`` and ``__eq__`` as source text and
compiles it when the class is created: ~0.4 ms a class, ~4 ms of a fresh process's first
``readRTDir`` for the ten records it creates (issue 14: a script's first read). Those records
derive from :class:`Record` instead: each writes its ``__init__``; ``__repr__`` and ``__eq__``
(equal when of the same class with equal fields, as a dataclass compares) come from here, driven
by the class's ``_fields``. :class:`FrozenRecord` refuses assignments, as ``frozen=True``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class FrozenRecordError(AttributeError):
    """Assignment to a field of a :class:`FrozenRecord` (as ``dataclasses.FrozenInstanceError``)."""


class Record:
    """A record whose fields are ``_fields`` (in ``__init__``'s order)."""

    _fields: ClassVar[tuple[str, ...]] = ()

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}(" + ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields) + ")"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return tuple(getattr(self, f) for f in self._fields) == tuple(getattr(other, f) for f in self._fields)

    __hash__ = None  # type: ignore[assignment]  # mutable and compared by value, as a dataclass


class FrozenRecord(Record):
    """A record whose fields can't be assigned or deleted after ``__init__`` (which sets them with
    :meth:`_init`). Hashable by its fields; ``_eq = False``: compared and hashed by identity."""

    _eq: ClassVar[bool] = True

    def _init(self, **values: Any) -> None:
        for k, v in values.items():
            object.__setattr__(self, k, v)

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenRecordError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenRecordError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if not self._eq:
            return self is other
        return Record.__eq__(self, other)

    def __hash__(self) -> int:  # type: ignore[override]
        if not self._eq:
            return object.__hash__(self)
        return hash(tuple(getattr(self, f) for f in self._fields))
