"""One error base: a one-line message, a hint, and the exit code it means.

Every error ``tickets`` refuses with derives from :class:`TicketsError`
(after click's ``ClickException``: subclasses only add words), so the
command line turns any of them into its exit with one clause. ``str()`` is
the line a user reads: the message, then the hint after a semicolon.

An error crosses a process boundary intact, whatever its constructor
takes (a child reports it to the parent; filelock's ``_error.py`` is why):
:meth:`TicketsError.__reduce__` rebuilds it from its arguments and fields.

Buyers import this module (the lean-import rule of :mod:`tickets.engine.child`).
"""

from __future__ import annotations

from .constants import EXIT_STORE, EXIT_USAGE, TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    #: What :func:`_rebuilt` makes an error from: its class, arguments and fields.
    Parts = tuple[type["TicketsError"], tuple[object, ...], dict[str, object]]
    Rebuild = Callable[
        [type["TicketsError"], tuple[object, ...], dict[str, object]], "TicketsError"
    ]


class TicketsError(Exception):
    """Something ``tickets`` cannot do as asked: exit 3 (a store, a file, a
    server that cannot be used) unless a subclass says otherwise."""

    exit_code = EXIT_STORE

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message, hint)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message

    def __reduce__(self) -> tuple[Rebuild, Parts]:
        return (_rebuilt, (type(self), self.args, self.__dict__))


class StoreError(TicketsError):
    """The store (or its lock) cannot be used (exit 3): ``path: problem; fix``.

    ``path`` names the store: a file, or a URL with its password hidden.
    """

    def __init__(self, path: object, problem: str, fix: str = "") -> None:
        self.path = str(path)
        self.problem = problem
        self.fix = fix
        super().__init__(f"{self.path}: {problem}", fix)


class UsageProblem(TicketsError):
    """What was asked cannot be done as written (a flag, a URL, a command,
    the user's buyer): a usage error, exit 2."""

    exit_code = EXIT_USAGE


class ConfigError(UsageProblem, ValueError):
    """A run cannot be set up as configured (its config checks itself when made)."""


def _rebuilt(
    kind: type[TicketsError], args: tuple[object, ...], fields: dict[str, object]
) -> TicketsError:
    """An error as it was, without calling its constructor (see the docstring)."""
    error = kind.__new__(kind, *args)
    error.args = args
    error.__dict__.update(fields)
    return error
