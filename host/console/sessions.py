"""Console sessions: a random id in an HttpOnly, SameSite=Strict cookie, kept server-side.

Only a digest of the id is stored, with the operator, the credential it signed in under, the
local account whose connection signed in (`host.console.peer`), its CSRF token and its times; a
session ends at sign-out, after `IDLE_S` without use, `MAX_AGE_S` after sign-in however busy,
or when the process stops (and the console closes it when its credential changed, and every
session of its user when the user is no longer an operator: `host.console.signin`). Per process:
a console is served by one host on loopback (`docs/CONSOLE.md`).
"""
from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass

from host.clock import Clock, SystemClock

# Idle time after which a session ends. Guards: a browser left signed in on a shared desk.
IDLE_S = 30 * 60
# Longest a session lives from its sign-in, however busy. Guards: a stolen cookie kept alive by
# use (each request resets the idle clock); the operator signs in again at least once a day's
# work, and then with the password as it is now.
MAX_AGE_S = 8 * 3600
# Sessions kept at once. Guards: memory when sign-ins are scripted (the oldest end first).
MAX_SESSIONS = 1000
COOKIE = "stockade_console"


@dataclass
class Session:
    user_id: str
    username: str
    credential: str  # what `Operators.credential` said at sign-in
    uid: int  # the OS user holding the client end of the sign-in's connection
    csrf: str
    opened: float
    last_seen: float


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


class Sessions:
    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._by_digest: dict[str, Session] = {}

    def open(self, user_id: str, username: str, credential: str, uid: int) -> str:
        """A new session of the local account `uid`; returns the id for the cookie (its only
        copy in clear)."""
        sid = secrets.token_urlsafe(32)
        now = self._clock.monotonic()
        with self._lock:
            if len(self._by_digest) >= MAX_SESSIONS:
                self._by_digest.pop(next(iter(self._by_digest)))
            self._by_digest[_digest(sid)] = Session(user_id, username, credential, uid,
                                                    secrets.token_urlsafe(32), now, now)
        return sid

    def get(self, sid: str | None) -> Session | None:
        """The live session of the id, not counted as used: a request the caller then refuses
        (another local account replaying the cookie) must not keep it from idling out."""
        if not sid or len(sid) > 128:
            return None
        with self._lock:
            s = self._by_digest.get(_digest(sid))
            if s is None:
                return None
            now = self._clock.monotonic()
            if now - s.last_seen > IDLE_S or now - s.opened > MAX_AGE_S:
                del self._by_digest[_digest(sid)]
                return None
            return s

    def used(self, s: Session) -> None:
        """The session served a request of its own operator: its idle clock starts again."""
        with self._lock:
            s.last_seen = self._clock.monotonic()

    def close(self, sid: str | None) -> None:
        if sid:
            with self._lock:
                self._by_digest.pop(_digest(sid), None)

    def close_user(self, user_id: str) -> int:
        """End every session of the user (idempotent); returns how many. A scan of at most
        MAX_SESSIONS entries, made only when a user is found out of the operators."""
        with self._lock:
            gone = [d for d, s in self._by_digest.items() if s.user_id == user_id]
            for d in gone:
                del self._by_digest[d]
        return len(gone)
