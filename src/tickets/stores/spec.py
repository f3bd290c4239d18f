"""``--db``: a path or a URL, parsed once in the parent into a :class:`StoreSpec`.

- ``tickets.json``, ``file:tickets.json``: the JSON file store (the default);
- ``sqlite:sale.db`` (relative), ``sqlite:///srv/sale.db`` or
  ``sqlite:////srv/sale.db`` (absolute): a SQLite database;
- ``redis://[user:password@]host[:port][/db][?key=NAME]``: a key on a Redis
  server (port 6379, database 0 and key ``tickets`` unless given);
- ``postgresql://[user[:password]@][host][:port][/dbname][?table=T&key=K]``
  (or ``postgres://``): a row of a table on a PostgreSQL server (table
  ``tickets_stock`` and key ``tickets`` unless given); a Unix socket's
  folder as ``?host=/path`` with an empty host part, and ``user=``,
  ``password=``, ``port=``, ``dbname=`` as libpq reads them; what the URL
  leaves out libpq's defaults supply (``PGHOST``, ``PGPASSWORD``, ``~/.pgpass``).

A spec is a named tuple of plain values, so it crosses to children as it is
(the launcher gets it as JSON on stdin: the password is never in argv).
Everything that shows a spec shows :attr:`StoreSpec.label`, which hides the
password.
"""

from __future__ import annotations

import os
from collections import namedtuple

from ..constants import DEFAULT_CONNECT_TIMEOUT, TYPE_CHECKING
from ..errors import UsageProblem

if TYPE_CHECKING:
    pass

REDIS_DEFAULT_PORT = 6379
REDIS_DEFAULT_KEY = "tickets"
#: Redis keys a sale uses are the stock key plus a suffix; keep them readable.
MAX_KEY_BYTES = 200
HIDDEN = "***"
#: The URL schemes ``--db`` knows. ``file:`` is a JSON file (the word is a
#: strategy's name too: compared by this name, never as a literal).
FILE_SCHEME = "file"
SCHEMES = (FILE_SCHEME, "sqlite", "redis", "rediss", "postgresql", "postgres")
#: The stores that live on a server: no file of theirs to put a lock beside.
SERVER_KINDS = ("redis", "postgres")


class BadStoreURL(UsageProblem, ValueError):
    """``--db`` is not a path or URL tickets can use (a usage error, exit 2)."""


class StoreSpec(
    namedtuple(
        "StoreSpec",
        "kind path host port db key username password lock_file connect_timeout table",
        defaults=(None, None, None, None, None, None, None, DEFAULT_CONNECT_TIMEOUT, None),
    )
):
    """Where a store is. ``path``: the file of a JSON or SQLite store;
    ``host``/``port``/``db``/``key``/``username``/``password``: a Redis
    key, or (with ``table``) a PostgreSQL row, whose ``db`` is the database's
    name and whose other fields may be None (libpq's defaults);
    ``lock_file``: the file lock's file, when not beside the store."""

    __slots__ = ()
    kind: str
    path: str | None
    host: str | None
    port: int | None
    db: int | str | None
    key: str | None
    username: str | None
    password: str | None
    lock_file: str | None
    connect_timeout: float
    table: str | None

    @property
    def on_server(self) -> bool:
        """Does the store live on a server (no file of its own)?"""
        return self.kind in SERVER_KINDS

    @property
    def label(self) -> str:
        """The store as messages name it: never with its password."""
        if self.kind == "json":
            return str(self.path)
        if self.kind == "sqlite":
            return f"sqlite:{self.path}"
        if self.kind == "postgres":
            return self._pg_url(HIDDEN, with_row=True)
        user = ""
        if self.username or self.password:
            user = f"{self.username or ''}:{HIDDEN}@" if self.password else f"{self.username}@"
        host = f"[{self.host}]" if ":" in str(self.host) else self.host
        return f"redis://{user}{host}:{self.port}/{self.db}?key={self.key}"

    def identity(self) -> str:
        """What the history's ``run`` line names: runs on the same store
        name it the same way (an absolute path; a URL without its password)."""
        if self.kind == "json":
            return os.path.realpath(str(self.path))
        if self.kind == "sqlite":
            return f"sqlite://{os.path.realpath(str(self.path))}"
        return self.label

    def environment(self) -> dict[str, str]:
        """The store as a command buyer is told of it: ``TICKETS_STORE`` (the
        file's absolute path, ``sqlite:///abs``, or the Redis URL with its
        password: in the environment, never in argv or output, and without
        the key, so that ``redis.from_url`` and ``redis-cli -u`` take it),
        ``TICKETS_STORE_KIND``, and ``TICKETS_STORE_PATH`` (a file store's
        path) or ``TICKETS_STORE_KEY`` (the Redis key)."""
        env = {"TICKETS_STORE_KIND": self.kind}
        if self.kind == "postgres":
            return env | {
                "TICKETS_STORE": self._pg_url(None, with_row=False),
                "TICKETS_STORE_TABLE": str(self.table),
                "TICKETS_STORE_KEY": str(self.key),
            }
        if self.kind != "redis":
            path = os.path.realpath(str(self.path))
            return env | {"TICKETS_STORE": self.identity(), "TICKETS_STORE_PATH": path}
        from urllib.parse import quote

        user = ""
        if self.username or self.password:
            user = quote(self.username or "", safe="")
            user += f":{quote(self.password, safe='')}@" if self.password else "@"
        host = f"[{self.host}]" if ":" in str(self.host) else self.host
        url = f"redis://{user}{host}:{self.port}/{self.db}"
        return env | {"TICKETS_STORE": url, "TICKETS_STORE_KEY": str(self.key)}

    def _pg_url(self, hide: str | None, *, with_row: bool) -> str:
        """A PostgreSQL store as a URL libpq reads (``with_row``: and the
        table and key, which it does not); the password as ``hide`` says
        (None: the password itself, for a command buyer's environment)."""
        from urllib.parse import quote

        user = quote(self.username or "", safe="")
        if self.password is not None:
            user += ":" + (hide if hide is not None else quote(self.password, safe=""))
        query = []
        host = self.host or ""
        if host.startswith("/"):  # a socket's folder: a query parameter, as libpq reads it
            query.append("host=" + quote(host, safe="/"))
            host = ""
        elif ":" in host:
            host = f"[{host}]"
        port = f":{self.port}" if self.port else ""
        db = "/" + quote(str(self.db), safe="") if self.db else ""
        if with_row:
            query += [f"table={self.table}", f"key={quote(str(self.key), safe='')}"]
        tail = "?" + "&".join(query) if query else ""
        return f"postgresql://{user + '@' if user else ''}{host}{port}{db or '/'}{tail}"

    @property
    def lock_path(self) -> str:
        """The file that the ``file`` and ``flock`` strategies and the
        parent's store lock take: beside a file store, else ``--lock-file``
        or one in the current folder named after the server and key."""
        if self.lock_file:
            return self.lock_file
        if self.path is not None:
            return self.path + ".lock"
        return os.path.join(state_folder(), self.stem + ".lock")

    @property
    def stem(self) -> str:
        """A file name for things of this store: the store file's without its
        suffix; for a Redis key ``redis-<port>-<db>-<key>``, safe characters only."""
        if self.path is not None:
            name = os.path.basename(self.path)
            return name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
        if self.kind == "postgres":  # the server is in sale_path; names stay short
            parts = (self.db or "", self.table, self.key)
            return "postgres-" + "-".join(safe_name(str(part)) for part in parts)
        return f"redis-{self.port}-{self.db}-{safe_name(str(self.key))}"

    def _pg_name(self) -> str:
        """A PostgreSQL row's server, database, table and key, for a file name."""
        parts = (self.host or "", self.port or "", self.db or "", self.table, self.key)
        return "-".join(safe_name(str(part)) for part in parts)

    @property
    def sale_path(self) -> str:
        """The file a run holds for its whole duration (see tickets.locking.store_claim).
        It is the store's, wherever ``--lock-file`` puts the lock: a run and a
        restock that name one store but different lock files must still meet
        here. Beside a file store; for a Redis key, in the current folder,
        named after the server and the key, in :func:`state_folder`."""
        if self.path is not None:
            return self.path + ".sale"
        if self.kind == "postgres":
            return os.path.join(state_folder(), f"postgres-{self._pg_name()}.sale")
        host = safe_name(str(self.host))
        name = f"redis-{host}-{self.port}-{self.db}-{safe_name(str(self.key))}.sale"
        return os.path.join(state_folder(), name)

    @property
    def folder(self) -> str:
        """Where the store's histories go by default: ``history/`` beside a
        file store, in the current folder for a server."""
        return os.path.dirname(self.path) if self.path is not None else ""


def state_folder() -> str:
    """Where a server store's lock and claim files go, since no file of its
    own is there to put them beside: one folder of this user's on this
    machine, ``$XDG_RUNTIME_DIR/tickets``, else ``$TMPDIR/tickets-UID``
    (``/tmp``), so that runs started from any folder meet in it. Made, and
    checked to be the user's own, before a run uses it (see
    tickets.locking.store_claim.check_lock_path)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(runtime):
        return os.path.join(runtime, "tickets")
    temp = os.environ.get("TMPDIR", "")
    return os.path.join(temp if os.path.isabs(temp) else "/tmp", f"tickets-{os.geteuid()}")


def lock_clash(spec: StoreSpec) -> str | None:
    """Why ``--lock-file`` cannot be the store's lock, or None: it names the
    store itself (replaced at every write, so a lock on it locks a file
    gone), a file SQLite writes beside it, or the run's claim (a second
    lock on it from the same run would wait for itself)."""
    if not spec.lock_file:
        return None
    own = [spec.sale_path]
    if spec.path is not None:
        own += [spec.path + suffix for suffix in ("", "-wal", "-shm", "-journal")]
    lock = os.path.realpath(spec.lock_file)
    for path in own:
        same = os.path.realpath(path) == lock
        if not same and os.path.exists(path) and os.path.exists(lock):
            same = os.path.samefile(path, lock)  # a hard link
        if same:
            return (
                f"{spec.lock_file} is the store's own file ({path}); name a separate "
                "lock file, or leave --lock-file out for <store>.lock"
            )
    return None


def safe_name(text: str, limit: int = 80) -> str:
    """``text`` as part of a file name: letters, digits, ``-`` and ``_`` only."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:limit]


def parse_db(
    text: str | os.PathLike[str],
    *,
    lock_file: str | None = None,
    connect_timeout: float | None = None,
) -> StoreSpec:
    """Parse ``--db``; raise :class:`BadStoreURL` with a message that names
    no password."""
    timeout = DEFAULT_CONNECT_TIMEOUT if connect_timeout is None else connect_timeout
    if isinstance(text, os.PathLike):  # a library caller's Path
        text = os.fspath(text)
    if not isinstance(text, str):
        raise BadStoreURL(f"give a store path or URL as text, not {text!r}")
    if text == "":
        raise BadStoreURL("give a store path or URL, not an empty one")
    if "\0" in text:
        raise BadStoreURL("a store path or URL has no NUL character")
    scheme, sep, rest = text.partition(":")
    if not sep or scheme.lower() not in SCHEMES or "/" in scheme:
        if "://" in text:
            raise BadStoreURL(
                f"{_scheme_only(text)}: unknown kind of store; use a path, file:, sqlite:, "
                "redis:// or postgresql://"
            )
        return StoreSpec("json", text, lock_file=lock_file, connect_timeout=timeout)
    scheme = scheme.lower()
    if scheme == FILE_SCHEME:
        return StoreSpec(
            "json", _file_path(text, rest), lock_file=lock_file, connect_timeout=timeout
        )
    if scheme == "sqlite":
        return StoreSpec(
            "sqlite", _file_path(text, rest), lock_file=lock_file, connect_timeout=timeout
        )
    if scheme in ("postgresql", "postgres"):
        from .pg_url import BadPostgresURL, parse_postgres

        try:
            url = parse_postgres(text)
        except BadPostgresURL as exc:
            raise BadStoreURL(str(exc)) from None
        return StoreSpec(
            "postgres",
            None,
            url.host,
            url.port,
            url.dbname,
            url.key,
            url.user,
            url.password,
            lock_file,
            timeout,
            url.table,
        )
    if scheme == "rediss":
        raise BadStoreURL("rediss:// (TLS) is not supported; use redis:// on a trusted network")
    return _parse_redis(text, lock_file, timeout)


def _scheme_only(text: str) -> str:
    return text.split("://", 1)[0] + "://…"


def _file_path(text: str, rest: str) -> str:
    """``file:x``, ``file:///abs/x``, ``file:////abs/x`` (SQLAlchemy's and
    Django's spelling), ``sqlite:`` the same: a path every later step can
    use, or a usage error now (before a lock file, a claim or a history is
    made). Three slashes before one name (``sqlite:///sale.db``) would be a
    file at the filesystem root, which a SQLAlchemy user means as relative:
    refused, with both spellings offered."""
    kind = text.split(":", 1)[0]
    spellings = f"write {kind}:relative/path, or {kind}:////absolute/path"
    authority = rest.startswith("//")
    if authority:
        host, slash, path = rest[2:].partition("/")
        if host not in ("", "localhost"):
            raise BadStoreURL(f"{kind}://{host}/…: a {kind} store is a local file; {spellings}")
        rest = slash + path
    if "?" in rest or "#" in rest:
        raise BadStoreURL(f"{kind}:…: a file store takes no query or fragment")
    if not rest or rest.endswith("/"):
        raise BadStoreURL(f"{text}: name a file, e.g. {kind}:sale.db")
    from urllib.parse import unquote

    # surrogateescape: %ff names the byte 0xff, as the file system has it
    path = unquote(rest, errors="surrogateescape")
    if authority and path.startswith("//"):  # four slashes: an absolute path
        path = path[1:]
    if path.startswith("//"):  # a share to some readers, /path to Linux, a host to SQLite
        raise BadStoreURL(f"{kind}://///…: too many slashes; {spellings}")
    if authority and not rest.startswith("//") and _at_the_root(path):
        name = os.path.normpath(path).lstrip("/")
        raise BadStoreURL(
            f"{text} would be /{name}, at the filesystem root; for {name} in this "
            f"folder write {kind}:{name}, for an absolute path {kind}:////abs/{name}"
        )
    if "\0" in path:
        raise BadStoreURL(f"{kind}:…: a file name cannot hold a NUL byte (%00)")
    return path


def _at_the_root(path: str) -> bool:
    """Would three slashes put the store at the filesystem root: a file
    right there (``/sale.db``, ``/./sale.db``), or in a folder of the root
    that does not exist (``/shop/sale.db``, which ``init`` would make)? A
    SQLAlchemy user means these as relative paths."""
    parts = os.path.normpath(path).split("/")
    return len(parts) <= 2 or not os.path.isdir("/" + parts[1])


REDIS_FORM = "redis://[USER:PASSWORD@]HOST[:PORT][/DB][?key=NAME]"


def _parse_redis(text: str, lock_file: str | None, timeout: float) -> StoreSpec:
    from urllib.parse import parse_qs, unquote, urlsplit

    if not text.partition(":")[2].startswith("//"):
        raise BadStoreURL(f"a redis URL is {REDIS_FORM}")
    try:
        text.encode()
    except UnicodeEncodeError:  # bytes of another encoding in argv: the server would get others
        raise BadStoreURL(f"redis URL is not UTF-8; write it as {REDIS_FORM}") from None
    try:
        url = urlsplit(text)
        port = url.port
    except ValueError as exc:  # a port out of range or not a number, a bad [IPv6]
        raise BadStoreURL(f"redis URL is malformed ({_scrub(str(exc), text)})") from None
    if port == 0:
        raise BadStoreURL("redis URL names port 0; use 1 to 65535 (default 6379)")
    host = url.hostname or "127.0.0.1"
    _check_host(host)
    if url.fragment:
        raise BadStoreURL("a redis URL takes no #fragment")
    db_text = url.path.lstrip("/") or "0"
    if (
        not (db_text.isascii() and db_text.isdigit())
        or len(db_text) > 9
        or (db_text[0] == "0" and db_text != "0")
    ):
        raise BadStoreURL(
            f"redis URL names database {db_text[:20]!r}; use a number (0 to 15 on a default server)"
        )
    try:
        query = parse_qs(
            url.query, keep_blank_values=True, strict_parsing=bool(url.query), errors="strict"
        )
        username = unquote(url.username, errors="strict") if url.username else None
        password = unquote(url.password, errors="strict") if url.password is not None else None
    except UnicodeDecodeError:
        raise BadStoreURL("redis URL has %-escapes that are not UTF-8") from None
    except ValueError:
        raise BadStoreURL("redis URL has a malformed query; use ?key=NAME") from None
    unknown = sorted(set(query) - {"key"})
    if unknown:
        raise BadStoreURL(f"redis URL has unknown parameter {unknown[0][:20]!r}; only key= is read")
    keys = query.get("key", [REDIS_DEFAULT_KEY])
    key = keys[0]
    if len(keys) > 1 or not key or len(key.encode()) > MAX_KEY_BYTES or not key.isprintable():
        raise BadStoreURL(f"redis URL needs one printable key= of 1 to {MAX_KEY_BYTES} bytes")
    return StoreSpec(
        "redis",
        None,
        host,
        port or REDIS_DEFAULT_PORT,
        int(db_text),
        key,
        username,
        password,
        lock_file,
        timeout,
    )


def _check_host(host: str) -> None:
    """A host name (letters, digits, ``-``, ``_``, dots) or an IP address: what
    else a URL lets through (spaces, %-escapes) names no server."""
    import ipaddress

    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    if len(host) > 253 or not all(
        0 < len(label) <= 63 and all(c.isascii() and (c.isalnum() or c in "-_") for c in label)
        for label in labels
    ):
        raise BadStoreURL(f"redis URL names host {host[:40]!r}; use a host name or an IP address")


def _scrub(message: str, text: str) -> str:
    """A parser's message, without the URL's password if it quotes it."""
    from urllib.parse import urlsplit

    try:
        password = urlsplit(text).password
    except ValueError:
        password = None
    return message.replace(password, HIDDEN) if password else message
