"""The command line's own parameter types: counts and amounts refused in
words a person reads. Only click is imported (see :mod:`tickets.cli`)."""

from __future__ import annotations

from typing import Any

import click


class Count(click.IntRange):
    """A whole number within a range, refused in words a person reads
    ("'abc' is not a whole number", not "not a valid integer range")."""

    name = "count"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        """``N``, as the help texts name a count."""
        return "N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str):
            try:
                value = int(value.strip().replace("_", ""))
            except ValueError:
                self.fail(f"{value!r} is not a whole number", param, ctx)
        return super().convert(value, param, ctx)


class Amount(click.FloatRange):
    """A number (seconds, milliseconds, a share) within a range, refused in
    words ("'soon' is not a number"); NaN and infinities are not numbers."""

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str):
            import math

            try:
                number = float(value.strip())
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                self.fail(f"{value!r} is not a number", param, ctx)
            value = number
        return super().convert(value, param, ctx)


#: the common flags' short forms
