"""The parent's side of a run: everything the command-line process does while
its children sell.

- ``harness``: one harness for every way of selling (start, collect, stop,
  settle every operation, close), and the :class:`SaleMode` each way fills in;
- ``buy`` and ``queue``: the two modes; ``race``: one sale under several
  strategies, over trials, and the CI verdict;
- ``ledger``: the history being written, one row per operation, the result;
- ``children``, ``launcher``: starting, watching and reaping child processes
  (the launcher forks buyers; see :mod:`tickets.child.launcher`);
- ``event_pipe``: the parent's end of the pipe every child reports on;
- ``abandoned_lock``: noticing a process lock left held by a dead process;
- ``chaos``: seeded kills and pauses.

Nothing here runs in a child; the children's code is :mod:`tickets.child`.
"""
