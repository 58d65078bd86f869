"""Assume escape: no two apps' children share a network namespace (DESIGN rule 5).

The finding: the zygote entered one network namespace and forked every app's child into it, so
all apps met there. Empty of interfaces, it still carries what needs none: a NETLINK_USERSOCK
socket takes a datagram from any other socket of its namespace by port number, with no uid
check, and neither Landlock nor the namespaces per child (PID, IPC) stand in the way. With the
seccomp filter left out and every other layer applied, one app's child sent another app's child
a message, a channel between apps with no gate and no audit (the IPC namespace was made per
child for the same reason). Now each child enters a network namespace of its own before its
last layers (`confine.confine_early`); the zygote's stays as the empty default every child
starts from and, on a host that is not root, as the user namespace that allows the child's.

Shown with real zygote children of two apps (their own uids when the test is root): the kernel's
view of their namespaces, and the netlink message with the filter left out (`escapezygote`).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from escapezygote import escaped_spawner, run_escaped, start_app

from host.supervise.child import Child
from host.supervise.identities import APP_UID_BASE

APP_UIDS = (APP_UID_BASE + 0xFE70, APP_UID_BASE + 0xFE71)
NETLINK_USERSOCK = 2
PORT = 0x5EC0  # the receiving app's netlink port

BIND = f'''
socket = sys.modules["socket"]
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, {NETLINK_USERSOCK})
s.bind(({PORT}, 0))
sys.modules["builtins"].held = s  # kept for the next snippet
raise Exception("REPORT " + repr("bound"))
'''

SEND = f'''
socket = sys.modules["socket"]
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, {NETLINK_USERSOCK})
body = b"from the other app"
header = (16 + len(body)).to_bytes(4, "little") + (0x10).to_bytes(2, "little") + bytes(10)
try:
    s.sendto(header + body, ({PORT}, 0))
    outcome = "sent"
except OSError as exc:
    outcome = "refused: " + str(exc.strerror)
raise Exception("REPORT " + repr(outcome))
'''

RECEIVE = '''
socket = sys.modules["socket"]
try:
    got = sys.modules["builtins"].held.recv(256, socket.MSG_DONTWAIT)[16:].decode()
except BlockingIOError:
    got = None
raise Exception("REPORT " + repr(got))
'''


def test_two_apps_children_have_network_namespaces_of_their_own(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    spawner = escaped_spawner(monkeypatch, tmp_path)
    kids: list[Child] = []
    try:
        kids = [start_app(spawner, uid) for uid in APP_UIDS]
        a, b = (os.readlink(f"/proc/{kid.pid}/ns/net") for kid in kids)
        host = os.readlink("/proc/self/ns/net")
        assert a != host and b != host
        assert a != b, f"two apps' children share one network namespace ({a})"
    finally:
        for kid in kids:
            kid.shutdown(0.5)
        spawner.close()


def test_one_app_cannot_message_another_over_netlink_without_the_filter(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    spawner = escaped_spawner(monkeypatch, tmp_path, filter_off=True)
    kids: list[Child] = []
    try:
        kids = [start_app(spawner, uid, degraded=True) for uid in APP_UIDS]
        receiver, sender = kids
        assert receiver.missing_layers == sender.missing_layers == ("seccomp",)
        assert run_escaped(receiver, BIND) == "bound"
        sent = run_escaped(sender, SEND)
        got = run_escaped(receiver, RECEIVE)
        assert got is None, f"one app's child reached another's over netlink ({sent}): {got!r}"
    finally:
        for kid in kids:
            kid.shutdown(0.5)
        spawner.close()
