"""Real zygote children whose snippets have escaped RestrictedPython (DESIGN rule 5).

`escaped_spawner` starts a real `Spawner` whose zygote is `sandbox.zygote` exactly as in
production, except that an Exec frame's source (`snippet.py`) is compiled as plain Python with
`sys` in its globals: the language wall is gone; the zygote, the fork, every confinement layer,
the handshake and the host side are as ever. Such a snippet can walk up its own stack into the
zygote's frames (`sys._getframe`), read whatever the zygote's memory still holds, and call what
the filter lets through, as code that escaped could.

A snippet reports by raising `Exception("REPORT " + repr(value))`; `run_escaped` returns the
value (`ast.literal_eval`), or raises when the snippet did not report.
"""
from __future__ import annotations

import ast
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import host.supervise.zygote_client as zygote_client
from host.clock import SystemClock
from host.keys import tokens
from host.keys.keyring import Keyring
from host.supervise.child import AppFailed, Child, ChildLimits
from host.supervise.spawner import Spawner

IS_ROOT = os.geteuid() == 0

# Run by the zygote client as `LAUNCHER -I -m sandbox.zygote FD HOST_PID` (the shebang names
# the real interpreter, isolated): the zygote's own main, with the snippet compile swapped after
# its warm-up (which compiles restricted code of the runtime's own).
_LAUNCHER = '''#!{python} -I
import builtins
import sys

from sandbox import runtime, zygote

_compile_restricted, _make_globals = runtime.compile_module, runtime.make_globals


def _compile(source, filename):
    if filename != "snippet.py":
        return _compile_restricted(source, filename)
    return compile(source, filename, "exec")  # the RestrictedPython wall, fallen


def _globals(name, app_modules=None):
    glb = _make_globals(name, app_modules)
    if name == "__main__":
        glb["sys"] = sys  # and the interpreter within reach of the snippet,
        glb["__builtins__"] = builtins  # with every builtin
    return glb


runtime.compile_module = _compile
runtime.make_globals = _globals
if {filter_off!r}:
    from sandbox import seccomp

    seccomp.install = lambda _pid: None  # and, for a kernel-only attack, the filter left out
sys.argv = ["sandbox.zygote", *sys.argv[sys.argv.index("sandbox.zygote") + 1:]]
zygote.main()
'''

REPORT = "REPORT "


def escaped_spawner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *,
                    prefork: int = 0, filter_off: bool = False) -> Spawner:
    """A real spawner whose zygote's snippets run unrestricted (module docstring); with
    `filter_off`, its children also install no seccomp filter (every other layer as ever), for
    attacks that show what the kernel alone refuses."""
    launcher = tmp_path / "python-escaped-zygote"
    launcher.write_text(_LAUNCHER.format(python=sys.executable, filter_off=filter_off))
    os.chmod(launcher, 0o755)
    monkeypatch.setattr(zygote_client, "sys", SimpleNamespace(executable=str(launcher)))
    return Spawner(use_zygote=True, prefork=prefork)


def start_app(spawner: Spawner, uid: int, *, degraded: bool = False,
              limits: ChildLimits | None = None) -> Child:
    """A child of the spawner, handshaken as app `uid` (its own uid when the test is root);
    `degraded` for a child whose filter was left out (`escaped_spawner(filter_off=True)`)."""
    ring, clock = Keyring.ephemeral(), SystemClock()
    kid = spawner.start(limits or ChildLimits())
    spawner.started()
    tok = tokens.issue(ring, clock, app_id=f"app-{uid}", install_id=f"i-{uid}",
                       session_id=kid.session_id, generation=1, epoch=1,
                       permissions=frozenset(), policy_hash="p")
    kid.handshake(tok, lambda t: tokens.verify(t, ring, clock, session_id=kid.session_id),
                  degraded=degraded, uid=uid if IS_ROOT else None)
    return kid


def run_escaped(kid: Child, source: str, timeout: float = 5.0) -> Any:
    """Run `source` unrestricted in the handshaken `kid`; the value it reported."""
    try:
        kid.exec_source(source, timeout, lambda _text, _cut: None)
    except AppFailed as exc:
        _, _, tail = exc.message.partition(REPORT)
        if tail:
            return ast.literal_eval(tail)
        raise
    raise AssertionError("the snippet did not report")
