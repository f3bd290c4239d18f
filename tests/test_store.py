from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tickets.stores import json_file as st
from tickets.stores.base import StoreError


def test_round_trip(store: Path) -> None:
    for count in (0, 1, 10, 999_999):
        st.save(store, count)
        assert st.load(store) == count
    assert json.loads(store.read_text()) == {"count": 999_999}


def test_reads_the_tutorials_own_file(tmp_path: Path) -> None:
    # The tutorial writes json.dump({"count": 3}, f) with no newline.
    db = tmp_path / "db.txt"
    db.write_text('{"count": 3}')
    assert st.load(db) == 3


def test_save_keeps_mode_and_leaves_no_temp(store: Path) -> None:
    store.write_text('{"count": 5}')
    os.chmod(store, 0o640)
    st.save(store, 4)
    assert stat.S_IMODE(os.stat(store).st_mode) == 0o640
    assert sorted(p.name for p in store.parent.iterdir()) == ["tickets.json"]


def test_failed_write_keeps_old_file(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store.write_text('{"count": 5}')
    before = store.read_bytes()

    def boom(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(StoreError, match=r"is full \(no space left\)"):
        st.save(store, 4)
    assert store.read_bytes() == before
    assert sorted(p.name for p in store.parent.iterdir()) == ["tickets.json"]


BAD = {
    "empty": b"",
    "whitespace": b"  \n",
    "truncated": b'{"count": 1',
    "list": b"[1, 2]",
    "number": b"7",
    "no count": b'{"tickets": 3}',
    "extra key": b'{"count": 3, "price": 10}',
    "duplicate key": b'{"count": 3, "count": 100}',
    "bool": b'{"count": true}',
    "float": b'{"count": 3.0}',
    "string": b'{"count": "3"}',
    "null": b'{"count": null}',
    "negative": b'{"count": -1}',
    "absurd": b'{"count": 100000000000000000000}',
    "nan": b'{"count": NaN}',
    "infinity": b'{"count": Infinity}',
    "bom": b'\xef\xbb\xbf{"count": 3}',
    "invalid utf-8": b'{"count": 3, "\xff": 1}',
    "deep nesting": b"[" * 2000 + b"]" * 2000,
    "deep and huge": b"[" * 100_000 + b"]" * 100_000,
    "huge": b'{"count": 3}' + b" " * 10_000,
    # Near the form buyers parse on a fast path: all must still be refused.
    "leading zero": b'{"count": 007}',
    "plus sign": b'{"count": +3}',
    "brace twice": b'{"count": 3}}',
    "no digits": b'{"count": }',
    "over the limit": b'{"count": 1000000001}\n',
    "non-ascii digit": '{"count": \u0663}'.encode(),
}


@pytest.mark.parametrize("count", [0, 1, 7, 10, 450, 123_456, 1_000_000_000])
def test_every_spelling_of_a_count_parses_alike(store: Path, count: int) -> None:
    """The fast path for the form we write agrees with the strict JSON parse."""
    spellings = [
        st.dumps(count),
        st.dumps(count).rstrip(),
        st.dumps(count) + b"\n",
        b'{"count":%d}' % count,
        b'  {\n  "count" : %d\n}\n' % count,
        json.dumps({"count": count}, indent=2).encode(),
    ]
    for data in spellings:
        assert st.parse(data) == count == json.loads(data)["count"]
        store.write_bytes(data)
        assert st.load(store) == count


@pytest.mark.parametrize("name", sorted(BAD))
def test_strict_parse_rejects_and_leaves_file_untouched(store: Path, name: str) -> None:
    store.write_bytes(BAD[name])
    with pytest.raises(StoreError) as info:
        st.load(store)
    message = str(info.value)
    assert str(store) in message
    assert "\n" not in message
    assert store.read_bytes() == BAD[name]


def test_missing_folder_and_symlink(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no such store"):
        st.load(tmp_path / "nope.json")
    with pytest.raises(StoreError, match="folder"):
        st.load(tmp_path)
    real = tmp_path / "real.json"
    real.write_text('{"count": 2}')
    link = tmp_path / "link.json"
    link.symlink_to(real)
    with pytest.raises(StoreError, match="symbolic link"):
        st.load(link)
    with pytest.raises(StoreError, match="symbolic link"):
        st.check_writable(link)


def test_error_survives_pickling() -> None:
    import pickle

    err = StoreError("/x/tickets.json", "is empty", "run init")
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) == "/x/tickets.json: is empty; run init"


def test_orphan_temps_of_dead_writers_are_removed(store: Path) -> None:
    st.save(store, 3)
    dead = store.parent / f".{store.name}.999999999.0123456789ab.tmp"
    dead.write_text("{")
    live = store.parent / f".{store.name}.{os.getpid()}.0123456789ab.tmp"
    live.write_text("{")
    assert st.orphan_temps(store) == [dead]
    assert st.remove_orphan_temps(store) == 1
    assert not dead.exists() and live.exists()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown needs root")
def test_a_write_keeps_owner_and_group_and_drops_dangerous_bits(store: Path) -> None:
    """Root used to take a store over (its owner then got 'Permission
    denied'), and a planted 6777 store became a root-owned setuid file."""
    st.save(store, 5)
    os.chown(store, 65534, 65534)
    os.chmod(store, 0o6777)
    st.save(store, 4)
    info = os.stat(store)
    assert (info.st_uid, info.st_gid) == (65534, 65534)
    assert stat.S_IMODE(info.st_mode) == 0o777  # permission bits kept, setuid/setgid gone
    assert st.load(store) == 4


def test_a_write_drops_setuid_setgid_and_sticky_bits(store: Path) -> None:
    st.save(store, 5)
    os.chmod(store, 0o7640)
    st.save(store, 4)
    assert stat.S_IMODE(os.stat(store).st_mode) == 0o640


def test_disk_trouble_survives_pickling_with_its_kind() -> None:
    """A buyer's error crosses to the parent: a full disk stays one."""
    import pickle

    from tickets.stores.base import DISK_FULL, DiskTrouble, disk_kind

    err = DiskTrouble("/x/t.json", "the disk under /x is full (no inodes left)", "free some")
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is DiskTrouble and again.kind == DISK_FULL and str(again) == str(err)
    assert disk_kind(f"error: {again}") == DISK_FULL
    assert disk_kind("error: /x/t.json: cannot be written (Input/output error)") is None
