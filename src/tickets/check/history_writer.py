"""Writing the run's record (see :mod:`tickets.check.history`): a history file
appended to as the run goes, or none at all (``--history none``)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ..engine.child.pipe import compact, cut_reason
from .history import HistoryError

if TYPE_CHECKING:
    from .events import HistoryLine


class HistoryWriter:
    """Appends events to a history file, one line each, as they arrive.

    The file appears under its name only with its first line in it: it is
    written under a hidden temporary name and linked into place at the
    first :meth:`flush`, so a parent killed at any moment never leaves an
    empty history behind (at worst a hidden ``.<name>.<pid>.<hex>.tmp``).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._made_folder = not path.parent.exists()
        if os.path.lexists(path):
            what = _special(path)
            taken = f"is {what}, not a regular file" if what else "already exists"
            raise HistoryError(path, f"{taken}; choose another --history path")
        self._temp: Path | None = path.with_name(
            f".{path.name}.{os.getpid()}.{os.urandom(6).hex()}.tmp"
        )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # "x" (O_EXCL, and so O_NOFOLLOW): a name nobody else has.
            self._file: IO[str] | None = open(self._temp, "x", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            _refuse_folder(path)
            raise HistoryError(path, f"cannot be created ({exc.strerror})") from None
        #: the first failed write, after which nothing more is written
        self.broken: HistoryError | None = None

    def _publish(self) -> None:
        """Give the history its name (never over another file)."""
        temp, self._temp = self._temp, None
        assert temp is not None
        try:
            os.link(temp, self.path)
        except FileExistsError:
            self._temp = temp
            raise HistoryError(self.path, "already exists; choose another --history path") from None
        except OSError:  # a file system without hard links
            if os.path.lexists(self.path):
                self._temp = temp
                raise HistoryError(
                    self.path, "already exists; choose another --history path"
                ) from None
            os.rename(temp, self.path)
            return
        os.unlink(temp)

    def write(self, event: HistoryLine) -> None:
        """Append one event (buffered; see :meth:`flush`)."""
        self.write_line(compact(cut_reason(event)))

    def write_line(self, line: str) -> None:
        """Append an encoded event. After a failed write the history is broken:
        raised once, later writes dropped so the run can still be settled."""
        if self.broken is not None:
            return
        assert self._file is not None, "history already closed"
        try:
            self._file.write(line + "\n")
        except OSError as exc:
            self._fail(exc)

    def flush(self) -> None:
        if self._file is not None and self.broken is None:
            try:
                self._file.flush()
                if self._temp is not None:
                    self._publish()
            except OSError as exc:
                self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        self.broken = HistoryError(self.path, f"cannot be written ({exc.strerror})")
        raise self.broken from None

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:  # what was buffered could not be written
                if self.broken is None:
                    self.broken = HistoryError(self.path, f"cannot be written ({exc.strerror})")
            self._file = None

    def discard(self) -> None:
        """Remove a history whose run never started."""
        self.close()
        try:
            os.unlink(self.path if self._temp is None else self._temp)
            if self._made_folder:
                os.rmdir(self.path.parent)
        except OSError:
            pass


#: What is at a path that is neither a regular file nor a link, in words.
_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _special(path: Path) -> str | None:
    """``a FIFO``, ``a socket``, ... for what is at ``path``; None for a
    regular file or a symbolic link (or nothing)."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None
    return next((what for test, what in _KINDS if test(mode)), None)


def _refuse_folder(path: Path) -> None:
    """The history's folder could not be made: if that is because one of
    its folders is a FIFO, a file or a device, say which (mkdir says only
    "File exists")."""
    for folder in reversed((path.parent, *path.parent.parents)):
        if os.path.lexists(folder) and not folder.is_dir():
            what = _special(folder) or ("a broken link" if folder.is_symlink() else "a file")
            raise HistoryError(folder, f"is {what}, not a folder; choose another --history path")


class NoHistory(HistoryWriter):
    """``--history none``: nothing is written; the run is still checked, in
    memory, from the same events."""

    def __init__(self) -> None:
        self.broken = None

    def write(self, event: HistoryLine) -> None:
        pass  # nothing to encode

    def write_line(self, line: str) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def discard(self) -> None:
        pass
