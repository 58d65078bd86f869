"""`serve --fresh-interpreters`: no two apps' children share an address layout.

Every child the zygote forks inherits the zygote's layout (libc, heap, stack), its `AT_RANDOM`
bytes (the stack canary, the pointer guard) and Python's hash secret: an escaped app knows
them for every other app's child (SECURITY.md). A fresh interpreter per child
(`HostConfig(use_zygote=False)`) draws its own; the zygote's children are the control that
shows the comparison sees a shared layout.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from apphelp import install, write_app, write_policy

from host.home import Home
from host.runtime import Host, HostConfig

SOURCE = "from stockade import App\n\nclass TestApp(App):\n    pass\n"
POLICY = '''
schema = 1
name = "layout"
[[rule]]
id = "layout"
effect = "permit"
apps = ["layout-a", "layout-b"]
actions = ["livechat.read"]
'''


def _layout(pid: int) -> tuple[str, ...]:
    """Where the child's heap, stack and C library start (what an exploit needs to know)."""
    marks = ("[heap]", "[stack]", "libc.so")
    starts = {line.split()[-1]: line.split("-", 1)[0]
              for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
              if any(m in line for m in marks)}
    return tuple(sorted(starts.items()))  # type: ignore[arg-type]


def _two_children(tmp_path: Path, use_zygote: bool) -> tuple[tuple[str, ...], ...]:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "layout", POLICY)
    for app in ("layout-a", "layout-b"):
        install(home, write_app(tmp_path / "apps", app, ["livechat.read"], [], SOURCE))
    with Host(home, config=HostConfig(watch=False, use_zygote=use_zygote)) as host:
        layouts = []
        for runner in host.runners.values():
            runner.ensure_started()
            assert runner.child is not None
            layouts.append(_layout(runner.child.pid))
    return tuple(layouts)


@pytest.mark.skipif(Path("/proc/sys/kernel/randomize_va_space").read_text().strip() == "0",
                    reason="the kernel's ASLR is off: no layout is random, fresh or not")
def test_fresh_interpreters_give_each_apps_child_a_layout_of_its_own(tmp_path: Path) -> None:
    a, b = _two_children(tmp_path, use_zygote=False)
    assert a and b and len(a) == len(b)
    assert a != b, "two apps' children share an address layout"


def test_the_zygotes_children_share_one_layout_the_control(tmp_path: Path) -> None:
    a, b = _two_children(tmp_path, use_zygote=True)
    assert a and a == b


def _children_cmdlines(pid: int) -> list[str]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                out.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, IndexError, ValueError):
            continue
    return out


@pytest.mark.parametrize("fresh", [True, False])
def test_serve_fresh_interpreters_starts_no_zygote(tmp_path: Path, fresh: bool) -> None:
    from servehelp import serving

    home = Home(tmp_path / "home").ensure()
    with serving(home, *(["--fresh-interpreters"] if fresh else [])) as (proc, _port):
        zygotes = [c for c in _children_cmdlines(proc.pid) if "sandbox.zygote" in c]
        assert (zygotes == []) is fresh, zygotes
