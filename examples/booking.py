"""Your own purchase code as the buyer: `tickets buy --buy examples/booking.py:take_ticket`.

Each buyer process calls the function once with a store handle. Return the
seat you took (the count you decremented from), or None when sold out;
an exception means the outcome is unknown. The handle offers:

    store.read()        the count              store.write(n)  set it
    store.take()        the store's own take-one (SQLite, Redis): seat or None
    store.lock          the --lock strategy's lock: `with store.lock: ...`
    store.wait()        the run's simulated write delay (the race window)
    store.raw           the JSON path, a sqlite3.Connection, a redis.Redis or a
                        psycopg.Connection (autocommit; store.table, store.key)
    store.kind          "json", "sqlite", "redis" or "postgres";  store.buyer: your number
"""


def take_ticket(store):
    """Correct: the check and the decrement happen under one lock."""
    with store.lock:
        count = store.read()
        if count == 0:
            return None
        store.wait()
        store.write(count - 1)
        return count


def take_ticket_broken(store):
    """Subtly broken: check-then-act. The check is locked, the write is not,
    so two buyers can both see the same count and both sell it."""
    with store.lock:
        count = store.read()
    if count == 0:
        return None
    store.wait()
    store.write(count - 1)
    return count
