"""PostgreSQL as the host's store, shared by several hosts (`--store postgresql://…`).

Why these choices:

- One write lock for the whole store, taken as the first statement of every write transaction
  (`pg_advisory_xact_lock(WRITE_LOCK)`), released by COMMIT or ROLLBACK — and by the server when
  a host's connection dies, however it dies. It gives PostgreSQL the guarantee SQLite's `BEGIN
  IMMEDIATE` gives the single-machine store: writers run one at a time, each sees every earlier
  commit (READ COMMITTED takes a fresh snapshot per statement, after the lock), so two hosts
  can never both read "one unit left", and the audit chain's next seq and prev_hash are always
  the head's. Row locks or SERIALIZABLE retries could let unrelated writes overlap; the
  ledger's write is a few index look-ups, so one queue is cheaper than retries and far easier
  to prove (docs/SCALE.md has the measured cost). Reads take no lock. The embedded server's
  tables, when they share the database, have a lock of their own (`SERVER_WRITE_LOCK`), as
  `host.db` and `server.db` have separate locks on one machine: a ledger transaction that
  reads the server (the seats in use) never waits on a server write, and no code path can
  deadlock itself by writing the server while its ledger transaction is open.
- Fencing (several hosts): a serving host's write transactions also check, in the same round
  trip and under the same lock, that its lease row is still in `host_leases` (`PgStore.fence`).
  A survivor that settles a host whose lease it found past its grace deletes that row first,
  then takes and lets go of both write locks (`host.ledger.storelease`): a write the stopped
  host had under way when it froze commits before the survivor reads what was applied, and
  every later one is refused (`Fenced`) instead of applying on a unit the survivor refunded.
- Time is the database server's (`PgConn.began_at`): every write transaction reads
  `clock_timestamp()` in its BEGIN's round trip, after the lock is held, and the ledger times
  quota windows by it (`Store.clock_in`). Each host's own clock would let hosts whose clocks
  disagree admit more than a limit between them (a host 50 s ahead frees a unit 50 s early for
  everyone who reads the ring after it); one clock, read under the one lock, orders every
  charge as the lock does.
- Autocommit connections with explicit BEGIN, exactly like the SQLite store's
  `isolation_level=None`: a read outside a transaction never holds a snapshot open.
- Python booleans are stored as integers (the schema is SQLite's, where they are integers).
- Schemas are never created or upgraded by a starting host: `stockade store migrate` does it,
  and a host whose schema is missing or older refuses to start (`ensure_schema`).
"""
from __future__ import annotations

import re
import select
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import Any, ClassVar

from host.home import redact_url, scrub_url_secrets
from host.store.base import (
    AppendOnly,
    Fenced,
    PgError,
    PgIntegrityError,
    SetOnce,
    Store,
    StoreError,
    UnstorableText,
)
from host.store.dialect import arrange, translate
from host.store.pid import current_pid

# The advisory lock every write transaction takes first (see the module docstring). Any 64-bit
# number unlikely to collide with another application's advisory locks in the same database.
WRITE_LOCK = 0x53544B4445_0001  # "STKDE" 1: the host's state (ledger, installs, ...)
SERVER_WRITE_LOCK = 0x53544B4445_0002  # the embedded server's tables

# How long a connection attempt may take before the store is reported unreachable (s).
CONNECT_TIMEOUT_S = 10
# How long one statement may wait for a lock (ms): the write lock is held for one ledger write,
# so a wait this long means a wedged host; the call then fails instead of hanging the gate.
LOCK_TIMEOUT_MS = 10_000
# How long a host's session may sit idle inside a transaction before the server ends it (ms),
# rolling it back: a host stopped there (SIGSTOP, a debugger, a long pause, on a machine whose
# kernel keeps its sockets alive) held the write lock, and every other host's writes failed
# after `LOCK_TIMEOUT_MS`, for as long as it stayed stopped. Half the lock wait, so a writer
# queued behind it gets the lock before its own wait gives up. A host's transactions run their
# statements back to back (nothing in one waits on the network or a person), so only a stalled
# host meets it, and its call fails closed: nothing of the transaction was written.
IDLE_IN_TRANSACTION_MS = LOCK_TIMEOUT_MS // 2

URL_SCHEMES = ("postgresql", "postgres")

# TCP keepalives on each of the host's sessions, asked of the *server* (its `tcp_keepalives_*`):
# a host whose machine vanished (or whose VM froze) without closing its sockets has its sessions
# ended after about idle + interval * count seconds (10 + 5 * 3 = 25 s), its lease lock and any
# write lock it held with them, so a survivor may settle its calls (`host.ledger.storelease`).
# libpq's `keepalives_*` set them on the host's side only, which notices a dead server, never a
# dead host: the server kept such a session for its own kernel's default (7200 s idle here). A
# host that is only stopped on a live machine keeps its sessions: its kernel answers the probes.
KEEPALIVE_IDLE_S = 10
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_COUNT = 3
KEEPALIVE_SQL = (f"SET tcp_keepalives_idle = {KEEPALIVE_IDLE_S};"
                 f" SET tcp_keepalives_interval = {KEEPALIVE_INTERVAL_S};"
                 f" SET tcp_keepalives_count = {KEEPALIVE_COUNT}").encode()


def is_url(target: object) -> bool:
    """Whether `target` names a PostgreSQL database rather than a SQLite file."""
    return isinstance(target, str) and target.split(":", 1)[0] in URL_SCHEMES


redacted = redact_url  # `url` without its password, for messages and `doctor`


class _Row(tuple[Any, ...]):
    """A row readable by position and by column name, like `sqlite3.Row`."""

    _index: ClassVar[dict[str, int]] = {}

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


_row_classes: dict[tuple[str, ...], type[_Row]] = {}


def _row_factory(cursor: Any) -> Any:
    names = tuple(d.name for d in cursor.description or ())
    cls = _row_classes.get(names)
    if cls is None:
        cls = type("Row", (_Row,), {"_index": {n: i for i, n in enumerate(names)}})
        _row_classes[names] = cls
    return cls


def _wrapped(exc: BaseException) -> BaseException:
    """psycopg's error as the store's (`host.store.base.PgError`), or `exc` itself."""
    import psycopg  # imported already: a connection exists

    if isinstance(exc, psycopg.IntegrityError):
        return PgIntegrityError(str(exc).strip())
    if isinstance(exc, psycopg.DataError) and "NUL" in str(exc):
        return UnstorableText("text must not contain NUL characters (U+0000)")
    if isinstance(exc, psycopg.Error):
        return PgError(str(exc).strip())
    return exc


@contextmanager
def _translated() -> Iterator[None]:
    """The driver's errors raised as the host's (`_wrapped`), anything else as it is. Not on
    `PgConn.execute`'s path, which spells it out: a context manager there costs every
    statement."""
    try:
        yield
    except Exception as exc:
        wrapped = _wrapped(exc)
        if wrapped is exc:
            raise
        raise wrapped from exc


class BrokenAtBegin(PgError):
    """The connection was found broken (its session gone) by the BEGIN of a write transaction,
    before anything of the transaction was sent: safe to begin again on a fresh connection
    (`PgStore.transaction`). A `PgError` to whoever sees it after that one retry."""


# A host's id as it may appear in the fence's statement (`PgStore.fence`): the host's own
# `secrets.token_hex`, or a test's plain name; anything else is refused, never spliced in.
_HOST_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
# The name of the fence's prepared look-up on each session of a fenced store.
_FENCE_STATEMENT = "stockade_fence"


def lone_select(sql: str) -> bool:
    """Whether `sql` is a plain read, which `PgConn.execute` may run once more on a fresh
    session when its own had ended: a statement whose first word is SELECT. Leading whitespace
    is skipped (a triple-quoted statement starts with a newline: `host.ledger.quota`'s
    `_CHARGE_SQL`). A safety check: only a statement that changes nothing may run twice, so
    anything else (a write, a `WITH` that may hold one) is not a read here."""
    return sql.lstrip().startswith("SELECT")


class PgConn:
    """A psycopg connection that speaks the host's portable SQL (`host.store.dialect`)."""

    def __init__(self, raw: Any, store: PgStore) -> None:
        self.raw = raw
        self._store = store  # its write lock and its fence, read at each `begin`
        self._fence_ready: str | None = None  # the host whose fence this session prepared
        #: The database's clock (epoch s) as this connection's open write transaction took the
        #: write lock (`begin`); None before the first. Read only inside that transaction.
        self.began_at: float | None = None

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Any:
        if sql == "BEGIN IMMEDIATE":  # `host.store.immediate` on a shared store
            return self.begin()
        # A read on its own (no transaction open): if the session turns out gone, it is read
        # once more on a new session (`_read_again`).
        lone_read = not self.in_transaction and lone_select(sql)
        try:
            return self._run(sql, parameters)
        except Exception as exc:
            wrapped = _wrapped(exc)
            if wrapped is exc:
                raise
            if lone_read and self.raw.closed:
                return self._read_again(sql, parameters, wrapped)
            raise wrapped from exc

    def _run(self, sql: str, parameters: Sequence[Any]) -> Any:
        if not parameters and "?" not in sql:
            text, _ = translate(sql)
            # No parameters: psycopg does not parse placeholders, so `%` stays single.
            return self.raw.execute(text.replace("%%", "%").encode())
        text, order = translate(sql)
        return self.raw.execute(text.encode(), arrange(order, parameters))

    def _read_again(self, sql: str, parameters: Sequence[Any], failed: BaseException) -> Any:
        """A lone SELECT failed because its session had ended (a restart of the server ends
        every session; the host learns it at the session's next statement). A read outside any
        transaction changes nothing, whether or not it ran, so it runs once more on a session
        opened now; the write transactions' BEGIN does the same (`BrokenAtBegin`). Before, the
        first read on each of a host's connections after a restart failed, raw, to the app.
        Once: a failure on the new session is the caller's. (The host's portable SQL; the lease
        code's advisory-lock SELECTs run on a connection of their own, never through here.)"""
        try:
            self.raw = self._store._open()
        except StoreError:
            raise failed from None  # the server is not back: the first failure says what
        self._fence_ready = None  # prepared on the old session only
        self.began_at = None
        with _translated():
            return self._run(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> Any:
        text, order = translate(sql)
        cur = self.raw.cursor()
        with _translated():
            cur.executemany(text.encode(), [arrange(order, p) for p in parameters])
        return cur

    def begin(self) -> Any:
        """Open a write transaction holding the store's write lock (module docstring), and
        check the fence if this store has one: one round trip, every statement in one simple
        query (the lock is most of a write's wait, and every round trip inside it lengthens
        every other host's). Each statement takes its own snapshot, so the fence's look-up
        runs after the lock is held and sees every commit before it.

        When the lock wait fails (`LOCK_TIMEOUT_MS` behind a wedged host, a cancel, a Ctrl-C)
        the BEGIN has run and the transaction is open and aborted: it is rolled back here,
        whoever called, since no caller's `with` is open yet to do it. Left open, every later
        statement on this thread's pooled connection failed "current transaction is aborted"
        until the process restarted.

        When the session itself is found gone here (`BrokenAtBegin`), nothing of a transaction
        was sent on it: `PgStore.transaction` begins once more on a fresh connection.

        The database's clock, read after the lock is held, is kept as `began_at` (module
        docstring): transactions one after another under the lock read it in their order."""
        store = self._store
        self.began_at = None
        fence = store.fenced_by
        try:
            if fence is not None and self._fence_ready != fence:
                self._prepare_fence(fence)
        except PgError as exc:
            if self.raw.closed:  # the session ended before the transaction began
                raise BrokenAtBegin(str(exc)) from exc
            raise
        try:
            try:  # (the statements need no translation: straight to psycopg)
                cur = self.raw.execute(store.begin_sql)
            except Exception as exc:
                wrapped = _wrapped(exc)
                if wrapped is exc:
                    raise
                if self.raw.closed:
                    # The session was gone (a store restart ended it; the host learns it
                    # only now): whatever of BEGIN the server ran was rolled back with it.
                    raise BrokenAtBegin(str(wrapped)) from exc
                raise wrapped from exc
            # The results of BEGIN and of the lock come first; then the clock's, the fence's.
            cur.nextset()
            cur.nextset()
            self.began_at = float(cur.fetchone()[0])
            if fence is not None:
                cur.nextset()
                row = cur.fetchone()
                if not (row and row[0]):
                    raise Fenced(
                        f"host {fence} no longer holds its lease on the shared store "
                        "(another host found it past its grace and settled its calls): it may "
                        "write nothing more; restart it to serve again")
            return cur
        except BaseException:
            self.abandon()
            raise

    def _prepare_fence(self, host_id: str) -> None:
        """Prepare the fence's look-up on this session, once (`PgStore.fence`): planned once,
        it costs the BEGIN's round trip a few microseconds where a statement parsed and planned
        each time cost tens. Outside any transaction; `host_id` matched `_HOST_ID`."""
        with _translated():
            if self._fence_ready is not None:
                self.raw.execute(f"DEALLOCATE {_FENCE_STATEMENT}".encode())
                self._fence_ready = None
            look_up = f"SELECT EXISTS(SELECT 1 FROM host_leases WHERE host_id = '{host_id}')"  # noqa: S608
            self.raw.execute(f"PREPARE {_FENCE_STATEMENT} AS {look_up}".encode())
        self._fence_ready = host_id

    def abandon(self) -> None:
        """End the transaction open on this connection, if any, for a caller that is raising
        already (its own error must surface, not this one): ROLLBACK, or, when even that
        fails (the connection broke), close the connection so that `PgStore.conn()` opens
        another instead of handing this one out again, still mid-transaction."""
        import psycopg  # imported already: a connection exists

        if self.raw.closed or not self.in_transaction:
            return
        ended = False
        try:
            with suppress(psycopg.Error):
                self.raw.execute(b"ROLLBACK")
                ended = True
        finally:  # also when a Ctrl-C lands in the ROLLBACK: its state is then unknown
            if not ended:
                self.raw.close()

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return bool(self.raw.info.transaction_status != TransactionStatus.IDLE)

    def close(self) -> None:
        self.raw.close()


def _begin_sql(write_lock: int, fence: str | None) -> bytes:
    """A write transaction's first round trip (`PgConn.begin`): BEGIN, the write lock, the
    database's clock once the lock is held, and the fence's prepared look-up if any."""
    # Only an int and a constant statement name are spliced in: no input reaches this text.
    sql = (f"BEGIN; SELECT pg_advisory_xact_lock({int(write_lock)});"  # noqa: S608
           " SELECT extract(epoch FROM clock_timestamp())")
    return (sql + (f"; EXECUTE {fence}" if fence is not None else "")).encode()


class PgStore(Store):
    """Connection factory for one PostgreSQL database (see the module docstring)."""

    dialect = "postgresql"

    def __init__(self, url: str, *, readonly: bool = False, migrating: bool = False,
                 local_dir: Path | None = None, write_lock: int = WRITE_LOCK) -> None:
        if not is_url(url):
            raise StoreError(f"not a PostgreSQL URL: {redacted(url)!r}")
        super().__init__()
        self.url = url
        self.readonly = readonly
        self.local_dir = local_dir
        self.write_lock = write_lock
        #: Only `stockade store migrate` creates or upgrades schemas (module docstring).
        self.migrating = migrating
        #: The host whose lease row every write transaction checks (`fence`); None: none.
        self.fenced_by: str | None = None
        self.begin_sql = _begin_sql(write_lock, None)

    def fence(self, host_id: str) -> None:
        """From now on every write transaction checks, after taking the write lock, that
        `host_id`'s lease row is still there, and is refused (`Fenced`) if not (module
        docstring): a host calls this once its lease is taken. One more statement in the
        BEGIN's round trip, a primary-key look-up. Host ids are never reused (a restart takes
        a new one), so the row's presence is the lease's generation."""
        if not _HOST_ID.fullmatch(host_id):
            # Spliced into the prepared look-up, not a parameter: only a plain id is.
            raise ValueError(f"not a host id: {host_id!r}")
        self.begin_sql = _begin_sql(self.write_lock, _FENCE_STATEMENT)
        self.fenced_by = host_id

    @property
    def where(self) -> str:
        return redacted(self.url)

    def _said(self, exc: BaseException) -> str:
        """The first line of the driver's message about this URL, its secrets masked."""
        said = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return scrub_url_secrets(said, self.url)

    def conn(self) -> PgConn:
        local = self._local
        c: PgConn | None = getattr(local, "conn", None)
        if c is not None and local.pid == current_pid() and not c.raw.closed:
            return c
        adopted: PgConn = self._adopt()
        return adopted

    def _fresh(self) -> PgConn:
        return PgConn(self._open(), self)

    def _replace(self, broken: PgConn) -> PgConn:
        """This thread's connection, found `broken`, closed and replaced by a new one."""
        self._discard(broken)
        c = self._fresh()
        with self._opened_lock:
            self._opened.add(c)
        replaced: PgConn = self._as_threads(c)
        return replaced

    def _usable(self, conn: Any) -> bool:
        """Whether an idle pooled connection may be handed to a thread (`Store._adopt`). A
        session the server ended while it sat idle (a restart ends every session) has the
        server's goodbye, or end of file, waiting on its socket: nothing else arrives unasked
        on an idle session of the host's (it listens to no channel). Found so, it is replaced
        here, before its first statement (a read, with no BEGIN to retry) fails a call."""
        raw = conn.raw
        if raw.closed:
            return False
        poller = select.poll()  # (not select(): a busy host's descriptors pass FD_SETSIZE)
        try:
            poller.register(raw.fileno(), select.POLLIN)
            return not poller.poll(0)
        except (OSError, ValueError):
            return False

    def _open(self) -> Any:
        try:
            import psycopg
            from psycopg.types.numeric import IntDumper
            from psycopg.types.string import TextLoader
        except ImportError as exc:  # pragma: no cover - the extra is part of the test setup
            raise StoreError("PostgreSQL stores need the `postgresql` extra "
                             "(pip install 'stockade[postgresql]')") from exc
        try:
            raw = psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                                  row_factory=_row_factory)
        except psycopg.OperationalError as exc:
            raise StoreError(f"cannot reach the store at {self.where}: "
                             f"{self._said(exc)}") from None
        except psycopg.ProgrammingError as exc:
            # libpq could not parse the URL (a bad percent escape, an unknown parameter, an
            # unclosed bracket): the operator's input. Its message quotes the part it choked
            # on, often the password, sometimes the whole URL (`_said` masks them).
            raise StoreError(f"{self.where} is not a PostgreSQL URL libpq can read: "
                             f"{self._said(exc)}") from None
        raw.adapters.register_dumper(bool, IntDumper)
        for json_type in ("json", "jsonb"):  # JSON comes back as text, as SQLite gives it
            raw.adapters.register_loader(json_type, TextLoader)
        try:
            raw.execute(f"SET lock_timeout = {int(LOCK_TIMEOUT_MS)}".encode())
            raw.execute(KEEPALIVE_SQL)
            raw.execute(f"SET idle_in_transaction_session_timeout = "
                        f"{int(IDLE_IN_TRANSACTION_MS)}".encode())
            if self.readonly:
                raw.execute(b"SET default_transaction_read_only = on")
        except psycopg.Error as exc:
            # The session ended between its connect and its set-up (a server shutting down
            # ends it so): the store is unreachable, as for a failed connect. The driver's own
            # error escaped every caller's store-failure handling, and killed the thread that
            # commits reads' records when it met one during a restart.
            raw.close()
            raise StoreError(f"cannot reach the store at {self.where}: "
                             f"{self._said(exc)}") from None
        return raw

    @contextmanager
    def _transaction(self) -> Iterator[PgConn]:
        # (psycopg's pipeline mode, which sends the statements nobody reads without waiting,
        # was measured here and bought nothing: docs/SCALE.md.)
        c = self.conn()
        try:
            try:
                c.begin()  # inside the `try`: a failed lock wait leaves no transaction open
            except BrokenAtBegin:
                # Its session had ended (a restart of the server ends every session, and each
                # thread's connection and each pooled one learns it at its next statement):
                # nothing of this transaction was sent, so it cannot have applied. Once, on a
                # connection opened now (an idle pooled one may be just as dead); the BEGIN
                # checks the fence again there. Anything failing after the BEGIN is never
                # retried here: it may have applied (the caller's outcome machinery decides).
                c = self._replace(c)
                c.begin()
            yield c
            c.execute("COMMIT")
        except BaseException:
            c.abandon()  # also when COMMIT failed: never a connection left mid-transaction
            raise

    def transaction(self) -> AbstractContextManager[PgConn]:
        return self._transaction()

    def render_guard(self, item: AppendOnly | SetOnce) -> list[str]:
        fn = "stockade_refuse"
        refuse = (f"CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS "
                  "$$ BEGIN RAISE EXCEPTION '%', TG_ARGV[0]; END $$")
        if isinstance(item, SetOnce):
            return [refuse,
                    f"CREATE OR REPLACE TRIGGER {item.name} BEFORE UPDATE OF {item.column} "
                    f"ON {item.table} FOR EACH ROW WHEN (OLD.{item.column} IS NOT NULL) "
                    f"EXECUTE FUNCTION {fn}('{_quote(item.message)}')"]
        if isinstance(item, AppendOnly):
            return [
                refuse,
                f"CREATE OR REPLACE TRIGGER {item.table}_append_only BEFORE UPDATE OR DELETE "
                f"ON {item.table} FOR EACH ROW EXECUTE FUNCTION {fn}('{_quote(item.message)}')",
                f"CREATE OR REPLACE TRIGGER {item.table}_no_truncate BEFORE TRUNCATE "
                f"ON {item.table} FOR EACH STATEMENT EXECUTE FUNCTION {fn}"
                f"('{_quote(item.message)}')",
            ]
        raise TypeError(f"unknown schema item {item!r}")

    def clock_in(self, c: Any) -> float | None:
        return c.began_at if isinstance(c, PgConn) else None

    def has_table(self, name: str) -> bool:
        row = self.conn().execute("SELECT to_regclass(?) IS NOT NULL", (name,)).fetchone()
        return bool(row[0])


def _quote(text: str) -> str:
    return text.replace("'", "''")
