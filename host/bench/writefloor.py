"""The least a bridge create's durable writes can cost on this machine: its SQL alone.

`stockade bench --write-floor` runs this. It answers a question the main figures cannot: how
far below today's `create_us_p50` could any implementation of the same durable work get? Every
statement a create needs runs here with no Python around it: no policy, no validation, no
framing, no records built per call. Only the production hash chain (`append_in`) runs, because
a durable audit record is a chained one. The statements run on this project's own schemas
(`host.db` through `Ledger`, `server.db` through `Database`) in WAL mode with
`synchronous=NORMAL`, as in production.

Two shapes:

- `three_commits`: what a create writes today, in DESIGN rules 8 and 9's order. The admit commits
  first (quota check and ring slot, seat count, decision record, intent), before the server sees the
  call. Then the server's write commits (op look-up, role check, user row, role, custom field, op
  record). Then the outcome commits (intent claimed, outcome record). `admit`, `server_write` and
  `outcome` are its parts.
- `one_commit`: the most compact shape there is. Quota, seat, decision record and the user with
  its role and custom field go in one transaction on one file, with no op record, no intent and
  no outcome. Its order breaks rule 9: the server's write is not behind a durable decision. It
  is measured only as a bound on any redesign.
- `one_tx`: what rule 9's other branch allows when the embedded server's tables live in the
  host's own file: the decision (quota, seat, decision record), the server's write (op look-up,
  role check, user, role, custom field, op record) and the outcome record in one transaction.
  No intent: a crash leaves all of it or none. This is the shape a one-transaction create would
  commit (docs/BENCH.md, "One-transaction create").

`tests/bench/test_bench_writefloor.py` checks that `three_commits` writes to the same tables, row
for row, as a real create through the gate. The floor therefore cannot shrink by leaving work out.
"""
from __future__ import annotations

import itertools
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from host.bench.stats import p50
from host.clock import SystemClock
from host.ledger.audit import append_in, canonical_json
from host.ledger.ledger import Ledger
from host.ledger.quota import _CHARGE_SQL
from host.server.db import Database, new_id

# The JSON keys of `stockade bench --write-floor --json`, in table order (medians, µs), and
# what each one is.
MEANING = {
    "three_commits_us_p50": "a create's writes as today: admit, server write, outcome",
    "admit_us_p50": "quota, seat, decision record, intent; committed before the server call",
    "server_write_us_p50": "op look-up, role check, user, role, custom field, op record",
    "outcome_us_p50": "intent claimed, outcome record",
    "one_commit_us_p50": "everything but the op, intent and outcome in one commit (a bound)",
    "one_tx_us_p50": "decision, server write and outcome in one transaction on one file",
}
KEYS = tuple(MEANING)
# (samples per block, warm-up per block, blocks) for a full and a quick run.
FULL = (3000, 300, 3)
QUICK = (1000, 100, 2)

# A quota as large as the bench policy's (`host/bench/apps.py`), so no sample is a refusal.
RING = 100_000
WINDOW_S = 3600.0
KEY = "install:in_bench:users.create"
OP_PREFIX = "op_"

# A decision record as long as the gate's for a create (fields as `Gate._admit_and_call` fills
# them); built once, since building it is Python work this floor leaves out.
DECISION = canonical_json({
    "kind": "decision", "allowed": True, "code": "allow", "write": True,
    "rules": ["bench-create"], "policy_rev": "0" * 64, "app_id": "benchcreator",
    "install_id": "in_" + "0" * 32, "action": "users.create", "args_digest": "0" * 64,
    "op_id": OP_PREFIX + "0" * 24,
    "quota": [{"key": KEY, "used": 1, "limit": RING, "window_s": WINDOW_S}],
})
OUTCOME = canonical_json({
    "kind": "outcome", "ref_seq": 1, "op_id": OP_PREFIX + "0" * 24, "ok": True, "code": "ok",
    "refunded": False, "app_id": "benchcreator", "install_id": "in_" + "0" * 32,
    "action": "users.create",
})
RESULT = canonical_json({"id": "0" * 17, "username": "u-0", "type": "bot", "roles": ["bot"]})


class Shapes:
    """Both write shapes over fresh stores in `folder` (each call is one create's writes)."""

    def __init__(self, folder: Path) -> None:
        self._n = itertools.count()
        self.host = _host_conn(folder / "host.db")
        self.server = Database(folder / "server.db").conn()
        # One file with both schemas, for the one-commit shape.
        self.one = _host_conn(folder / "one.db")
        Database(folder / "one.db").conn()

    def admit(self, conn: sqlite3.Connection, server: sqlite3.Connection, i: int,
              now: float) -> int:
        # The charge's one read (`quota.reserve_in`): nothing here frees within the window, so
        # the kept count only grows.
        row = conn.execute(_CHARGE_SQL, (RING, KEY)).fetchone()
        head, used = int(row[1]), int(row[3] or 0)
        conn.execute("INSERT INTO quota_slots(key, slot, ts, op) VALUES(?, ?, ?, ?) "
                     "ON CONFLICT(key, slot) DO UPDATE SET ts=excluded.ts, op=excluded.op",
                     (KEY, head, now, f"{OP_PREFIX}{i}"))
        conn.execute("UPDATE quota_keys SET head=?, hw=?, used=?, tw=? WHERE key=?",
                     ((head + 1) % RING, now, min(used + 1, RING), WINDOW_S, KEY))
        # The seat check counts from the truth (`Ledger.admit`): the pending creations here, the
        # server's active app-created users (the count its triggers keep, `app_seats`) and
        # whether the pending ones were applied there.
        pending = [r[0] for r in conn.execute("SELECT op_id FROM audit_intents WHERE seat = 1")]
        server.execute("SELECT n FROM app_seats WHERE id = 1").fetchone()
        for op in pending:
            server.execute("SELECT 1 FROM ops WHERE op_id = ?", (op,)).fetchone()
        return append_in(conn, DECISION, now)

    def server_rows(self, conn: sqlite3.Connection, i: int, now: float) -> None:
        uid = new_id()
        conn.execute("SELECT privileged FROM roles WHERE name = ?", ("bot",)).fetchone()
        conn.execute("INSERT INTO users (id, type, username, username_cf, name, active,"
                     " created_by_app, app_id, created_at) VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?)",
                     (uid, "bot", f"u-{i}", f"u-{i}", "Bench", "benchcreator", None, now))
        conn.execute("INSERT INTO user_roles (user_id, role) VALUES (?, ?)", (uid, "bot"))
        conn.execute("INSERT INTO user_custom_fields (user_id, key, value) VALUES (?, ?, ?)",
                     (uid, "externalId", f"ext-{i}"))

    def three_commits(self) -> tuple[int, int, int]:
        """One create as today; returns the three parts' durations in ns."""
        i = next(self._n)
        op = f"{OP_PREFIX}{i}"
        t0 = time.perf_counter_ns()
        now = time.time()
        with _tx(self.host) as c:
            seq = self.admit(c, self.server, i, now)
            c.execute("INSERT INTO audit_intents(seq, op_id, ts, app_id, install_id, action,"
                      " write, keys, seat) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      (seq, op, now, "benchcreator", "in_bench", "users.create", 1,
                       f'["{KEY}"]', 1))
        t1 = time.perf_counter_ns()
        with _tx(self.server) as c:
            c.execute("SELECT action, args_digest, result FROM ops WHERE op_id = ?",
                      (op,)).fetchone()
            self.server_rows(c, i, now)
            c.execute("INSERT INTO ops (op_id, action, app_id, install_id, args_digest, result,"
                      " applied_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (op, "users.create", "benchcreator", "in_bench", "0" * 64, RESULT, now))
        t2 = time.perf_counter_ns()
        with _tx(self.host) as c:
            c.execute("DELETE FROM audit_intents WHERE seq=? RETURNING op_id, app_id,"
                      " install_id, action, keys, seat", (seq,)).fetchall()
            append_in(c, OUTCOME, now)
        return t1 - t0, t2 - t1, time.perf_counter_ns() - t2

    def one_tx(self) -> int:
        """Rule 9's one-transaction create on one file (see the module docstring), in ns."""
        i = next(self._n)
        op = f"{OP_PREFIX}{i}"
        t0 = time.perf_counter_ns()
        now = time.time()
        with _tx(self.one) as c:
            self.admit(c, c, i, now)
            c.execute("SELECT action, args_digest, result FROM ops WHERE op_id = ?",
                      (op,)).fetchone()
            self.server_rows(c, i, now)
            c.execute("INSERT INTO ops (op_id, action, app_id, install_id, args_digest, result,"
                      " applied_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (op, "users.create", "benchcreator", "in_bench", "0" * 64, RESULT, now))
            append_in(c, OUTCOME, now)
        return time.perf_counter_ns() - t0

    def one_commit(self) -> int:
        """The most compact create (see the module docstring); its duration in ns."""
        i = next(self._n)
        t0 = time.perf_counter_ns()
        now = time.time()
        with _tx(self.one) as c:
            self.admit(c, c, i, now)
            self.server_rows(c, i, now)
        return time.perf_counter_ns() - t0


def measure_write_floor(samples: int, warmup: int, rounds: int,
                        on_progress: Callable[[], None] | None = None) -> dict[str, float]:
    """Median µs of each shape (and of the three parts): `rounds` blocks of `samples` each,
    alternating shapes, and the lowest block median is the figure. A floor errs low this way,
    which is the safe side for an argument that a target lies below it."""
    tick = on_progress or (lambda: None)
    best = dict.fromkeys(KEYS, float("inf"))
    with tempfile.TemporaryDirectory(prefix="stockade-writefloor-") as tmp:
        shapes = Shapes(Path(tmp))
        for _ in range(rounds):
            runs = [shapes.three_commits() for _ in range(warmup + samples)][warmup:]
            parts = [[ns[k] / 1000 for ns in runs] for k in range(3)]
            block = (p50([sum(ns) / 1000 for ns in runs]), *map(p50, parts))
            tick()
            ones = [shapes.one_commit() / 1000 for _ in range(warmup + samples)][warmup:]
            txs = [shapes.one_tx() / 1000 for _ in range(warmup + samples)][warmup:]
            tick()
            for key, value in zip(KEYS, (*block, p50(ones), p50(txs)), strict=True):
                best[key] = min(best[key], value)
    return {k: round(v, 3) for k, v in best.items()}


def _host_conn(path: Path) -> sqlite3.Connection:
    ledger = Ledger(path, SystemClock())
    ledger.quota_state(KEY, RING, WINDOW_S)  # creates the quota and audit schema
    conn: sqlite3.Connection = ledger.store.conn()
    with _tx(conn) as c:
        c.execute("INSERT INTO quota_keys(key, cap, head, hw) VALUES(?, ?, 0, 0)", (KEY, RING))
    return conn


@contextmanager
def _tx(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
