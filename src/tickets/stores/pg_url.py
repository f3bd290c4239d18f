"""``--db postgresql://…``: a PostgreSQL store's URL, parsed into a spec.

The URL is libpq's (``postgresql://`` or ``postgres://``)::

    postgresql://[USER[:PASSWORD]@][HOST][:PORT][/DBNAME][?PARAM=VALUE&…]

with two parameters of the tool's own: ``table=`` (the table, default
``tickets_stock``, optionally ``schema.table``) and ``key=`` (the row,
default ``tickets``). Of libpq's parameters ``host=`` (a host name, or a
Unix socket's folder: ``postgresql://postgres@/db?host=/run/pg``, the form
``pgserver`` hands out), ``port=``, ``user=``, ``password=`` and
``dbname=`` are read; any other is refused, never silently dropped. What
the URL leaves out, libpq supplies as it always does (``PGHOST``,
``PGPORT``, ``PGUSER``, ``PGPASSWORD``, ``~/.pgpass``). Several hosts
(``h1,h2``) are refused: a sale sells from one server.
"""

from __future__ import annotations

import re
from collections import namedtuple

PG_DEFAULT_TABLE = "tickets_stock"
PG_DEFAULT_KEY = "tickets"


class BadPostgresURL(ValueError):
    """What is wrong with a PostgreSQL URL (tickets.stores.spec makes it a
    usage error); never quotes the password."""


#: A parsed URL: None where libpq's defaults apply.
PostgresURL = namedtuple("PostgresURL", "host port dbname user password table key")

PG_FORM = "postgresql://[USER[:PASSWORD]@][HOST][:PORT][/DBNAME][?table=T&key=K]"
#: The URL's own parameters (libpq's, the tool reads) and the tool's.
LIBPQ_PARAMS = ("host", "port", "user", "password", "dbname")
OWN_PARAMS = ("table", "key")
#: A table name as the tool writes it unquoted: letters, digits, _ (and a schema).
_NAME = r"[A-Za-z_][A-Za-z0-9_]{0,62}"
TABLE_NAME = re.compile(rf"(?:{_NAME}\.)?{_NAME}")
MAX_KEY_CHARS = 200
#: ``tickets explore`` sells from a scratch table named so, then the run's
#: token and a random part (at most 16 + 12 + 12 characters), dropped after.
SCRATCH_TABLE = "tickets_explore_"


def driver_installed() -> bool:
    """Is psycopg there to import (found, not imported: it costs ~0.1 s)?"""
    import importlib.util

    try:
        return importlib.util.find_spec("psycopg") is not None
    except (ImportError, ValueError):
        return False


DRIVER_MISSING = (
    "a PostgreSQL store needs psycopg 3, which is not installed; "
    "install it with: pip install 'tickets[postgres]'"
)


def parse_postgres(text: str) -> PostgresURL:
    """``text``'s parts, or :class:`BadPostgresURL` saying what is wrong."""
    scheme, _, rest = text.partition(":")
    if not rest.startswith("//"):
        raise BadPostgresURL(f"a PostgreSQL URL is {PG_FORM}")
    try:
        text.encode()
    except UnicodeEncodeError:
        raise BadPostgresURL(f"PostgreSQL URL is not UTF-8; write it as {PG_FORM}") from None
    if "#" in rest:
        raise BadPostgresURL("a PostgreSQL URL takes no #fragment")
    fields, query = _fields(rest[2:])
    host = fields.get("host") or None
    if host is not None:
        _check_host(host)
    table = query.get("table", [PG_DEFAULT_TABLE])[0]
    if not TABLE_NAME.fullmatch(table):
        raise BadPostgresURL(
            f"PostgreSQL URL names table {table[:40]!r}; use letters, digits and _ "
            "(up to 63, not starting with a digit), optionally as schema.table"
        )
    key = query.get("key", [PG_DEFAULT_KEY])[0]
    if not key or len(key) > MAX_KEY_CHARS or not key.isprintable():
        raise BadPostgresURL(
            f"PostgreSQL URL needs one printable key= of 1 to {MAX_KEY_CHARS} chars"
        )
    for name in ("user", "password", "dbname"):
        if "\0" in fields.get(name, ""):
            raise BadPostgresURL(f"PostgreSQL URL's {name} has a NUL character")
    dbname = fields.get("dbname") or None
    if dbname is not None and len(dbname.encode()) > 63:
        raise BadPostgresURL("PostgreSQL URL names a database longer than 63 bytes")
    if not driver_installed():  # the URL is good: what is missing is the driver
        raise BadPostgresURL(DRIVER_MISSING)
    port = _port(fields.get("port") or None)
    user, password = fields.get("user") or None, fields.get("password")
    return PostgresURL(host, port, dbname, user, password, table, key)


def _fields(rest: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The libpq fields of what follows ``//`` (a query parameter wins over
    the URL's part, as in libpq), and the query itself."""
    from urllib.parse import parse_qs, unquote

    rest, _, query_text = rest.partition("?")
    authority, _, path = rest.partition("/")
    userinfo, at, hostport = authority.rpartition("@")
    if not at:
        userinfo, hostport = "", authority
    try:
        query = parse_qs(
            query_text, keep_blank_values=True, strict_parsing=bool(query_text), errors="strict"
        )
        fields = {name: unquote(value, errors="strict") for name, value in _userinfo(userinfo)}
        fields |= _host_port(unquote(hostport, errors="strict"))
        if path:
            fields["dbname"] = unquote(path, errors="strict")
    except UnicodeDecodeError:
        raise BadPostgresURL("PostgreSQL URL has %-escapes that are not UTF-8") from None
    except ValueError:
        raise BadPostgresURL("PostgreSQL URL has a malformed query; use ?table=T&key=K") from None
    if "/" in path:
        raise BadPostgresURL(f"PostgreSQL URL names database {path[:40]!r}; a name has no '/'")
    unknown = sorted(set(query) - set(LIBPQ_PARAMS) - set(OWN_PARAMS))
    if unknown:
        known = ", ".join(f"{name}=" for name in (*OWN_PARAMS, *LIBPQ_PARAMS))
        raise BadPostgresURL(
            f"PostgreSQL URL has parameter {unknown[0][:20]!r}, which tickets does not read; "
            f"it reads {known} (libpq's environment, PGSSLMODE and the like, still applies)"
        )
    for name, values in query.items():
        if len(values) > 1:
            raise BadPostgresURL(f"PostgreSQL URL gives {name}= twice")
        if name in LIBPQ_PARAMS:
            fields[name] = values[0]
    return fields, query


def _userinfo(userinfo: str) -> list[tuple[str, str]]:
    if not userinfo:
        return []
    user, colon, password = userinfo.partition(":")
    return [("user", user), *([("password", password)] if colon else [])]


def _host_port(hostport: str) -> dict[str, str]:
    if "," in hostport:
        raise BadPostgresURL("PostgreSQL URL names several hosts; a sale sells from one server")
    if hostport.startswith("["):  # an IPv6 address
        host, bracket, tail = hostport[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise BadPostgresURL("PostgreSQL URL has a malformed [IPv6] host")
        port = tail[1:]
    else:
        host, _, port = hostport.partition(":")
    found = {"host": host} if host else {}
    return found | ({"port": port} if port else {})


def _port(text: str | None) -> int | None:
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= 65535:
        raise BadPostgresURL(
            f"PostgreSQL URL names port {text[:20]!r}; use 1 to 65535 (default 5432)"
        )
    return int(text)


def _check_host(host: str) -> None:
    """A socket's folder (an absolute path), a host name or an IP address."""
    import ipaddress

    if host.startswith("/"):
        if len(host.encode()) > 90:  # the socket's path must fit sockaddr_un (108 bytes)
            raise BadPostgresURL("PostgreSQL URL's socket folder is too long for a Unix socket")
        return
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
        raise BadPostgresURL(
            f"PostgreSQL URL names host {host[:40]!r}; use a host name, an IP address "
            "or a socket folder (?host=/path)"
        )


def scrub(message: str, password: str | None) -> str:
    """A message without the password, if it quotes it."""
    return message.replace(password, "***") if password else message
