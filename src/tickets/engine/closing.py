"""What a run says of itself at its ends: the stock it began with, in
words; the stock after; and why it could not test the sale, if it could
not (exit 3, see :func:`run_error_of`)."""

from __future__ import annotations

from ..check.events import ERROR_PREFIX, is_error
from ..check.verdict import Report
from ..stores import Store, StoreError
from .config import SaleConfig


def stock_words(tickets: int | None, before: int | None, initial: int) -> str:
    """``as it was: 7``, ``created with 10``, ``restocked 100 → 10``."""
    if tickets is None:
        return f"as it was: {initial:,}"
    if before is None:
        return f"created with {initial:,}"
    return f"restocked {before:,} → {initial:,}"


def stock_elsewhere(source: str, initial: int | None) -> str:
    """What a sale whose stock is not the tool's store says of it."""
    if source == "command":
        return f"read by --stock-cmd: {initial if initial is None else format(initial, ',')}"
    return "unknown: nothing reads it (no --stock-cmd)"


def read_final(store: Store) -> tuple[int | None, str | None]:
    try:
        return store.load(), None
    except StoreError as exc:
        return None, str(exc)
    finally:
        store.close()


def junk_note(config: SaleConfig, junk: int) -> str:
    """What a run whose event pipe got bytes not of the tool says (only the
    buyer code, which runs where the pipe is, can write there)."""
    code = getattr(config, "buy", None) or getattr(config, "command", None)
    who = f"the buyer code ({code})" if code else "a process of the run"
    return (
        f"{who} wrote {junk:,} bytes into the tool's event pipe (a descriptor it "
        "inherited): outcomes they cut through are unknown; don't write to "
        "descriptors your code did not open"
    )


def recorded_error(config: SaleConfig, junk: int, seen: str | None) -> str | None:
    """What kept the run from testing the sale that its history alone
    cannot show (its end line says it): the buyer code wrote into the event
    pipe, or ``seen`` by the ledger: the disk under the store refused the
    buyers' writes (a buyer's error), a buyer reported twice."""
    if junk:
        return junk_note(config, junk)
    if is_error(seen):
        return f"the disk under the store stopped the sale: {seen.removeprefix(ERROR_PREFIX)}"
    return seen


def run_error_of(config: SaleConfig, report: Report, recorded: str | None) -> str | None:
    """Why the run could not test the sale, though nothing it recorded was
    wrong (exit 3): what its end line records (see recorded_error), or no
    buyer could take part because a lock or the store was held by someone
    else past --lock-timeout."""
    if recorded is not None:
        return recorded
    if report.idle is not None and report.held:
        return (
            f"no buyer could take part: a lock or the store stayed held past "
            f"--lock-timeout {config.lock_timeout:g}s by someone else "
            f"({report.held} turned away; the first: {report.first_held}); "
            "wait for it to be let go, or raise --lock-timeout"
        )
    return None
