"""An independent oracle: is a sale's history linearizable? By brute force.

Written only for the tests, straight from the definition and sharing no
code with tickets.check.linearizability: the Wing & Gong search. Repeatedly pick
an operation that may go next (no other operation still to place completed
before it was invoked), apply it to the counter if the model allows, and
backtrack; memoized on (operations placed, count). An operation of unknown
outcome never completes: it may go anywhere after its invoke, taking one
ticket if any is left, or not happen at all. Exponential: for the small
histories the property tests generate.
"""

from __future__ import annotations

from functools import cache

from histories import Op

INF = float("inf")


def linearizable(ops: list[Op], initial: int, remaining: int, ids: bool = False) -> bool:
    """``ids``: the sales got ticket ids, not seats: a sale takes one at any count."""
    n = len(ops)
    start = [op.start for op in ops]
    done = [op.done if op.kind in ("ok", "sold out", "busy") else INF for op in ops]
    everything = (1 << n) - 1

    @cache
    def search(placed: int, count: int) -> bool:
        if placed == everything:
            return count == remaining
        waiting = [i for i in range(n) if not placed >> i & 1]
        first_done = min(done[i] for i in waiting)
        for i in waiting:
            if start[i] > first_done:
                continue  # another operation still to place completed before this began
            now = placed | 1 << i
            kind = ops[i].kind
            if kind == "ok":
                if count > 0 and (ids or count == ops[i].seat) and search(now, count - 1):
                    return True
            elif kind == "sold out":
                if count == 0 and search(now, count):
                    return True
            elif kind == "busy":
                if search(now, count):
                    return True
            else:  # info or pending: took one, or had no effect
                if search(now, count) or (count > 0 and search(now, count - 1)):
                    return True
        return False

    return search(0, initial)
