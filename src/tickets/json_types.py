"""The type of a JSON value, for annotations only.

``Json`` is what :func:`json.loads` builds (``None``, ``bool``, ``int``,
``float``, ``str``, and lists and string-keyed dicts of them), once a value
is known to come from JSON, and what a document is made of before it is
written as JSON. Documents whose keys are fixed have a ``TypedDict`` of
their own, beside the code that makes them.

Defined under ``TYPE_CHECKING`` (the interpreter never runs it): buyers
import their annotations' types that way too (see
:mod:`tickets.engine.child`).
"""

from __future__ import annotations

from .constants import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import TypeAlias

    Json: TypeAlias = None | bool | int | float | str | list["Json"] | dict[str, "Json"]
