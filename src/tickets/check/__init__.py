"""The checker: what a history is, and what it proves.

- ``events``: the event vocabulary: every event and reason a sale's
  processes report, built by its constructors, and how the checker
  classifies each; buyers import it too, so it imports only what they may
  (and this package's ``__init__`` nothing at all);
- ``operations``: one sale's operations folded into a compact table, and
  the rules each event obeys;
- ``history_lines``: the run and end lines that open and close a history;
- ``history``: reading a history back (well-formed, or why not);
  ``history_writer``: writing one as a run goes;
- ``linearizability``: the real-time order checks (seats of sales that did
  not overlap decrease; no undersell);
- ``verdict``: the named checks and the :class:`Report` a run or a history
  gets (PASSED, FAILED, NOT PROVEN);
- ``sale``: one sale judged from several histories (``--keep-stock`` runs,
  a named sale across hosts);
- ``housekeeping``: the histories beside a store, listed with their verdicts
  and pruned.

Nothing here starts a process or imports click or rich.
"""
