"""Names, limits and exit codes shared by the core, the children and the CLI.

Import-free on purpose: the CLI builds its options from these without
loading the core, so ``tickets --help`` starts as fast as click does, and
forked buyers load nothing more for them.
"""

#: ``typing.TYPE_CHECKING`` for the modules children run, which must not import
#: typing (see tickets.engine.child): type checkers take any name TYPE_CHECKING as true.
TYPE_CHECKING = False

#: The names of the lock strategies, in the order tables show them: they
#: protect a read-modify-write on any store, from outside. Names only, for
#: the command line's choices: a strategy is an object of
#: tickets.locking.strategies, and which a store takes follows from what it can do.
LOCK_STRATEGY_NAMES = ("none", "per-buyer", "process", "file", "flock")
#: The stores (see tickets.stores).
STORE_KINDS = ("json", "sqlite", "redis", "postgres")
#: Every strategy's name, in the order tables show them: the lock strategies,
#: then those that need a store that can do something of its own.
#: PostgreSQL's own come last: the read-modify-write in a transaction at an
#: isolation level, with the row locked, or under an advisory lock.
PG_STRATEGY_NAMES = ("read-committed", "repeatable-read", "serializable", "for-update", "advisory")
STRATEGY_NAMES = (
    LOCK_STRATEGY_NAMES + ("atomic", "transaction", "deferred", "lease") + PG_STRATEGY_NAMES
)
DEFAULT_STRATEGY = "file"
#: How long connecting to a store's server may take (seconds; --connect-timeout).
DEFAULT_CONNECT_TIMEOUT = 2.0
#: A Redis lease's time to live (seconds; --lease-ttl).
DEFAULT_LEASE_TTL = 1.0
#: How long a command buyer (--exec) may run unless --buyer-timeout says (seconds).
DEFAULT_EXEC_TIMEOUT = 20.0
#: The exit code of a command buyer that means "sold out": curl --fail's on an HTTP error.
DEFAULT_SOLD_OUT_EXIT = 22
#: Where a run reads its stock: its store, --stock-cmd, or nowhere (a command
#: buyer's sale with neither: the checks that need the stock do not run).
#: (The word "none" is a strategy's name too: each meaning has its constant.)
UNREAD_STOCK = "none"
STOCK_SOURCES = ("store", "command", UNREAD_STOCK)
#: ``--history none``: no history is kept.
NO_HISTORY = "none"
#: buyers in one sale (on workers); a process each is for up to MAX_PROCESS_BUYERS
MAX_BUYERS = 10_000_000
MAX_PROCESS_BUYERS = 5000
#: Above this many buyers a sale runs them on workers unless --workers says
AUTO_WORKERS_ABOVE = 1000
MAX_WORKERS = 256
#: buyers a worker runs at once (--concurrency)
MAX_CONCURRENCY = 2000
DEFAULT_CONCURRENCY = 64
#: A sale of up to this many buyers keeps a row (and a table line) for each;
#: a bigger one only for those worth a look (tickets.engine.rows)
ROWS_KEPT = 5_000
#: ... and with no simulated delays: nothing to overlap, and more threads
#: of one worker only take turns at the lock and the interpreter
NO_DELAY_CONCURRENCY = 1
#: hosts in one named sale (--hosts)
MAX_HOSTS = 64
MAX_COUNT = 1_000_000_000
DEFAULT_BUYERS = 50
MAX_PRODUCERS = 64
#: producers on worker processes, a thread each (queue --workers)
MAX_WORKER_PRODUCERS = 10_000
MAX_CLERKS = 64
#: orders in one queue run (producers x orders)
MAX_ORDERS = 1_000_000
MAX_QUEUE_SIZE = 100_000
#: a clerk's group commit; its take list must fit one atomic pipe write
MAX_BATCH = 200
DEFAULT_TICKETS = 10
#: --retries: runs of a refused transaction again (PostgreSQL serialization failures)
MAX_RETRIES = 100
DEFAULT_LOCK_TIMEOUT = 10.0
#: The watchdog stops a run when no child has reported for this long.
DEFAULT_STALL_TIMEOUT = 30.0
DEFAULT_STORE = "tickets.json"
STORE_ENV = "TICKETS_DB"

#: The version of every --json document's shape (its ``schema`` field; README).
#: 2: ``passed`` is false for a sale that tested nothing (``nothing_tested``),
#: ``run_error`` (exit 3) and ``turned_away`` are new.
#: 3: ``contention`` (how much the sale raced) and ``uncontended``; a sale in
#: which no two operations overlapped while tickets were left is not passed.
JSON_SCHEMA = 3

# Exit codes: part of the interface (README, --help, tests).
EXIT_OK = 0  # every check passed
EXIT_CHECK_FAILED = 1  # a check failed: oversold, a seat sold twice, stock lost
EXIT_USAGE = 2  # bad flags or arguments (click's own code)
EXIT_STORE = 3  # the store, its lock or a history file could not be used; nothing changed
#              (or, after a run's sale, the store could not be read: a server gone mid-sale)
EXIT_ABORTED = 4  # the run was stopped: watchdog deadline, a clerk died under the join shutdown
EXIT_UNPROVEN = 5  # no check failed, but nothing read the stock: the checks that need it
#                  could not run (a command buyer's sale without --stock-cmd)
EXIT_HANGUP = 129  # SIGHUP: the terminal went away; handled like Ctrl-C
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT)
EXIT_TERMINATED = 143  # SIGTERM (a CI job's timeout, kill): handled like Ctrl-C

EXIT_CODES_HELP = (
    "Exit codes: 0 every check passed; 1 a check failed (oversold); "
    "2 usage error; 3 store, lock or history file unusable (nothing changed; after a sale: "
    "the final stock unreadable, a lock or the store held by someone else so that no buyer "
    "could take part, the buyer code writing into the tool's event pipe); "
    "4 run stopped (watchdog deadline, a clerk died under --shutdown join); "
    "5 not proven (no check failed, but nothing was proven: no stock was read, the store "
    "had no tickets, no buyer completed an attempt, no two purchases overlapped while "
    "tickets were left, an exploration stopped by its budget, or the run was aborted); "
    "129, 130, 143 stopped by SIGHUP, Ctrl-C, SIGTERM (what was sold so far is shown)."
)
