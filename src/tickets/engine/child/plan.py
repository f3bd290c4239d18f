"""What the children of a run share: small immutable plans, and seeded draws.

Named tuples rather than dataclasses: :mod:`collections` is loaded in every
interpreter already, :mod:`dataclasses` loads ``inspect`` and ``ast`` (see
:mod:`tickets.engine.child`). They compare and hash by value, cannot be changed
(``_replace`` makes a new one) and pickle as they are, which the spawn
start method needs.
"""

from __future__ import annotations

from collections import namedtuple

from ...constants import TYPE_CHECKING

if TYPE_CHECKING:
    from ...locking.strategies import Strategy
    from ...stores.spec import StoreSpec


class Delays(namedtuple("Delays", "search write", defaults=(0.020, 0.004))):
    """Simulated network delays in seconds; each buyer draws its own, seeded.

    ``search``: upper bound of the search delay, drawn uniformly from 0;
    ``write``: upper bound of the write delay (the race window), from half of it.
    """

    __slots__ = ()
    search: float
    write: float

    @classmethod
    def none(cls) -> Delays:
        return cls(0.0, 0.0)

    def draw(self, rng: Draws) -> tuple[float, float]:
        return rng.uniform(0, self.search), rng.uniform(self.write / 2, self.write)

    def for_buyer(self, seed: int, buyer: int) -> tuple[float, float]:
        """This buyer's (search, write) delays: the same for the same seed."""
        if not (self.search or self.write):
            return 0.0, 0.0  # --no-delay: no generator to build in every child
        return self.draw(buyer_rng(seed, buyer))


class CommandPlan(
    namedtuple("CommandPlan", "command sold_out timeout ids env kills", defaults=((),))
):
    """A command buyer's (``--exec``): the shell command, the exit code that
    means sold out, the seconds it may run, whether every ticket is an id,
    what its environment adds (the run's id, the store's URL), and a chaos
    run's kills: (buyer, seconds after its start) pairs."""

    __slots__ = ()
    command: str
    sold_out: int
    timeout: float
    ids: bool
    env: dict[str, str]
    kills: tuple[tuple[int, float], ...]


class BuyerPlan(
    namedtuple(
        "BuyerPlan",
        "store strategy seed delays lock_timeout fsync gate_timeout kill_at lease_ttl fencing"
        " pause_at buy log command retries",
        defaults=(False, 120.0, (), 1.0, False, (), None, None, None, 0),
    )
):
    """What every buyer of a run shares (the clerks of a queue run too).

    ``store`` is where the store is (a StoreSpec: plain values);
    ``strategy`` the :class:`~tickets.locking.strategies.Strategy` object
    (a pickle carries its name, and the launcher's orders too: it is the
    same object on the other side);
    ``kill_at`` pairs buyers with the point where a chaos run kills them;
    ``pause_at`` pairs buyers with how long a chaos run pauses them holding
    the lock, after the read and before the write (a lease may expire);
    ``buy`` names the user's function that buys instead of the built-in
    purchase (``FILE.py:FUNC``), ``log`` the file its tracebacks go to;
    ``command`` (a :class:`CommandPlan`) makes every buyer a run of the
    user's command instead (``--exec``; its stderr goes to ``log``);
    ``retries``: how often a transaction the database refused as
    unserializable is run again (``--retries``, PostgreSQL).
    """

    __slots__ = ()
    store: StoreSpec
    strategy: Strategy
    seed: int
    delays: Delays
    lock_timeout: float
    fsync: bool
    gate_timeout: float
    kill_at: tuple[tuple[int, str], ...]
    lease_ttl: float
    fencing: bool
    pause_at: tuple[tuple[int, float], ...]
    buy: str | None
    log: str | None
    command: CommandPlan | None
    retries: int


class OrderPlan(
    namedtuple(
        "OrderPlan",
        "sale orders put_timeout get_timeout shutdown batch kill_at",
        defaults=((),),
    )
):
    """What the producers and clerks of a queue run share.

    ``orders`` per producer; ``put_timeout`` None blocks, 0 is ``put_nowait``;
    ``get_timeout`` None blocks until a sentinel; ``kill_at`` holds
    (clerk, order count after which it dies, kill point).
    """

    __slots__ = ()
    sale: BuyerPlan
    orders: int
    put_timeout: float | None
    get_timeout: float | None
    shutdown: str
    batch: int
    kill_at: tuple[tuple[int, int, str], ...]


_MASK = (1 << 64) - 1


class Draws:
    """A small seeded generator (splitmix64) for the simulated delays.

    Not ``random.Random`` (see :mod:`tickets.engine.child`). The same seed and keys
    give the same draws on every run and platform, whatever PYTHONHASHSEED.
    """

    def __init__(self, seed: int, *keys: int) -> None:
        state = seed & _MASK
        for key in keys:
            state = self._mix((state ^ (key & _MASK)) + 0x9E3779B97F4A7C15)
        self.state = state

    @staticmethod
    def _mix(z: int) -> int:
        z &= _MASK
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def random(self) -> float:
        """A float in [0, 1)."""
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK
        return (self._mix(self.state) >> 11) / float(1 << 53)

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.random()


def buyer_rng(seed: int, buyer: int) -> Draws:
    return Draws(seed, 0, buyer)
