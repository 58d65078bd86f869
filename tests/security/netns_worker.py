"""Run by tests/security/test_child_holds_no_capability.py, as root or as an unprivileged user.

`python netns_worker.py` plays a zygote exactly as `sandbox/zygote.py` makes one: a network
namespace of its own (inside a user namespace when not root, `confine.unshare_network`), then
two app children, each process 1 of a PID namespace of its own and confined by
`confine.confine` with every layer but the seccomp filter (Landlock stays: it does not cover
UDP). The receiver brings the loopback interface up and binds a UDP port; once it says so, the
sender sends it a datagram. The worker prints what each step gave: two apps talking through
their shared network namespace, with no gate and no audit, unless the kernel refuses.

Ordered through the children's own channels (the receiver reports "bound" before the sender is
told to send), so nothing depends on timing.
"""
from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import struct
import sys

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
PORT = 47_913
MESSAGE = b"between apps"


def _lo_up() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            req = fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH14x", b"lo", 0))
            flags = struct.unpack("16sH14x", req)[1]
            fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
        except OSError as exc:
            return f"refused: {exc.strerror}"
    return "done"


def _child(role: str, chan_in: int, chan_out: int, zygote: int) -> None:
    from sandbox import confine, seccomp

    seccomp.install = lambda _pid: None  # type: ignore[assignment]  # the wall left out
    _err_r, err_w = os.pipe()
    rep = confine.confine(chan_in=chan_in, chan_out=chan_out, err_fd=err_w,
                          parent_pid=zygote, limits=confine.Limits(), netns_done=True)
    out: dict[str, object] = {"landlock": rep.landlock, "pidns": rep.pidns, "lo up": _lo_up()}
    try:
        if role == "receiver":
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", PORT))
                os.write(confine.CHANNEL_OUT_FD, (json.dumps({**out, "bound": True}) + "\n").encode())
                s.settimeout(10.0)
                out["received"] = s.recv(64).decode()
        else:
            os.read(confine.CHANNEL_IN_FD, 1)  # the receiver is bound
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(MESSAGE, ("127.0.0.1", PORT))
                out["sent"] = True
    except OSError as exc:
        out["error"] = f"{type(exc).__name__}: {exc.strerror}"
    os.write(confine.CHANNEL_OUT_FD, (json.dumps(out) + "\n").encode())
    os._exit(0)


def _zygote() -> dict[str, object]:
    from sandbox import confine

    if not confine.unshare_network():
        return {"error": "no network namespace"}
    me = os.getpid()
    kids: dict[str, tuple[int, int, int]] = {}  # role -> (pid, write to it, read from it)
    for role in ("receiver", "sender"):
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        pid = confine.fork_in_own_pid_namespace()
        if pid == 0:
            _child(role, to_r, from_w, me)
        if pid < 0:
            return {"error": "no pid namespace"}
        os.close(to_r)
        os.close(from_w)
        kids[role] = (pid, to_w, from_r)
    receiver = os.fdopen(kids["receiver"][2], "rb")
    sender = os.fdopen(kids["sender"][2], "rb")
    results: dict[str, object] = {}
    first = json.loads(receiver.readline() or b"{}")
    if first.get("bound"):
        os.write(kids["sender"][1], b"g")
        results["sender"] = sent = json.loads(sender.readline() or b"{}")
        if not sent.get("sent"):  # nothing is coming: no need to wait for the receive's end
            os.kill(kids["receiver"][0], signal.SIGKILL)
        results["receiver"] = {**first, **json.loads(receiver.readline() or b"{}")}
    else:
        results["receiver"] = first
        os.write(kids["sender"][1], b"g")
        results["sender"] = json.loads(sender.readline() or b"{}")
    for pid, _w, _r in kids.values():
        os.waitpid(pid, 0)
    return results


def main() -> None:
    out_r, out_w = os.pipe()
    zygote = os.fork()
    if zygote == 0:
        os.close(out_r)
        try:
            data = json.dumps(_zygote()).encode()
        except BaseException as exc:  # reported to the test, never raised
            data = json.dumps({"error": repr(exc)}).encode()
        os.write(out_w, data)
        os._exit(0)
    os.close(out_w)
    data = b""
    while chunk := os.read(out_r, 4096):
        data += chunk
    os.waitpid(zygote, 0)
    print(json.dumps({"euid": os.geteuid(), **(json.loads(data) if data else {})}))


if __name__ == "__main__":
    sys.exit(main())
