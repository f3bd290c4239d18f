"""Your purchase function as a buyer process finds it: ``MODULE:FUNC`` or ``FILE.py:FUNC``.

Buyers run in fresh interpreters (the launcher is one, and so is the
exploration's process), never in the caller's: a function crosses over by
its name only, and the buyer imports it again. So only a function a fresh
interpreter can import by name will do: a ``def`` at the top level of a
module that is a ``.py`` file. A lambda, a function defined inside
another, a method, a function of ``__main__`` are refused, each in a line
that says why.

A test module is such a module, but pytest imports it under a name of its
own choosing (its ``rootdir``/``conftest`` rules, ``importmode``): the
name is used only when the same file is found by that name on this
process's ``sys.path`` (which the buyer processes get as their
``PYTHONPATH``); otherwise the buyer loads the file itself,
``/abs/path/test_shop.py:buy``.
"""

from __future__ import annotations

import os
import sys
import types

from ..errors import ConfigError

#: Why only a named, top-level function will do (the end of every refusal).
WHY = (
    "each buyer runs in a fresh Python process that imports your function by its "
    "module and name; define it with def at the top level of a module (a .py file)"
)


def replayable_spec(buy: object) -> str:
    """:func:`buyer_spec`, for a schedule saved to replay from a shell: a
    function named by a module that the current folder alone would not
    find (pytest's ``sys.path``, a ``src/`` layout) is named by its file,
    so that the printed ``tickets explore --replay … --buy …`` works as
    printed."""
    spec = buyer_spec(buy)
    if isinstance(buy, str):
        return spec
    module, _, name = spec.rpartition(":")
    if module.endswith(".py") or "/" in module:
        return spec
    path = getattr(sys.modules.get(module), "__file__", None)
    if isinstance(path, str) and not found_by_name(module, path, [os.getcwd()]):
        return f"{os.path.abspath(path)}:{name}"
    return spec


def buyer_spec(buy: object) -> str:
    """``buy`` as the ``--buy`` text a buyer process loads: a string is
    taken as written (checked later, in a throwaway process); a function
    is named by its module, or by its file; anything else is refused
    (:class:`ConfigError`, one line)."""
    __tracebackhide__ = True  # pytest: a refusal shows at the test's line
    if isinstance(buy, str):
        if not buy.strip():
            raise ConfigError("buy is empty: give a function, or 'FILE.py:FUNC' or 'MODULE:FUNC'")
        return buy
    function = _plain_function(buy)
    name = function.__name__
    module_name = function.__module__
    if module_name == "__main__":
        raise ConfigError(
            f"buy: {name} is defined in __main__ (the script being run), which a buyer "
            f"process cannot import: move it into a module; {WHY}"
        )
    module = sys.modules.get(module_name)
    if module is None or getattr(module, name, None) is not function:
        raise ConfigError(
            f"buy: {module_name}.{name} is not this function (it was renamed, replaced or "
            f"made at run time): pass the function the module defines under its name; {WHY}"
        )
    path = getattr(module, "__file__", None)
    if not isinstance(path, str) or not path.endswith(".py") or not os.path.isfile(path):
        raise ConfigError(f"buy: {name} is in module {module_name}, which is no .py file; {WHY}")
    if found_by_name(module_name, path):
        return f"{module_name}:{name}"
    return f"{os.path.abspath(path)}:{name}"


def _plain_function(buy: object) -> types.FunctionType:
    """``buy`` if it is a top-level function; else a refusal that says what it is."""
    __tracebackhide__ = True
    if isinstance(buy, types.MethodType):
        raise ConfigError(
            f"buy: {buy.__qualname__} is a bound method, and its object cannot go with it "
            f"to a buyer: pass a top-level function (it may build the object); {WHY}"
        )
    if not isinstance(buy, types.FunctionType):
        shown = repr(buy)[:80]
        raise ConfigError(
            f"buy must be a function or 'FILE.py:FUNC' / 'MODULE:FUNC' text, got {shown}; {WHY}"
        )
    if buy.__name__ == "<lambda>":
        raise ConfigError(f"buy: a lambda has no name a buyer process can import it by; {WHY}")
    qualname = buy.__qualname__
    if "<locals>" in qualname:
        outer = qualname.split(".<locals>", 1)[0]
        raise ConfigError(
            f"buy: {buy.__name__} is defined inside {outer}() (a closure or nested "
            f"function): a buyer process cannot reach it; {WHY}"
        )
    if qualname != buy.__name__:
        owner = qualname.rpartition(".")[0]
        raise ConfigError(f"buy: {qualname} is defined in class {owner}, not at the top; {WHY}")
    return buy


def found_by_name(module_name: str, path: str, where: list[str] | None = None) -> bool:
    """Does a buyer process find ``path`` when it imports ``module_name``?
    (Not the module this process holds under that name: pytest may have
    imported a test file under a name of its own, or found a module on a
    path where the buyer's current folder holds another of that name.)"""
    from importlib.machinery import ModuleSpec, PathFinder

    from ..engine.child.own_python import own_env

    # As a buyer process searches: the PYTHONPATH it was given, then the
    # current folder (the loader appends it: see tickets.engine.child.user_buyer).
    given = own_env({})["PYTHONPATH"].split(os.pathsep)
    search: list[str] | None = [*given, os.getcwd()] if where is None else where
    spec: ModuleSpec | None = None
    for part in module_name.split("."):
        if spec is not None:  # a package: look in its folders
            locations = spec.submodule_search_locations
            if locations is None:
                return False
            search = list(locations)
        spec = PathFinder.find_spec(part, search)
        if spec is None:
            return False
    if spec is None or not spec.origin or not os.path.isfile(spec.origin):
        return False
    try:
        return os.path.samefile(spec.origin, path)
    except OSError:
        return False
