"""The immutable plans children share (Delays, BuyerPlan, OrderPlan, Strategy)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from tickets.engine.child.plan import BuyerPlan, Delays, OrderPlan
from tickets.locking.strategies import STRATEGIES


def plan(**changes: object) -> BuyerPlan:
    base = BuyerPlan(Path("s.json"), "file", 3, Delays(0.01, 0.002), 5.0)
    return base._replace(**changes) if changes else base


def test_plans_compare_hash_and_print_by_value() -> None:
    assert Delays() == Delays(0.020, 0.004) != Delays.none()
    assert hash(Delays(0.1, 0.2)) == hash(Delays(0.1, 0.2))
    assert len({Delays(), Delays(), Delays.none()}) == 2
    assert plan() == plan() and plan() != plan(seed=4)
    assert repr(Delays(0.5, 0.25)) == "Delays(search=0.5, write=0.25)"
    assert "kill_at=()" in repr(plan())
    assert (plan().fsync, plan().gate_timeout) == (False, 120.0)  # the defaults


def test_plans_are_immutable_and_replace_makes_a_new_one() -> None:
    original = plan()
    with pytest.raises(AttributeError):
        original.seed = 9
    changed = original._replace(kill_at=((1, "search"),), fsync=True)
    assert changed.kill_at == ((1, "search"),) and changed.fsync
    assert original.kill_at == () and not original.fsync
    assert changed.store == original.store and changed.delays is original.delays
    with pytest.raises(ValueError, match="colour"):
        original._replace(colour="red")  # type: ignore[call-arg]


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_plans_survive_pickling(protocol: int) -> None:
    """The spawn start method sends the plan to each child as a pickle."""
    orders = OrderPlan(plan(), 5, None, 0.5, "join", 3, ((0, 2, "took"),))
    for record in (Delays(), plan(kill_at=((2, "locked"),)), orders, STRATEGIES["flock"]):
        copy = pickle.loads(pickle.dumps(record, protocol))
        assert copy == record and type(copy) is type(record)


def test_a_plan_crosses_to_the_launcher_whole() -> None:
    """The launcher's orders carry every field of the plan as JSON, and it
    reads back the same plan (a field left out would quietly take its default)."""
    from tickets.engine.child.launcher import orders_doc, read_plan
    from tickets.engine.child.plan import CommandPlan
    from tickets.stores.spec import parse_db

    command = CommandPlan("true", 22, 5.0, True, {"TICKETS_RUN": "r1"}, ((3, 0.5),))
    every = BuyerPlan(
        parse_db("redis://u:pw@h:6380/2?key=k"),
        STRATEGIES["lease"],
        7,
        Delays(0.01, 0.002),
        5.0,
        fsync=True,
        gate_timeout=90.0,
        kill_at=((1, "locked"), (4, "written")),
        lease_ttl=0.25,
        fencing=True,
        pause_at=((2, 0.1),),
        buy="shop.py:take",
        log="/tmp/buyers.log",
        command=command,
    )
    for sent in (plan(store=parse_db("s.json"), strategy=STRATEGIES["file"]), every):
        orders = orders_doc(sent, 10, 3, 4, 5, workers=2, concurrency=8, method="spawn")
        assert set(orders["plan"]) == set(BuyerPlan._fields)
        assert read_plan(json.loads(json.dumps(orders))) == sent
