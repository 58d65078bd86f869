"""A real host whose apps have escaped RestrictedPython (DESIGN rule 5: assume they do).

`escape_apps` makes every child a host spawns from then on (a fresh interpreter: start the host
with `use_zygote=False`) the real `sandbox.child`, confined by every layer exactly as ever, whose
app modules are then compiled as plain Python with `sys` in their globals: the language wall is
gone, the OS walls and the host are as in production. An app's handler can then reach the
runtime's own loop (`sandbox.runtime._serve`) and its channel, and write whatever frames it
likes, as code that escaped could.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import host.supervise.spawner as spawner_module

# Run by the spawner as `LAUNCHER -I -m sandbox.child ARGS...` (the shebang names the real
# interpreter, isolated): the child's own main, with the loader's compile and globals swapped.
_LAUNCHER = '''#!{python} -I
import sys

from sandbox import child, loader, restricted


def _compile(source, filename):
    return compile(source, filename, "exec")  # the RestrictedPython wall, fallen


def _globals(name, app_modules=None):
    glb = restricted.make_globals(name, app_modules)
    glb["sys"] = sys  # and the interpreter within reach of the app
    return glb


loader.compile_module = _compile
loader.make_globals = _globals
sys.argv = ["sandbox.child", *sys.argv[sys.argv.index("sandbox.child") + 1:]]
child.main()
'''

# Helpers an escaped handler uses: the runtime loop that called it holds the channel and the
# Event frame being handled.
PRELUDE = '''
from stockade import App


def serving():
    """The locals of the runtime code that called the handler (`sandbox.runtime._run_handler`):
    its channel (`chan`) and the Event being handled (`frame`)."""
    return sys._getframe(2).f_locals
'''


def escape_apps(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Children spawned from now on run their apps unrestricted (module docstring)."""
    launcher = tmp_path / "python-escaped"
    launcher.write_text(_LAUNCHER.format(python=sys.executable))
    os.chmod(launcher, 0o755)
    monkeypatch.setattr(spawner_module, "sys", SimpleNamespace(executable=str(launcher)))
