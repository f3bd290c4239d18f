"""The engine: the parent running a sale, and (in ``child/``) the children.

Parent side:

- ``config``: the frozen configs a run is asked to do;
- ``harness``: one harness for every way of selling (start, collect, stop,
  settle every operation, close), and the :class:`SaleMode` each way fills in;
- ``buy`` and ``queue``: the two modes; ``worker_pool``: ``buy`` on worker
  processes; ``race``: one sale under several strategies, over trials, and
  the CI verdict;
- ``ledger``: the history being written, one row per operation (``rows``),
  the result; ``closing``: what a run says of itself at its ends;
- ``children``, ``launcher_handle``: starting, watching and reaping child
  processes (the launcher forks buyers; see :mod:`tickets.engine.child.launcher`);
- ``event_pipe``: the parent's end of the pipe every child reports on;
- ``abandoned_lock``: noticing a process lock left held by a dead process;
- ``chaos``: seeded kills and pauses; ``interrupts``: signals to the parent;
- ``shell_commands``: the user's commands (``--exec``, ``--stock-cmd``),
  checked and run; ``buyer_check``: the user's ``--buy``, checked.

Nothing of the parent side runs in a child; the children's code is
:mod:`tickets.engine.child`.
"""
