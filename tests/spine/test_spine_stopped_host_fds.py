"""A stopped host closes every store connection it opened, and gives its process's garbage
collector back (DESIGN rule 13: whatever a component opens, its stop closes).

`Host.stop` closed only its own thread's connections and the idle pooled ones; the others (the
upkeep thread's, the runners' that went back to a store through `release_thread` and were kept
by the store's list of open connections) were left to the garbage collector. The first host a
process starts freezes its objects (`host.supervise.gctune`), and what is frozen is never
collected: a process that starts and stops hosts (a test worker, `stockade demo`) kept 23
descriptors on each first host's host.db, its -wal and -shm (SQLite keeps a closed descriptor
open while another connection of the process holds a lock on the same file), and the whole
stopped host in memory. A pytest-xdist worker reached 1,245 descriptors; `select()` refuses one
past 1,024. Each test runs in a process of its own: the freeze happens once per process."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

COUNT_FDS = """
    import gc, os, sys, weakref
    from pathlib import Path
    from host.home import Home
    from host.runtime import Host, HostConfig

    def home_fds(root):
        out = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            if target.startswith(str(root)):
                out.append(target.rsplit("/", 1)[-1])
        return sorted(out)
"""


def _run(script: str) -> list[str]:
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(COUNT_FDS) + textwrap.dedent(script)],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout.strip().splitlines()


def test_a_stopped_host_leaves_no_descriptor_of_its_stores_open(tmp_path: Path) -> None:
    lines = _run(f"""
        root = Path({str(tmp_path)!r})
        for i, watch in enumerate((False, True, False)):
            home = Home(root / f"home{{i}}").ensure()
            host = Host(home, config=HostConfig(watch=watch))  # the gc tuning on, as served
            host.start()
            started = home_fds(home.root)
            host.stop()
            print("started", i, len(started))
            print("stopped", i, home_fds(home.root))  # the host still referenced
            host.stop()  # idempotent
            gone = weakref.ref(host)
            del host
            gc.collect()
            print("freed", i, gone() is None)
    """)
    opened = [int(line.split()[2]) for line in lines if line.startswith("started")]
    assert len(opened) == 3 and min(opened) > 0, lines  # a running host has some open
    # Before: stopped 0 ['host.db', 'host.db', ... (19), 'host.db-shm', 'host.db-wal' x3];
    # the first host (the one whose objects the gc tuning froze) was never freed.
    assert [line for line in lines if line.startswith("stopped")] == [
        f"stopped {i} []" for i in range(3)], lines
    assert [line for line in lines if line.startswith("freed")] == [
        f"freed {i} True" for i in range(3)], lines


def test_the_gc_tuning_lasts_while_a_tuned_host_runs_and_ends_with_the_last(
        tmp_path: Path) -> None:
    lines = _run(f"""
        from host.supervise.gctune import GC_GEN0_THRESHOLD
        root = Path({str(tmp_path)!r})
        own = gc.get_threshold()
        a = Host(Home(root / "a").ensure(), config=HostConfig(watch=False)).start()
        b = Host(Home(root / "b").ensure(), config=HostConfig(watch=False)).start()
        print("both", gc.get_freeze_count() > 0, gc.get_threshold()[0] >= GC_GEN0_THRESHOLD)
        a.stop()
        print("one", gc.get_freeze_count() > 0, gc.get_threshold()[0] >= GC_GEN0_THRESHOLD)
        b.stop()
        b.stop()
        print("none", gc.get_freeze_count(), gc.get_threshold() == own)
        c = Host(Home(root / "c").ensure(), config=HostConfig(watch=False)).start()
        print("again", gc.get_freeze_count() > 0, gc.get_threshold()[0] >= GC_GEN0_THRESHOLD)
        c.stop()
        print("end", gc.get_freeze_count(), gc.get_threshold() == own)
    """)
    assert lines == ["both True True", "one True True", "none 0 True", "again True True",
                     "end 0 True"], lines


def test_the_round_threads_connections_to_the_embedded_server_close_with_the_host(
        tmp_path: Path) -> None:
    """The watcher reads the server (each running app's user still active) from its own thread;
    that thread's connection was dropped unclosed when it ended, and SQLite's connection object
    is in a reference cycle with its own statement cache: open, with every descriptor SQLite
    defers while it is, until a collection. Collections off here, as between a tuned host's."""
    lines = _run(f"""
        import time
        sys.path.append({str(Path(__file__).parent.parent)!r})
        from apphelp import install, write_app
        from host import rounds
        rounds.WATCH_INTERVAL_S = 0.01
        root = Path({str(tmp_path)!r})
        home = Home(root / "home").ensure()
        install(home, write_app(root / "apps", "reader", ["messages.read"], ["message.sent"],
                                "from stockade import App\\nclass TestApp(App):\\n"
                                "    def on_message_sent(self, ctx, event):\\n        pass\\n"))
        gc.disable()
        host = Host(home, config=HostConfig(watch=True, tune_gc=False)).start()
        time.sleep(0.5)  # the watcher's rounds
        host.stop()
        print(home_fds(home.root))
    """)
    # Before: ['host.db', 'host.db', ... (19), 'host.db-shm', 'host.db-wal' x3].
    assert lines == ["[]"], lines
