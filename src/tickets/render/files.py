"""Files the commands write as output (``--svg``, ``--html``), under the
rules the stores and histories keep: regular files only, no symbolic link
followed, written whole through a temp file and ``os.replace``.

A FIFO is never opened (it would block until someone reads it, issue #22)
and a link is never written through (as root, a predictable path in /tmp
would let anyone aim the picture at /etc). No click or rich here: the
error is a :class:`~tickets.stores.base.StoreError`, exit 3 at the CLI.
"""

from __future__ import annotations

import os
import stat

from ..stores.base import StoreError
from ..stores.json_file import TEMP_SUFFIX, temp_prefix

#: Longest "<pid>.<12 hex>.tmp" after the ".<name>." of a temp file.
_TEMP_TAIL = len(f"{2**32}.{'0' * 12}{TEMP_SUFFIX}")
#: The temp files being written now: a command cut short by a signal
#: removes them before it exits (see tickets.cli.errors).
IN_FLIGHT: set[str] = set()


class OutputFileError(StoreError):
    """An output file that cannot be written there. ``str()`` is the one-line message."""


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def check_output_path(path: str, flag: str) -> None:
    """Refuse, before anything is run or written, a path ``flag`` cannot
    write: something other than a regular file there (never followed or
    opened), a missing or read-only folder, a read-only file, a name too
    long for its temp file."""
    other = f"give {flag} another path"
    try:
        mode: int | None = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise OutputFileError(path, f"cannot be reached ({exc.strerror})", other) from None
    if mode is not None and not stat.S_ISREG(mode):
        what = _kind(mode)
        never = "follows" if what == "a symbolic link" else "writes into"
        raise OutputFileError(path, f"is {what}; tickets never {never} one", other)
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise OutputFileError(
            path, f"cannot be written: folder {folder} does not exist", f"create it or {other}"
        )
    folder_mode = os.stat(folder).st_mode
    if not os.access(folder, os.W_OK | os.X_OK) or not folder_mode & stat.S_IWUSR:
        # the bits too: as root access() allows everything
        raise OutputFileError(path, f"cannot be written: folder {folder} is read-only", other)
    if mode is not None and not (mode & stat.S_IWUSR and os.access(path, os.W_OK)):
        raise OutputFileError(path, "is read-only", f"make it writable or {other}")
    if mode is not None and not an_earlier_output(path):
        raise OutputFileError(
            path,
            "is not a report or a picture tickets wrote (a store, a lock, a history, a file "
            "of yours?); tickets replaces only its own",
            f"remove it, or {other}",
        )
    longest = len(os.fsencode(temp_prefix(path))) + _TEMP_TAIL
    if longest > _name_max(folder):
        raise OutputFileError(path, "has too long a name for its temp file", other)


#: What every report and picture the tool writes carries near its top (an
#: XML or HTML comment): the mark of a file it may replace.
OUTPUT_MARK = "made by tickets"
_MARKED = f"<!-- {OUTPUT_MARK}".encode()


def marked(text: str) -> str:
    """``text`` (XML, SVG, HTML) with the tool's mark, after its XML
    declaration, its doctype or its opening ``<svg …>`` tag."""
    comment = f"<!-- {OUTPUT_MARK} -->"
    if text.startswith(("<?xml", "<!DOCTYPE", "<!doctype", "<svg")):
        head, sep, rest = text.partition(">")
        return f"{head}{sep}\n{comment}{rest}" if sep else comment + "\n" + text
    return comment + "\n" + text


def an_earlier_output(path: str) -> bool:
    """Is the regular file at ``path`` a report or picture this tool wrote
    (its mark near the top)? Anything else, even an empty file (a lock, a
    claim) or someone's own ``pom.xml``, ``logo.svg`` or ``index.html``,
    is not replaced."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return True  # gone since: nothing to spare
    except OSError:
        return False
    try:
        head = os.read(fd, 2048)
    except OSError:
        return False
    finally:
        os.close(fd)
    return _MARKED in head


def _name_max(folder: str) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _new_file_mode() -> int:
    """What ``open(path, "w")`` would give a new file: 0666 less the umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def write_output(path: str, text: str, flag: str) -> None:
    """Replace ``path`` with ``text``, whole or not at all.

    The text goes to a temp file created exclusively (``O_EXCL |
    O_NOFOLLOW``, an unpredictable name in the same folder), which
    ``os.replace`` puts in place: a link planted at the path after the
    check is replaced, never followed, and a failure leaves what was there.
    """
    check_output_path(path, flag)
    folder = os.path.dirname(path) or "."
    temp = os.path.join(
        folder, f"{temp_prefix(path)}{os.getpid()}.{os.urandom(6).hex()}{TEMP_SUFFIX}"
    )
    unwritten = f"nothing was written; give {flag} another path"
    try:
        fd = os.open(
            temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
    except OSError as exc:
        raise OutputFileError(
            path, f"cannot be written: no temp file in its folder ({exc.strerror})", unwritten
        ) from None
    IN_FLIGHT.add(temp)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), _new_file_mode())
            f.write(text.encode("utf-8"))
        os.replace(temp, path)
    except BaseException as exc:  # an interrupt too: no temp file is left behind
        try:
            os.unlink(temp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise OutputFileError(path, f"cannot be written ({exc.strerror})", unwritten) from None
        raise
    finally:
        IN_FLIGHT.discard(temp)
