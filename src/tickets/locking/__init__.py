"""How a buyer protects its read-modify-write, and the store's own locks.

- ``strategies``: the ``--lock`` strategies, one class each behind one
  interface, parsed once from their names;
- ``locks``: the buyer locks they build (the process lock, ``filelock``'s
  file lock, the kernel's ``flock``, no lock), one context-manager
  interface (after ``filelock``'s own layout);
- ``store_claim``: the locks the parent takes on a store (around a restock,
  and the ``.sale`` claim held for a whole run).

Buyers run ``strategies`` and ``locks``: the lean-import rule of
:mod:`tickets.engine.child` holds here.
"""
