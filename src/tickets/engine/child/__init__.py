"""Everything that runs inside a child process: a buyer, a producer or a clerk.

Who runs what:

- ``buyer``: one buyer's purchase (the tutorial's ``Foo``: search, lock,
  read, decrement, write) and how it ended; ``session``: the buyer's
  instrumented store session and lock around it, that time it, report it
  and inject faults;
- ``orders``: the order queue's producer and clerk bodies;
- ``plan``: the small, immutable plans every child of a run shares;
- ``pipe``: how a child reports: one atomic pipe write per message;
- ``launcher``: the lean process that starts every buyer (forks them,
  starts them through multiprocessing: ``spawned``), or the workers of a
  big sale, or runs every ``--exec`` command (``commands``);
- ``reaper``: the launcher's hold on every descendant, as a subreaper, and
  the lifeline that tells it the parent is gone; ``warden``: a program
  (the launcher, ``--stock-cmd``, the ``--buy`` check) run so that nothing
  it starts outlives it;
- ``worker``: a worker, many buyers at once on threads (``--workers``):
  the one module here that imports ``threading``, after its fork.

The parent's side of all this lives in :mod:`tickets.engine`.

**The lean-import rule.** Buyers are forked by thousands from the launcher,
and every fork pays for what the forking process has loaded: the kernel
copies its page tables, a buyer copies every page it writes, and each
module's at-fork hooks run in every child. So the modules a buyer runs
(this package but ``orders``, plus :mod:`tickets.stores` but its SQLite and
Redis modules, :mod:`tickets.locking.locks`, :mod:`tickets.constants` and
the event vocabulary, :mod:`tickets.check.events`) import only light
standard modules: no ``typing``, ``dataclasses``, ``pathlib`` or
``inspect`` (their memory), no ``random`` or ``threading`` (their at-fork
hooks: 1,000 forks took 0.33 s bare, 0.46 s with ``random``, 0.73 s with
``threading``), no click or rich. ``filelock`` (~0.7 ms of at-fork hooks
per fork) is imported only by the launcher of a ``file``-strategy sale.
``tests/test_layout.py`` keeps it so.

Annotations name types from ``typing`` and ``pathlib`` under
``if TYPE_CHECKING:`` with :data:`tickets.constants.TYPE_CHECKING`, not
``typing.TYPE_CHECKING``: type checkers take any name ``TYPE_CHECKING`` as
true, and the interpreter never imports ``typing`` for it.

Children never print: their stdout and stderr go to ``/dev/null`` and they
report to the parent over the event pipe, every event built by the
vocabulary's constructors (:mod:`tickets.check.events`), never by hand.
"""
