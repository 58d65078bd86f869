"""Committed events reach subscribers in commit order (`host.server.core.CommitOrder`).

The interleaving that broke it is forced, not waited for: the first writer is held right after
its COMMIT, before its events leave, while a second writer commits and returns.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from srvhelp import Recorder

from host.server import EmbeddedServer
from host.server.principals import SYSTEM


def _room(server: EmbeddedServer) -> tuple[str, str]:
    vid = server.save_visitor("visitor-order-token", "Eve")["id"]
    return vid, server.visitor_start_room(vid)["id"]


def _sent(events: Recorder) -> list[str]:
    return [p["message"]["text"] for n, p in events.events if n == "message.sent"]


def test_a_writer_held_between_commit_and_emit_keeps_its_place(
        server: EmbeddedServer, events: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails before: the second message's event reached the subscriber first."""
    vid, rid = _room(server)
    real = server.db.write
    first_committed, second_returned = threading.Event(), threading.Event()

    @contextmanager
    def write() -> Iterator[Any]:
        with real() as conn:
            yield conn
        if threading.current_thread().name == "first-writer" and not first_committed.is_set():
            first_committed.set()  # committed; its events not handed on yet
            second_returned.wait(5)

    monkeypatch.setattr(server.db, "write", write)
    first = threading.Thread(target=server.visitor_send_message, args=(vid, rid, "first"),
                             name="first-writer")
    first.start()
    assert first_committed.wait(5)
    server.visitor_send_message(vid, rid, "second")  # never waits for the held writer
    second_returned.set()
    first.join(5)
    committed = [m["text"] for m in server.messages_list(SYSTEM, rid)]
    assert committed[-2:] == ["first", "second"]
    assert _sent(events) == ["first", "second"]


def test_a_commit_that_fails_after_its_ticket_holds_up_no_later_event(
        server: EmbeddedServer, events: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write whose COMMIT fails gives its turn up: later writes' events still leave."""
    vid, rid = _room(server)
    real = server.db.write
    fail = [True]

    @contextmanager
    def write() -> Iterator[Any]:
        with real() as conn:
            yield conn
        if fail[0]:
            fail[0] = False
            raise OSError("disk I/O error at COMMIT")

    monkeypatch.setattr(server.db, "write", write)
    with pytest.raises(OSError):
        server.visitor_send_message(vid, rid, "lost")
    server.visitor_send_message(vid, rid, "next")
    assert _sent(events) == ["next"]
