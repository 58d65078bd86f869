"""A memory cgroup per app child: the one limit that counts the kernel memory a child charges.

RLIMIT_AS (`sandbox.confine`, layer 6) bounds a child's address space, not what the kernel
allocates for it: an escaped child writing one-page mappings far apart held page tables several
times its `memory_mib` (SECURITY.md). A memory cgroup charges page tables, kernel stacks and
slab to the child as well as its resident pages, so each child gets a cgroup of its own whose
limit is its `memory_mib` plus `MARGIN_MIB`; past it the kernel's OOM killer ends that child
alone (the only process in the cgroup), and the host names the death the app's (`Child.exited`).

Who does what: the host (this module, at start) finds its own memory cgroup and makes a parent
folder `stockade-<pid>-<start time>-<random>` there; for each child it makes `c<random>` with the
limit written, before the fork request. The child moves itself in
(`sandbox.confine.join_memory_cgroup`) as the first thing it does after the fork, as root,
before any app source exists in it: a move by the host after the fork would race the child's
own code. The host checks the move from
/proc/<pid>/cgroup at the handshake (`holds`), removes the cgroup once the child is reaped
(`release`, which also says whether the kernel's OOM killer ended it there), and at start
removes the empty folders of hosts that are dead (`sweep_stale`).

What it costs a start: the host's mkdir and limit writes ~0.15 ms, the child's move into it
(cgroup v1) a wait for the kernel (measured on this 2-core machine under load: ~0.5 ms when moves
follow each other, ~10 ms for a move alone: consistent with the kernel's wait for an RCU grace
period before a cgroup migration, which a recent one spares), and a
removal ~0.1 ms after the child is reaped. The prefork pool (`HostConfig.prefork`, 2 by default)
pays the first two before the start: a pooled start measured ~0.4 ms more than without.

cgroup v1 (a `memory` hierarchy) and cgroup v2 (a delegated subtree: the host's cgroup's parent
has `memory` in its `cgroup.subtree_control` and is writable) are both found by `detect`. A host
that cannot make cgroups (not root, no writable hierarchy) gets a `Plan` of None and a reason:
the layer is then not required (the doctor reports it missing with that reason).
"""
from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from dataclasses import dataclass, field

# Guards the host's memory from what one child charges beyond its `memory_mib`: the cgroup's
# limit is `memory_mib` + this. What a well-behaved child charges besides the memory its
# RLIMIT_AS allows: the copies of zygote pages it writes (the interpreter's heap it inherited),
# its page tables and kernel stack, the slab of its own files and sockets. A child that has
# started and run a snippet charged ~2 MiB to its cgroup here (an idle app's private memory:
# ~2.8 MiB, `stockade bench`); 32 MiB leaves room for a larger app's imports. Every byte
# above it (page tables past RLIMIT_AS's reach included) is refused: the OOM killer ends it.
MARGIN_MIB = 32
# How long `close` waits for the children of a closed zygote (killed by their parent-death
# signal) to leave their cgroups before it removes them; what is left then stays for the next
# start's sweep. Cleanup only: no outcome depends on it.
CLOSE_WAIT_S = 2.0
PARENT_PREFIX = "stockade-"
PROC_CGROUP = "/proc/self/cgroup"
PROC_MOUNTINFO = "/proc/self/mountinfo"


@dataclass(frozen=True)
class Plan:
    """Where this host's children's cgroups go: `kind` "v1" or "v2", `base` the host's own
    (v1) or delegated (v2) cgroup folder, `mount` the hierarchy's mount point and `root` the
    cgroup mounted there (/proc/<pid>/cgroup names a cgroup from the hierarchy's root: a
    container's mount may show a cgroup below it as its root)."""

    kind: str
    base: str
    mount: str
    root: str = "/"


@dataclass
class MemoryCgroups:
    """This host's per-child memory cgroups under one parent folder (module docstring)."""

    plan: Plan
    parent: str
    _live: set[str] = field(default_factory=set)
    # Released while a process still held them (a child of a dead zygote, killed but not yet
    # gone): tried again at each `make`, so a host whose zygote dies now and then does not
    # keep their folders until it stops. Usually empty.
    _pending: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def start(cls, plan: Plan) -> MemoryCgroups:
        """Sweep dead hosts' folders, then make this host's. Raises OSError when refused."""
        sweep_stale(plan.base)
        # The host's pid and start time (what `sweep_stale` checks), and a random part: one
        # process may run several spawners (a host, its doctor, `sandbox exec`), each its own.
        parent = os.path.join(plan.base, f"{PARENT_PREFIX}{os.getpid()}-"
                              f"{_start_time(os.getpid())}-{secrets.token_hex(4)}")
        os.mkdir(parent, 0o755)
        if plan.kind == "v2":
            try:
                _write(os.path.join(parent, "cgroup.subtree_control"), "+memory")
            except OSError:
                os.rmdir(parent)
                raise
        return cls(plan, parent)

    def make(self, memory_mib: int) -> str:
        """A new child cgroup whose limit is `memory_mib` + `MARGIN_MIB`: its folder."""
        if self._pending:
            with self._lock:
                retry, self._pending = self._pending, set()
            for old in retry:
                self.release(old)
        path = os.path.join(self.parent, f"c{secrets.token_hex(8)}")
        limit = str((memory_mib + MARGIN_MIB) << 20)
        os.mkdir(path, 0o755)
        try:
            if self.plan.kind == "v1":
                _write(os.path.join(path, "memory.limit_in_bytes"), limit)
                # Memory plus swap: no more than memory alone (no swap to grow into), where
                # the kernel accounts swap. Written after the memory limit (it may not be less).
                with contextlib.suppress(FileNotFoundError):
                    _write(os.path.join(path, "memory.memsw.limit_in_bytes"), limit)
            else:
                _write(os.path.join(path, "memory.max"), limit)
                with contextlib.suppress(FileNotFoundError):
                    _write(os.path.join(path, "memory.swap.max"), "0")
        except OSError:
            os.rmdir(path)
            raise
        with self._lock:
            self._live.add(path)
        return path

    def relative(self, path: str) -> str:
        """`path` as /proc/<pid>/cgroup names it (relative to the hierarchy's mount)."""
        rel = os.path.relpath(path, self.plan.mount)
        return os.path.normpath(os.path.join(self.plan.root, rel))

    def holds(self, pid: int, path: str) -> bool:
        """Whether the kernel says `pid` is in the cgroup `path` (its memory hierarchy's line)."""
        return member_of(pid, self.plan.kind) == self.relative(path)

    def oom_killed(self, path: str) -> bool:
        """Whether the kernel's OOM killer has killed in the cgroup `path` (its limit)."""
        return oom_kills(path, self.plan.kind) > 0

    def release(self, path: str) -> bool:
        """Remove a reaped child's cgroup; whether the kernel's OOM killer killed in it (the
        child's death was its memory limit). A cgroup still holding a process is tried again
        at the next `make` and at `close`."""
        oom = self.oom_killed(path)
        gone = _rmdir(path)
        with self._lock:
            if gone:
                self._live.discard(path)
                self._pending.discard(path)
            else:
                self._pending.add(path)
        return oom

    def close(self) -> None:
        """Remove every cgroup left (children of a closed zygote die by their parent-death
        signal; their cgroups empty a moment later) and the parent. Safe to call twice."""
        end = time.monotonic() + CLOSE_WAIT_S
        with self._lock:
            left = sorted(self._live)
        for path in left:
            while not _rmdir(path) and time.monotonic() < end:
                time.sleep(0.01)
            with self._lock:
                if not os.path.exists(path):
                    self._live.discard(path)
                    self._pending.discard(path)
        _rmdir(self.parent)


def for_host() -> tuple[MemoryCgroups | None, str]:
    """This host's per-child cgroups, or (None, why not): what `detect` finds, made ready."""
    plan, why = detect()
    if plan is None:
        return None, why
    try:
        return MemoryCgroups.start(plan), ""
    except OSError as exc:
        return None, f"cannot make a cgroup in {plan.base}: {exc}"


def detect(proc_cgroup: str = PROC_CGROUP, mountinfo: str = PROC_MOUNTINFO) -> tuple[
        Plan | None, str]:
    """Which memory cgroups this host can make: (plan, "") or (None, why not)."""
    if os.geteuid() != 0:
        return None, "the host is not root: it cannot make cgroups"
    try:
        with open(proc_cgroup, encoding="utf-8") as f:
            lines = f.read().splitlines()
        with open(mountinfo, encoding="utf-8") as f:
            mounts = f.read().splitlines()
    except OSError as exc:
        return None, f"cgroups not readable: {exc}"
    for line in lines:
        _hid, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            mount = _mount_of(mounts, "cgroup", "memory")
            if mount is None:
                return None, "cgroup v1 memory hierarchy is not mounted"
            below = os.path.relpath(path, mount[1])
            if below.startswith(".."):
                return None, f"the host's memory cgroup {path} is not under its mount"
            base = os.path.join(mount[0], below)
            return _writable(Plan("v1", os.path.normpath(base), mount[0], mount[1]))
    for line in lines:
        if line.startswith("0::"):
            mount = _mount_of(mounts, "cgroup2", None)
            if mount is None:
                break
            own = os.path.normpath(os.path.join(mount[0], os.path.relpath(line[3:], mount[1])))
            # The host's own cgroup cannot both hold it and give controllers to children (v2
            # has no internal processes), so a delegated subtree puts the host in a leaf of it:
            # its children go beside the host, under the parent that delegates `memory`.
            for base in (own, os.path.dirname(own)):
                if base.startswith(mount[0]) and "memory" in _read(
                        os.path.join(base, "cgroup.subtree_control")).split():
                    return _writable(Plan("v2", base, mount[0], mount[1]))
            return None, (f"cgroup v2: no memory controller delegated to {own} or its parent "
                          "(cgroup.subtree_control)")
    return None, "no memory cgroup hierarchy"


def _writable(plan: Plan) -> tuple[Plan | None, str]:
    if not os.access(plan.base, os.W_OK):
        return None, f"{plan.base} is not writable"
    return plan, ""


def _mount_of(mounts: list[str], fstype: str, option: str | None) -> tuple[str, str] | None:
    """(mount point, mounted root) of the first mount of `fstype` (with `option`)."""
    for row in mounts:
        left, _, right = row.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] != fstype:
            continue
        if option is None or option in tail[2].split(","):
            return fields[4], fields[3]
    return None


def member_of(pid: int, kind: str) -> str | None:
    """The memory cgroup `pid` is in, as /proc/<pid>/cgroup names it (None: unreadable).

    On every start's path (the handshake's check): read with three system calls, not a text
    file object's seven, each of which lets the host's other threads take the interpreter lock
    (~40 µs alone, ~200 µs measured inside a start; half with the raw read)."""
    try:
        fd = os.open(f"/proc/{pid}/cgroup", os.O_RDONLY | os.O_CLOEXEC)
        try:
            lines = os.read(fd, 1 << 16).decode("utf-8", "replace").splitlines()
        finally:
            os.close(fd)
    except OSError:
        return None
    for line in lines:
        _hid, controllers, path = line.split(":", 2)
        if (kind == "v1" and "memory" in controllers.split(",")) or (
                kind == "v2" and _hid == "0" and not controllers):
            return path
    return None


def oom_kills(path: str, kind: str) -> int:
    """How many processes the kernel's OOM killer killed in the cgroup `path`."""
    text = _read(os.path.join(path, "memory.oom_control" if kind == "v1" else "memory.events"))
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == "oom_kill" and value.strip().isdigit():
            return int(value)
    return 0


def sweep_stale(base: str) -> list[str]:
    """Remove the parent folders (and the child cgroups in them) of hosts that are dead: only
    empty ones (rmdir refuses a cgroup that holds a process). What was removed."""
    gone: list[str] = []
    try:
        names = os.listdir(base)
    except OSError:
        return gone
    for name in names:
        owner = _owner(name)
        if owner is None or _start_time(owner[0]) == owner[1]:
            continue  # not ours, or its host is alive
        folder = os.path.join(base, name)
        with contextlib.suppress(OSError):
            for kid in os.listdir(folder):
                if kid.startswith("c") and os.path.isdir(os.path.join(folder, kid)):
                    _rmdir(os.path.join(folder, kid))
        if _rmdir(folder):
            gone.append(folder)
    return gone


def _owner(name: str) -> tuple[int, str] | None:
    """(pid, start time) a parent folder's name holds, or None for any other name."""
    if not name.startswith(PARENT_PREFIX):
        return None
    pid, start, *_ = (*name[len(PARENT_PREFIX):].split("-"), "")
    if not (pid.isdigit() and start.isdigit()):
        return None
    return int(pid), start


def _start_time(pid: int) -> str:
    """When `pid` started (clock ticks since boot, /proc/<pid>/stat field 22): with the pid,
    names a process even after its number is reused. "" when there is no such process."""
    stat = _read(f"/proc/{pid}/stat")
    return stat.rpartition(")")[2].split()[19] if stat else ""


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""


def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _rmdir(path: str) -> bool:
    """rmdir; True when `path` is gone."""
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True
