"""The explorer: run, shrink, save and replay (see tickets.engine.explore)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ...check.events import end_line, run_line
from ...check.operations import FORMAT_VERSION
from ...constants import STORE_KINDS
from ...errors import UsageProblem
from ...stores.spec import SERVER_KINDS
from .sale import ExploredSale, SaleSetup, Schedule
from .search import Budget, Outcome, exhaustive, replayed, sampled

if TYPE_CHECKING:
    from ...check.events import RunLine
    from ...locking.strategies import Strategy
    from ...stores.spec import StoreSpec

#: The schedule file's format (docs/explore.md).
SCHEDULE_FORMAT = "tickets-schedule"
SCHEDULE_VERSION = 1
#: The most buyers an exploration runs (the tree grows as n!).
MAX_EXPLORE_BUYERS = 8


@dataclass(frozen=True)
class ExploreConfig:
    store: StoreSpec
    strategy: Strategy
    buy: str | None = None
    buyers: int = 2
    tickets: int = 1
    #: None: no bound on preemptions
    preemptions: int | None = None
    #: PCT: how many schedules to sample (None: exhaustive)
    sample: int | None = None
    seed: int = 0
    depth: int = 2
    retries: int = 2
    max_schedules: int = 100_000
    seconds: float = 60.0
    reduction: bool = True
    lease_ttl: float = 1.0
    fencing: bool = False
    max_steps: int = 200
    #: where the counterexample's history and schedule go (None: history/ beside the store)
    folder: Path | None = None
    shrink: bool = True
    #: the folder the scratch stores go in (None: one made beside the store)
    scratch: str | None = None
    #: names this exploration's Redis scratch keys (``KEY:explore:TOKEN…``)
    token: str = ""

    def setup(self, buyers: int | None = None) -> SaleSetup:
        return SaleSetup(
            self.store,
            self.strategy,
            self.buy,
            self.buyers if buyers is None else buyers,
            self.tickets,
            self.retries,
            self.lease_ttl,
            self.fencing,
            self.max_steps,
            self.scratch,
            self.token,
            min(30.0, max(1.0, self.seconds)),
        )


@dataclass
class Exploration:
    """What ``tickets explore`` found."""

    config: ExploreConfig
    outcome: Outcome
    #: the failing schedule, shrunk; None when none failed
    counterexample: Schedule | None = None
    counterexample_buyers: int = 0
    history: Path | None = None
    schedule_file: Path | None = None
    #: why nothing could be proven, if so (exit 5)
    unproven: str | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    #: why the counterexample's files could not be written (exit 3)
    save_error: str | None = None

    @property
    def passed(self) -> bool:
        return self.counterexample is None and self.outcome.deadlock is None and not self.unproven


def run_explore(config: ExploreConfig) -> Exploration:
    """Explore, shrink what fails, save it; the verdict's material."""
    started = time.monotonic()
    budget = Budget(config.max_schedules, config.seconds)
    sale = ExploredSale(config.setup())
    try:
        if config.sample is not None:
            outcome = sampled(sale, config.sample, config.seed, config.depth, budget)
        else:
            # Sleep sets and a preemption bound do not mix: the one schedule a
            # class keeps may be over the bound while another of it is within.
            reduce = config.reduction and config.preemptions is None
            outcome = exhaustive(sale, config.preemptions, budget, reduction=reduce)
    finally:
        sale.close()
    result = Exploration(config, outcome)
    if outcome.failure is not None:
        found, buyers = outcome.failure, config.buyers
        if config.shrink:
            found, buyers = shrink(config, found, buyers)
        result.counterexample, result.counterexample_buyers = found, buyers
    elif outcome.deadlock is not None:
        result.counterexample, result.counterexample_buyers = outcome.deadlock, config.buyers
    result.unproven = unproven_because(config, outcome)
    if result.counterexample is not None:
        try:
            result.history, result.schedule_file = save(config, result)
        except OSError as exc:  # history/ a file, a FIFO, a full disk: the finding is shown
            result.save_error = f"could not save the schedule and its history: {exc}"
    result.seconds = time.monotonic() - started
    return result


def replay_command(result: Exploration) -> str:
    """The command that replays the saved schedule (a server's store named,
    and the user's buyer code: a schedule that names it replays only with it)."""
    import shlex

    cfg = result.config
    db = f"--db {shlex.quote(cfg.store.label)} " if cfg.store.on_server else ""
    buy = f" --buy {shlex.quote(cfg.buy)}" if cfg.buy is not None else ""
    return f"tickets {db}explore --replay {shlex.quote(str(result.schedule_file))}{buy}"


def unproven_because(config: ExploreConfig, outcome: Outcome) -> str | None:
    """Why a search that found nothing wrong proves nothing, if so."""
    if config.tickets == 0:
        return "the store had no tickets: nobody could buy (give --tickets N)"
    if config.buyers < 2:
        return "one buyer cannot race: explore two or more (--buyers N)"
    if outcome.uncontrolled:
        who = ", ".join(str(b) for b in sorted(outcome.uncontrolled))
        return (
            f"buyer(s) {who} went round the scheduler through store.raw (their own "
            "connection): what they did there could not be ordered, so not every "
            "interleaving was tried"
        )
    if outcome.unseen and outcome.failure is None:
        who = ", ".join(str(b) for b in sorted(outcome.unseen))
        return (
            f"buyer(s) {who} ended without one store operation through the handle they were "
            "given (read, write, take, lock): a stock kept elsewhere (your own database) is "
            "one the explorer can neither see nor order; judge that code by a real sale "
            "with --stock-cmd"
        )
    if not outcome.schedules and outcome.failure is None and outcome.deadlock is None:
        return "no schedule ran to the end: nothing was tested"
    if outcome.budget is not None and outcome.failure is None:
        return f"explored {outcome.schedules:,} schedules, {outcome.budget}"
    if outcome.schedules and not outcome.contended:
        if config.preemptions is not None:
            how = "raise --preemptions"
        elif config.sample is not None:
            how = "sample more"
        else:  # every schedule: each purchase is one indivisible store operation
            how = "each purchase is one store operation: nothing to interleave"
        return (
            f"no schedule run let two buyers' purchases overlap ({how}): "
            "nothing raced, so nothing was tested"
        )
    if config.preemptions == 0 and outcome.failure is None and outcome.deadlock is None:
        return (
            "a preemption bound of 0 never switches away from a buyer that could go on: "
            "no two buyers' steps were interleaved, beyond one waiting at a lock the other "
            "held (raise --preemptions to 1 or more)"
        )
    return None


def shrink(config: ExploreConfig, found: Schedule, buyers: int) -> tuple[Schedule, int]:
    """The smallest failing schedule: fewest buyers, then fewest
    preemptions (each searched depth first, so the first found is short),
    within the exploration's own time limit again at most."""
    deadline = time.monotonic() + min(60.0, config.seconds)
    for n in range(2, buyers + 1):
        for bound in range(0, found.preemptions + 1):
            if n == buyers and bound == found.preemptions:
                return found, buyers
            left = deadline - time.monotonic()
            if left <= 0:
                return found, buyers
            sale = ExploredSale(config.setup(n))
            try:
                small = exhaustive(sale, bound, Budget(20_000, left), reduction=False)
            finally:
                sale.close()
            if small.failure is not None:
                return small.failure, n
    return found, buyers


def save(config: ExploreConfig, result: Exploration) -> tuple[Path, Path]:
    """The counterexample's history and its schedule file, side by side."""
    from ...check.housekeeping import history_folder

    schedule = result.counterexample
    assert schedule is not None
    folder = config.folder or history_folder(config.store)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    what = config.strategy.name if config.buy is None else config.buy.rpartition(":")[2]
    stem = folder / f"{config.store.stem}-{stamp}-explore-{safe(what)}-{os.getpid()}"
    history = stem.with_name(stem.name + ".jsonl")
    schedule_path = stem.with_name(stem.name + ".schedule.json")
    write_history(history, config, result.counterexample_buyers, schedule)
    doc = schedule_doc(config, result.counterexample_buyers, schedule)
    doc["history"] = history.name
    schedule_path.write_text(json.dumps(doc, indent=1) + "\n")
    return history, schedule_path


def safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text)[:40] or "buyer"


def run_line_of(config: ExploreConfig, buyers: int) -> RunLine:
    fields: RunLine = run_line(
        version=FORMAT_VERSION,
        run_id=os.urandom(8).hex(),
        mode="buy",
        store=config.store.identity(),
        store_kind=config.store.kind,
        strategy=config.strategy.name,
        initial=config.tickets,
        restocked=True,
        buyers=buyers,
        seed=0,
        ticket_ids=False,
        explore=True,
        wall=datetime.now(UTC).isoformat(timespec="seconds"),
        t=1.0,
    )
    if config.buy is not None:
        fields["buyer"] = config.buy
    if config.strategy.leases:
        fields["lease_ttl"], fields["fencing"] = config.lease_ttl, config.fencing
    return fields


def write_history(path: Path, config: ExploreConfig, buyers: int, schedule: Schedule) -> None:
    """The schedule's sale as a history ``tickets check`` and ``tickets
    timeline`` read (times are the explorer's logical clock: 1 ms a step)."""
    last = max([1.0, *(float(e.get("t", 1.0)) for e in schedule.events)])  # type: ignore[arg-type]
    end = end_line(
        remaining=schedule.remaining,
        store_error=None,
        aborted=schedule.deadlock,
        run_error=None,
        notes=[],
        t=round(last + 0.001, 6),
    )
    lines = [run_line_of(config, buyers), *schedule.events, end]
    with open(path, "x", encoding="utf-8") as f:
        f.writelines(json.dumps(line) + "\n" for line in lines)


def schedule_doc(config: ExploreConfig, buyers: int, schedule: Schedule) -> dict[str, object]:
    return {
        "format": SCHEDULE_FORMAT,
        "version": SCHEDULE_VERSION,
        "store_kind": config.store.kind,
        "lock": config.strategy.name,
        "buy": config.buy,
        "buyers": buyers,
        "tickets": config.tickets,
        "retries": config.retries,
        "lease_ttl": config.lease_ttl,
        "fencing": config.fencing,
        "steps": schedule.choices,
        "said": [f"buyer {e.step.buyer}: {e.step.kind}: {e.said}" for e in schedule.ran],
        "broke": broke(schedule),
    }


def broke(schedule: Schedule) -> list[str]:
    """What the failing schedule broke, one line each."""
    if schedule.deadlock is not None:
        return [schedule.deadlock]
    report = schedule.report
    if report is None:
        return []
    out = []
    for seat, who in sorted(report.double_sold.items(), key=lambda kv: str(kv[0])):
        out.append(f"seat {seat} sold twice (buyers {' and '.join(who)})")
    out += [f"{c.name}: {c.detail}" for c in report.failures()]
    return out


def replay_config(
    path: Path, store: StoreSpec, buy: str | None
) -> tuple[ExploreConfig, dict[str, object]]:
    """The sale a saved schedule is of, checked, on a scratch store of its
    kind (beside ``store``, a file store's; ``store`` itself, a server's).
    A schedule that names buyer code runs it only when ``buy`` names the
    same (a shared file must not carry code to run unasked)."""
    from ...locking.strategies import get, strategies_for

    doc = read_schedule(path)
    kind = str(doc["store_kind"])
    if kind in SERVER_KINDS and store.kind != kind:
        scheme = "redis" if kind == "redis" else "postgresql"
        raise UsageProblem(
            f"{path}: was found on a {kind} store; give --db {scheme}://… to replay it there"
        )
    if kind not in SERVER_KINDS:  # a scratch file store of the kind it was found on
        folder = store.folder if not store.on_server else "."
        name = "replay.db" if kind == "sqlite" else "replay.json"
        store = store._replace(kind=kind, path=os.path.join(folder, name), lock_file=None)
    saved = doc["buy"]
    if saved is not None and buy != saved:
        raise UsageProblem(
            f"{path}: this schedule runs the buyer code {saved}; give --buy {saved} "
            "to replay it (a schedule file never runs code unasked)"
        )
    if saved is None and buy is not None:
        raise UsageProblem(f"{path}: this schedule is of the built-in buyer; drop --buy")
    strategy = get(str(doc["lock"]))
    if strategy not in strategies_for(kind):
        raise UsageProblem(f"{path}: lock {strategy.name} does not apply to a {kind} store")
    if bool(doc["fencing"]) and not strategy.leases:
        raise UsageProblem(f"{path}: fencing is for the lease lock, not {strategy.name}")
    config = ExploreConfig(
        store=store,
        strategy=strategy,
        buy=buy,
        buyers=int(doc["buyers"]),  # type: ignore[call-overload]
        tickets=int(doc["tickets"]),  # type: ignore[call-overload]
        retries=int(doc["retries"]),  # type: ignore[call-overload]
        lease_ttl=float(doc["lease_ttl"]),  # type: ignore[arg-type]
        fencing=bool(doc["fencing"]),
        folder=path.parent,
    )
    return config, doc


def replay_run(config: ExploreConfig, doc: dict[str, object], path: Path) -> tuple[Schedule, Path]:
    """Run the saved schedule step for step, and save its sale as a history
    beside the schedule's (in the exploration's own process)."""
    sale = ExploredSale(config.setup())
    try:
        schedule = replayed(sale, list(doc["steps"]))  # type: ignore[call-overload]
    finally:
        sale.close()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    history = path.parent / f"{path.name.removesuffix('.schedule.json')}-replay-{stamp}.jsonl"
    write_history(history, config, config.buyers, schedule)
    return schedule, history


def read_schedule(path: Path) -> dict[str, object]:
    """A schedule file, checked field by field (a UsageProblem naming what is wrong)."""
    import stat

    from ...locking.strategies import STRATEGIES

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UsageProblem(f"{path}: no such file") from None
    except OSError as exc:
        raise UsageProblem(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO, a device, a folder
            raise UsageProblem(f"{path}: not a regular file; give a saved .schedule.json")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(1_000_001)
    except OSError as exc:
        raise UsageProblem(f"{path}: cannot be read ({exc.strerror})") from None
    finally:
        os.close(fd)
    if len(data) > 1_000_000:
        raise UsageProblem(f"{path}: over 1 MB, not a schedule file")
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise UsageProblem(f"{path}: not a schedule file ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != SCHEDULE_FORMAT:
        raise UsageProblem(f"{path}: not a tickets schedule file (no format {SCHEDULE_FORMAT!r})")
    if doc.get("version") != SCHEDULE_VERSION:
        raise UsageProblem(f"{path}: schedule version {doc.get('version')!r} is not one this reads")
    buyers = doc.get("buyers")
    if type(buyers) is not int or not 1 <= buyers <= MAX_EXPLORE_BUYERS:
        raise UsageProblem(f"{path}: buyers {buyers!r} is not 1..{MAX_EXPLORE_BUYERS}")
    steps = doc.get("steps")
    if (
        type(steps) is not list
        or len(steps) > 100_000
        or not all(type(s) is int and -buyers <= s < buyers for s in steps)
    ):
        raise UsageProblem(
            f"{path}: steps is not a list of buyer numbers 0..{buyers - 1} "
            f"(or -1..-{buyers}: that buyer's lease expires)"
        )
    for key, kind, low in (
        ("tickets", int, 0),
        ("retries", int, 0),
        ("lease_ttl", (int, float), 0.001),
    ):
        value = doc.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) or not low <= value <= 100_000:
            raise UsageProblem(f"{path}: {key} {value!r} is not a count")
    if doc.get("lock") not in STRATEGIES:
        raise UsageProblem(f"{path}: lock {doc.get('lock')!r} is not a strategy")
    if doc.get("store_kind") not in STORE_KINDS:
        raise UsageProblem(f"{path}: store_kind {doc.get('store_kind')!r} is not a store kind")
    if doc.get("buy") is not None and type(doc.get("buy")) is not str:
        raise UsageProblem(f"{path}: buy {doc.get('buy')!r} is not FILE.py:FUNCTION")
    if type(doc.get("fencing")) is not bool:
        raise UsageProblem(f"{path}: fencing is not true or false")
    return doc
