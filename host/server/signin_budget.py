"""The failed sign-in budget, kept in the server's store so every process serving it shares it.

Each REST front, each host on a shared home (SQLite's WAL) or PostgreSQL store (docs/SCALE.md),
and each console reads and writes one table (`sign_in_failures`, server schema 7). Before, each
process kept its own (`auth.Failures`): N processes gave a guesser N times MAX_FAILURES guesses a
window, and a front restarted by its host forgot every block.

An attempt is counted *before* its password is checked (`attempt`), in one write transaction
that also decides the block, so concurrent guesses, in one process or several, can never get
more than MAX_FAILURES checks in a window between them; a sign-in that matches takes its own
attempt back and the account's failures counted before it (`clear`), as before, but never those
counted while its own password was being checked: each row numbers its attempts (`counted`,
server schema 8), and the match keeps the ones numbered after its own.

The table's bounds, and what an attacker can do with it (the properties `auth.Failures` had):

- An account's row (`user_id` set) is never forgotten to make room: there is at most one per
  user, and it goes with the user (ON DELETE CASCADE). So no number of failures for other names
  ever unblocks an account, and none ever blocks one: blocking an account takes MAX_FAILURES
  failed sign-ins *for that account* in one window, each paying a scrypt check. Locking every
  account out costs MAX_FAILURES x accounts failures a window, as one process's table did; the
  per-process table could also be filled with blocked invented names (MAX_FAILURES x
  MAX_TRACKED_NAMES failures), which then refused every account not in it for a window: a full
  shared table refuses no account.
- Names that name no account are counted too (so the answers never tell an account from a name)
  and are bounded: at most MAX_TRACKED_NAMES rows. Room is made by forgetting the least recently
  failed name that is not blocked; only when every remembered name is blocked is the least
  recently failed blocked *name* forgotten (it names no account: no password is reopened to
  guessing). Telling a name from an account that way (block it, push it out, try again) takes a
  table full of blocked names first: MAX_FAILURES x MAX_TRACKED_NAMES failed sign-ins within one
  window (100,000 scrypt checks, ~3 CPU-hours of the servers' time), then MAX_TRACKED_NAMES more
  for each round.
- An account and a name do the same statements in the same order (the row, the count of names,
  its update, the upsert: ~30-45 µs on the test VM, next to ~100 ms of scrypt); only the
  eviction differs, and it runs only when the names are full, for a name's first failure.
  Names are kept as a SHA-256 digest: fixed length, and no character PostgreSQL's text refuses.
"""
from __future__ import annotations

import hashlib
from typing import Any

from host.server.db import Database

# Failed sign-ins per account (or per name that names none) that block it for the rest of the
# window (Rocket.Chat's defaults: 10 attempts, 5 minutes). Guards: online guessing of one
# account's password, in every process serving the store together.
MAX_FAILURES = 10
FAILURE_WINDOW_S = 300.0
# Names that name no account whose failures are remembered at once. Guards: the store's size
# when an attacker cycles through invented names (accounts are bounded by the users themselves).
MAX_TRACKED_NAMES = 10_000


def account_key(user_id: str) -> str:
    """The row of an account (whichever of its names is typed)."""
    return f"a:{user_id}"


def name_key(name: str) -> str:
    """The row of a typed name that names no account; tagged apart from accounts, so a name
    typed to look like an account's key is still only a name."""
    return "n:" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()


def _recent(seen: str, now: float) -> list[float]:
    """The failures of a row still inside the window at `now`, oldest first."""
    return [t for t in (float(x) for x in seen.split()) if t > now - FAILURE_WINDOW_S]


def attempt(db: Database, key: str, user_id: str | None, now: float) -> bool:
    """Count one sign-in attempt for `key` at `now`, unless it is blocked: False (nothing
    counted) when MAX_FAILURES attempts are already in the window (`count`)."""
    return count(db, key, user_id, now) is not None


def count(db: Database, key: str, user_id: str | None, now: float | None) -> int | None:
    """Count one sign-in attempt for `key` at `now`: its number on the row (what `clear` takes
    back up to), or None (nothing counted) when MAX_FAILURES attempts are already in the
    window. One write transaction, so processes and threads racing on one account are counted
    one after another. `now` None: the database server's clock (`auth.check_record` on a
    shared store, whose hosts' clocks may disagree: a host ahead of the others by the window
    saw all their failures as past it)."""
    with db.write() as c:
        if now is None:
            now = float(c.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()[0])
        row = c.execute("SELECT seen, counted FROM sign_in_failures WHERE key = ?",
                        (key,)).fetchone()
        # The names' count, one row (a count(*) over 10,000 names took ~4 ms on the test VM).
        names = int(c.execute("SELECT n FROM sign_in_names WHERE id = 1").fetchone()[0])
        seen = _recent(row[0], now) if row is not None else []
        if len(seen) >= MAX_FAILURES:
            return None
        added = int(row is None and user_id is None)  # a name's first row
        gone = _make_room(c, now) if added and names >= MAX_TRACKED_NAMES else 0
        # Run for every attempt (adding 0 but for a name's first): the same statements whether
        # the name names an account or not.
        c.execute("UPDATE sign_in_names SET n = n + ? WHERE id = 1", (added - gone,))
        seen = [*seen, now][-MAX_FAILURES:]
        until = seen[0] + FAILURE_WINDOW_S if len(seen) >= MAX_FAILURES else 0.0
        number = (int(row[1]) if row is not None else 0) + 1
        c.execute(
            "INSERT INTO sign_in_failures (key, user_id, seen, last_at, blocked_until, counted)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET seen = excluded.seen,"
            " last_at = excluded.last_at, blocked_until = excluded.blocked_until,"
            " counted = excluded.counted",
            (key, user_id, " ".join(repr(t) for t in seen), now, until, number))
        return number


def _make_room(c: Any, now: float) -> int:
    """Forget one name (never an account): the least recently failed one not blocked at `now`,
    else the least recently failed one (see the module docstring). An ordered walk of the names'
    index, at most MAX_TRACKED_NAMES entries, next to a scrypt check per attempt; how many
    names went (0 or 1)."""
    row = c.execute(
        "SELECT key FROM sign_in_failures WHERE user_id IS NULL AND blocked_until <= ?"
        " ORDER BY last_at LIMIT 1", (now,)).fetchone()
    if row is None:
        row = c.execute("SELECT key FROM sign_in_failures WHERE user_id IS NULL"
                        " ORDER BY last_at LIMIT 1").fetchone()
    if row is None:
        return 0
    c.execute("DELETE FROM sign_in_failures WHERE key = ?", (row[0],))
    return 1


def clear(db: Database, key: str, number: int) -> None:
    """A sign-in matched, its attempt counted as `number`: that attempt and its account's
    failures counted before it are forgotten, those counted after it (guesses that raced its
    password check) stay. An account's row only (a name that names no account never matches,
    and its row stays counted in `sign_in_names`); the row is kept, emptied, so its numbers
    never start again (it goes with its user)."""
    with db.write() as c:
        row = c.execute("SELECT seen, counted FROM sign_in_failures"
                        " WHERE key = ? AND user_id IS NOT NULL", (key,)).fetchone()
        if row is None:
            return
        seen = row[0].split()
        after = int(row[1]) - number  # attempts counted since this one, newest last in `seen`
        kept = seen[max(0, len(seen) - after):] if after > 0 else []
        until = float(kept[0]) + FAILURE_WINDOW_S if len(kept) >= MAX_FAILURES else 0.0
        c.execute("UPDATE sign_in_failures SET seen = ?, blocked_until = ? WHERE key = ?",
                  (" ".join(kept), until, key))


def blocked(db: Database, key: str, now: float) -> bool:
    """Whether `key` is blocked at `now` (a read: for tests and tools; sign-ins use `attempt`)."""
    row = db.conn().execute("SELECT seen FROM sign_in_failures WHERE key = ?",
                            (key,)).fetchone()
    return row is not None and len(_recent(row[0], now)) >= MAX_FAILURES
