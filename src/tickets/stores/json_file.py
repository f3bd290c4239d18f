"""The JSON file store: ``{"count": N}`` (the tutorial's own format), the default.

Loading is strict and never changes the file; saving is atomic (a temp file
with an unpredictable name in the same folder, optional fsync, ``os.replace``,
the file's mode kept). Locking policy lives in :mod:`tickets.locking.locks`.
"""

from __future__ import annotations

import json
import os
import stat

from ..constants import MAX_COUNT, TYPE_CHECKING
from .base import Store, StoreError, read_only_fs, write_error

# Run by buyers: no pathlib, typing or collections.abc at run time (see tickets.engine.child).
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import NoReturn

    from ..json_types import Json
    from .spec import StoreSpec

#: What the functions a buyer calls accept: a Path, or the launcher's plain string.
StorePath = str | os.PathLike[str]

#: A store is a few bytes; anything much larger is not a store.
MAX_STORE_BYTES = 4096
TEMP_SUFFIX = ".tmp"


LOCK_SUFFIX = ".lock"


def lock_path(store: Path) -> Path:
    """The advisory lock file beside the store: ``<store>.lock``."""
    return store.with_name(store.name + LOCK_SUFFIX)


def _reject_duplicates(pairs: list[tuple[str, Json]]) -> dict[str, Json]:
    keys = [k for k, _ in pairs]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise ValueError(f"duplicated key {dupes[0]!r}")
    return dict(pairs)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a ticket count")


# One decoder for every read: json.loads with hooks builds a new one per call,
# which every forked buyer would pay for (see tickets.engine.child).
_DECODER = json.JSONDecoder(object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)


#: The form :func:`dumps` writes (and the tutorial's own file has).
_HEAD = b'{"count": '


def _canonical_count(data: bytes) -> int | None:
    """The count of a store in exactly the form this module writes, else None.

    Every buyer parses the store twice, and a forked child pays for each
    page the JSON decoder's objects touch; this form needs none of them.
    Anything else (other spacing, leading zeros, a sign) is left to the
    strict parser.
    """
    if not data.startswith(_HEAD):
        return None
    digits = data[len(_HEAD) : -2 if data.endswith(b"}\n") else -1]
    if not data.endswith((b"}", b"}\n")) or not digits.isdigit() or len(digits) > 19:
        return None
    if digits[:1] == b"0" and digits != b"0":
        return None  # JSON has no leading zeros: let the strict parser say so
    return int(digits)


def parse(data: bytes, path: str | os.PathLike[str] = "<store>") -> int:
    """Parse a store's bytes strictly and return its count."""
    count = _canonical_count(data)
    if count is not None and count <= MAX_COUNT:
        return count
    fix = "repair it or recreate it with `tickets init`"
    if data.startswith(b"\xef\xbb\xbf"):
        raise StoreError(path, "starts with a byte-order mark, not JSON", fix)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StoreError(path, f"is not UTF-8 (byte {exc.start})", fix) from None
    if not text.strip():
        raise StoreError(path, "is empty", fix)
    try:
        doc = _DECODER.decode(text)
    except RecursionError:
        raise StoreError(path, "is nested too deeply to be a store", fix) from None
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise StoreError(path, f"is not valid store JSON ({exc})", fix) from None
    if not isinstance(doc, dict):
        raise StoreError(path, f'holds a JSON {type(doc).__name__}, not {{"count": N}}', fix)
    if "count" not in doc:
        raise StoreError(path, 'has no "count" key', fix)
    extra = sorted(set(doc) - {"count"})
    if extra:
        raise StoreError(path, f"has unexpected key {extra[0]!r} (a store holds only count)", fix)
    count = doc["count"]
    if isinstance(count, bool) or not isinstance(count, int):
        raise StoreError(path, f"count is {json.dumps(count)}, not a whole number", fix)
    if count < 0:
        raise StoreError(path, f"count is negative ({count})", fix)
    if count > MAX_COUNT:
        raise StoreError(path, f"count {count} is larger than {MAX_COUNT:,}", fix)
    return count


def load(path: StorePath) -> int:
    """Read and strictly parse the store. Never changes the file."""
    try:
        # O_NOFOLLOW: a store that is a symlink is refused, never followed.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise StoreError(path, "no such store", "create it with `tickets init`") from None
    except IsADirectoryError:
        raise StoreError(path, "is a folder, not a store file", "point --db at a file") from None
    except PermissionError:
        raise StoreError(
            path, "cannot be read (permission denied)", "fix its permissions"
        ) from None
    except OSError as exc:
        if os.path.islink(path):
            raise StoreError(path, "is a symbolic link", "point --db at the real file") from None
        if is_special(path):  # a socket cannot even be opened
            raise StoreError(path, "is not a regular file", "point --db at a store file") from None
        raise StoreError(path, f"cannot be opened ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise StoreError(path, "is a folder, not a store file", "point --db at a file")
        if not stat.S_ISREG(info.st_mode):
            raise StoreError(path, "is not a regular file", "point --db at a store file")
        data = os.read(fd, MAX_STORE_BYTES + 1)
    except IsADirectoryError:
        raise StoreError(path, "is a folder, not a store file", "point --db at a file") from None
    finally:
        os.close(fd)
    if len(data) > MAX_STORE_BYTES:
        raise StoreError(
            path,
            f"is larger than {MAX_STORE_BYTES} bytes, not a store",
            "point --db at a store file or recreate it with `tickets init`",
        )
    return parse(data, path)


def is_special(path: StorePath) -> bool:
    """Is there something at ``path`` that is neither a regular file nor a
    folder (a FIFO, a socket, a device)?"""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def dumps(count: int) -> bytes:
    return json.dumps({"count": count}).encode() + b"\n"


def temp_prefix(path: StorePath) -> str:
    return f".{os.path.basename(os.fspath(path))}."


def save(
    path: StorePath,
    count: int,
    *,
    fsync: bool = False,
    before_replace: Callable[[], None] | None = None,
) -> None:
    """Atomically replace the store with ``{"count": count}``, keeping its
    permission bits (never setuid, setgid or sticky), owner and group.

    Readers see the old file or the new one, never a partial write: the data
    goes to a temp file created exclusively (unpredictable name, same folder),
    then ``os.replace`` swaps it in. On any failure the old file is untouched
    and the temp file is removed.
    """
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_COUNT:
        raise ValueError(f"count must be a whole number from 0 to {MAX_COUNT}, got {count!r}")
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    # The writer's pid is in the name so that a later run can tell an orphan
    # (its writer was killed) from a write still in flight.
    tmp = os.path.join(
        folder, f"{temp_prefix(path)}{os.getpid()}.{os.urandom(6).hex()}{TEMP_SUFFIX}"
    )
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:  # no inodes left is ENOSPC here, not a permission
        raise write_error(path, folder, exc, f"cannot write a temp file in {folder}") from None
    try:
        _fill(fd, path, count, fsync)
        if before_replace is not None:  # chaos: a writer killed right here
            before_replace()
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):  # a full disk, an I/O error: the old file stands
            raise write_error(path, folder, exc, "cannot be written") from None
        raise
    if fsync:
        _fsync_folder(folder)


def _fill(fd: int, path: str, count: int, fsync: bool) -> None:
    """Write the new store into the temp file ``fd`` (and close it), with
    the old store's owner, group and permission bits (never setuid, setgid
    or sticky)."""
    try:
        try:
            old: os.stat_result | None = os.lstat(path)
        except FileNotFoundError:
            old = None
        if old is not None and (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
            _keep_owner(fd, (old.st_uid, old.st_gid))
        os.fchmod(fd, 0o644 if old is None else old.st_mode & 0o777)
        os.write(fd, dumps(count))
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _keep_owner(fd: int, owner: tuple[int, int]) -> None:
    """The new file keeps the old one's owner and group where this process may
    give them (root may; others only a group they belong to)."""
    try:
        os.fchown(fd, *owner)
    except PermissionError:
        pass


def _fsync_folder(folder: str) -> None:
    dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def check_writable(path: Path) -> None:
    """Fail early, before anything changes, when a save would fail or should not happen.

    Permission bits are read as well as ``os.access``: as root, access()
    allows everything, but a store or folder its owner made read-only is not
    one to write.
    """
    folder = path.parent
    if not folder.is_dir():
        raise StoreError(path, f"folder {folder} does not exist", "create it first")
    longest = len(os.fsencode(temp_prefix(path))) + len(f"{2**32}.{'0' * 12}{TEMP_SUFFIX}")
    if longest > _name_max(folder):
        raise StoreError(
            path,
            "has too long a name: its temp file's name would not fit the folder",
            f"use a name of at most {_name_max(folder) - longest + len(os.fsencode(path.name))}"
            " bytes",
        )
    if os.path.islink(path):
        raise StoreError(path, "is a symbolic link", "point --db at the real file")
    if path.is_dir():
        raise StoreError(path, "is a folder, not a store file", "point --db at a file")
    folder_mode = os.stat(folder).st_mode
    if not os.access(folder, os.W_OK | os.X_OK) or not folder_mode & stat.S_IWUSR:
        raise read_only_fs(path, str(folder)) or StoreError(
            path,
            f"folder {folder} is read-only",
            "make it writable: the store is replaced atomically there",
        )
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):  # a FIFO, a device, a socket: never replaced
        raise StoreError(path, "is not a regular file", "point --db at a store file")
    if not os.access(path, os.R_OK) or not mode & stat.S_IRUSR:
        raise StoreError(path, "cannot be read (permission denied)", "fix its permissions")
    if not os.access(path, os.W_OK) or not mode & stat.S_IWUSR:
        raise StoreError(path, "is read-only", "make it writable (chmod u+w) to sell from it")


def orphan_temps(path: Path) -> list[Path]:
    """Temp files of this store whose writer process is gone."""
    orphans = []
    prefix = temp_prefix(path)
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    for name in names:
        if not (name.startswith(prefix) and name.endswith(TEMP_SUFFIX)):
            continue
        # Only names save() makes: <pid>.<12 hex digits>, nothing else
        # (a user's .tickets.json.bak.tmp is not ours to delete).
        pid_text, _, token = name[len(prefix) : -len(TEMP_SUFFIX)].partition(".")
        if not (pid_text.isdigit() and len(token) == 12 and _is_hex(token)):
            continue
        if not pid_alive(int(pid_text)):
            orphans.append(path.parent / name)
    return orphans


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def remove_orphan_temps(path: Path) -> int:
    """Delete orphan temp files (call it holding the store lock). Returns how many."""
    removed = 0
    for tmp in orphan_temps(path):
        try:
            os.unlink(tmp)
            removed += 1
        except FileNotFoundError:
            pass
    return removed


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def pid_alive(pid: int) -> bool:
    """Is there a process ``pid`` (someone else's counts)? A zombie is not:
    it has exited and only waits for its parent to notice (a killed writer
    whose parent has not reaped it yet writes nothing more)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            line = f.read()
    except OSError:
        return True
    return line[line.rfind(b")") + 2 :][:1] != b"Z"  # the state follows "(name) "


class JsonFileStore(Store):
    """The JSON file as a :class:`~tickets.stores.base.Store`. Plain string
    paths: buyers run it (no pathlib in a fresh child)."""

    kind = "json"
    sweeps = True

    def __init__(self, spec: StoreSpec) -> None:
        super().__init__(spec)
        self.path = str(spec.path)

    def exists(self) -> bool:
        return os.path.lexists(self.path)

    def check_ready(self) -> None:
        from pathlib import Path  # the parent's: buyers never call it

        check_writable(Path(self.path))

    def load(self) -> int:
        return load(self.path)

    def raw_handle(self) -> str:
        return self.path

    def save(self, count: int, before_write: Callable[[], None] | None = None) -> None:
        save(self.path, count, fsync=self.fsync, before_replace=before_write)

    def cleanup(self) -> int:
        from pathlib import Path

        return remove_orphan_temps(Path(self.path))
