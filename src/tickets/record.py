"""A small immutable record, for the classes forked buyers use.

What ``dataclass(frozen=True)`` gives (equality, hashing, a repr, pickling,
``replace``) without importing :mod:`dataclasses`, which loads ``inspect``
and ``ast``: buyers are forked from a process that imports only what they
need, because every fork copies the page tables of all its memory and every
buyer's exit tears them down (~0.25 ms a buyer for ~4 MB, measured).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Self


class Record:
    """Subclasses name their fields in ``__slots__`` and set them with ``_set``."""

    __slots__: tuple[str, ...] = ()

    def _set(self, **values: Any) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; use replace()")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Record)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{type(self).__name__}({fields})"

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (type(self), self._values())

    def replace(self, **changes: Any) -> Self:
        unknown = set(changes) - set(self.__slots__)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {sorted(unknown)[0]!r}")
        values = {n: changes.get(n, getattr(self, n)) for n in self.__slots__}
        return type(self)(**values)
