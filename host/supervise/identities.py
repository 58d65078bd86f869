"""Each install's own uid and gid for its children, when the host runs as root (DESIGN rule 5).

All app children used to run as "nobody": one uid for every app, so an app that escaped
RestrictedPython could signal, limit (prlimit), renice and trace the others, and the kernel
saw nothing wrong. Now each install gets a number of its own, allocated once and kept in
`host.db` (every host sharing the home gives an install's children the same one), and its
children take it (`sandbox.confine.take_identity`) before any app source arrives.

The numbers come from a range nothing else on a normal system uses: above systemd-nspawn's
container ranges (which end at 0x6FFFFFFF) and below systemd's "foreign" range (0x7FFE0000).
No file on the machine belongs to them, and no process but the install's own children runs as
one, so the kernel's permission checks (kill, prlimit, setpriority, ptrace, /proc/<pid>/mem)
refuse every cross-app and app-to-host attempt.
"""
from __future__ import annotations

from pathlib import Path

from host.store import StoreTarget, ensure_schema, open_store
from host.supervise.uidblocks import BLOCK_SIZE, CLAIMS_DIR, hold

# The reserved range (see the module docstring). Guards: an app child sharing a uid with any
# other process, which would let it act on that process with the kernel's blessing.
APP_UID_BASE = 0x70000000
APP_UID_COUNT = 0x0FFE0000

SCHEMA_COMPONENT = "identities"
SCHEMA_VERSION = 1
DDL = (
    "CREATE TABLE IF NOT EXISTS app_identity (install_id TEXT PRIMARY KEY, "
    "uid INTEGER NOT NULL UNIQUE CHECK (uid >= 1879048192 AND uid < 2147352576))",
)


# The blocks homes may hold; the range's last block is never held: `stockade doctor`'s probe
# child runs as its last uid, which no app is given.
BLOCKS = APP_UID_COUNT // BLOCK_SIZE - 1


def _block(uid: int) -> int:
    return (uid - APP_UID_BASE) // BLOCK_SIZE


class IdentityError(RuntimeError):
    """No uid left in the home's block (a home with 65,536 installs)."""


class Identities:
    """Install -> its uid (= gid), allocated on first use and never reused."""

    def __init__(self, db_path: StoreTarget, claims: Path = CLAIMS_DIR) -> None:
        self.store = open_store(db_path)
        ensure_schema(self.store, SCHEMA_COMPONENT, SCHEMA_VERSION, DDL)
        self._claims = claims
        self._held: int | None = None  # the block this process saw its home hold here

    def of(self, install_id: str) -> int:
        """The install's uid, allocating the next free one in the block the home holds on this
        machine (`host.supervise.uidblocks`; one transaction, so two hosts racing for a new
        install agree on one number)."""
        row = self.store.conn().execute(
            "SELECT uid FROM app_identity WHERE install_id=?", (install_id,)).fetchone()
        if row is not None and self._held is not None and _block(int(row[0])) == self._held:
            return int(row[0])
        with self.store.transaction() as c:
            (low,) = c.execute("SELECT MIN(uid) FROM app_identity").fetchone()
            block = hold(self.store.where, None if low is None else _block(int(low)), BLOCKS,
                         self._claims)
            if low is not None and _block(int(low)) != block:
                # Another live home holds this home's block here: every uid moves to the held
                # one together (a whole block's shift: no two rows ever meet).
                c.execute("UPDATE app_identity SET uid = uid + ?",
                          ((block - _block(int(low))) * BLOCK_SIZE,))
            self._held = block
            row = c.execute("SELECT uid FROM app_identity WHERE install_id=?",
                            (install_id,)).fetchone()
            if row is not None:
                return int(row[0])
            (top,) = c.execute("SELECT MAX(uid) FROM app_identity").fetchone()
            uid = APP_UID_BASE + block * BLOCK_SIZE if top is None else int(top) + 1
            if _block(uid) != block:
                raise IdentityError(f"no app uid left in this home's block ({BLOCK_SIZE} "
                                    "installs)")
            c.execute("INSERT INTO app_identity(install_id, uid) VALUES(?, ?)", (install_id, uid))
            return uid

    def close(self) -> None:
        self.store.close()
