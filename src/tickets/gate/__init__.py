"""Gate your own purchase code from Python and pytest.

:func:`tickets.sale` runs real sales of your function (``sale_gate``),
:func:`tickets.explore` every interleaving of a few buyers
(``explore_gate``, in a fresh interpreter: ``explore_child``); each
returns an outcome whose ``assert_passed()`` fails a test with the
verdict. ``callables`` turns your function into the ``MODULE:FUNC`` or
``FILE.py:FUNC`` a buyer process imports it by. The pytest fixtures built
on them are in :mod:`tickets.pytest_plugin`.
"""
