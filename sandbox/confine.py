"""Confine the current process before any untrusted source is compiled (DESIGN rule 5).

Layers, in the order they must be applied (later ones would forbid the calls earlier ones need):

0. its own memory cgroup, when the host made one (`join_memory_cgroup`): first, so everything
   the child allocates after is charged there, page tables included;
1. own session and process group (the host kills the whole group);
2. descriptors: the channel moves to fds 3/4, stderr to the capture pipe, stdin/stdout to
   a /dev/null this process opens for itself (never one another child also holds: see
   `confine_early`), every other inherited descriptor is closed;
3. an empty environment and a working directory it cannot write (`/`);
4. its own network namespace (each child: the zygote's, entered once before it forks, would be
   every app's, and a netlink socket there reaches any other by port number; the spawn
   fallback's stand-in makes one for its one child), its own IPC namespace (each child, see
   `unshare_ipc`), and its own PID namespace, entered by the fork that made it
   (`fork_in_own_pid_namespace`);
5. the OOM killer's first pick (`OOM_SCORE_ADJ`), parent-death signal and not dumpable;
6. rlimits: address space, CPU seconds, open files, file size 0, no core dumps, process
   count 0 (no threads, no forks), no locked memory, no message queues, no queued signals;
7. an empty root (`enter_empty_root`): a directory of the child's own, removed once opened, so
   every absolute path it names (a Unix socket's included) resolves to nothing, while it may
   still chroot (as root, or holding the zygote's user namespace's capabilities); then,
   in `take_identity`, once the host has said which app the child serves,
   when the host runs as root: the app's own uid/gid (a number from a range nothing else uses,
   one per install: `host/supervise/identities.py`) with no groups, so the kernel's own checks
   stop a child from signalling, limiting, tracing or reading another app's child or the host;
   when it is not: no capability (`drop_capabilities`);
8. parent-death signal and not dumpable again (the credential change clears both);
9. no-new-privs;
10. Landlock: no filesystem right at all, no TCP, no signals outside its domain;
11. seccomp (TSYNC): see sandbox/seccomp.py.

`confine_early` applies 0-6 and 7's empty root, which depends on no app either (a pre-forked
child waits there: it runs no untrusted code and knows no app yet; done there, the root leaves
every start's path), `take_identity` the rest of 7 and 8-11 before the child answers the host's
hello; `confine` does both at once. Each layer is checked after it is applied; the child
reports them to the host in its hello frame, and the host refuses to run apps when one is
missing (unless started degraded).
"""
from __future__ import annotations

import ctypes
import fcntl
import os
import resource
import signal
from dataclasses import dataclass

from sandbox import landlock, native, seccomp

CHANNEL_IN_FD = 3  # host -> child frames
CHANNEL_OUT_FD = 4  # child -> host frames

PR_SET_PDEATHSIG = 1
PR_GET_PDEATHSIG = 2
PR_SET_DUMPABLE = 4
PR_GET_SECCOMP = 21
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
# Its own SysV IPC namespace: shared memory, queues and semaphores die with the child and are
# invisible to every other app (a second wall behind the filter, which refuses SysV calls).
CLONE_NEWIPC = 0x08000000
# Its own PID namespace: the child is process 1 of a namespace holding only itself, so no pid
# it can name in kill/prlimit/setpriority/sched_*/ptrace/pidfd_open reaches another app's child
# or the host. Whatever uid the child runs as (a non-root host has none of its own to give: the
# kernel's uid checks pass between processes of one user), the kernel answers ESRCH.
CLONE_NEWPID = 0x20000000
SYS_CLONE = 56  # x86-64; the filter (sandbox/seccomp.py) kills every other architecture
# Guards the host and the zygote from an app's memory: the most the kernel allows, so when the
# machine runs out of memory the OOM killer takes an app child first (among them the one holding
# most), never the host because it is bigger than an app that filled what it may. Raising one's
# own value needs no privilege; lowering it again does, and the filter refuses the file anyway.
OOM_SCORE_ADJ = 1000

# Guards the host's (and every other process of the child's uid's) queue of pending signals, and
# kernel memory outside RLIMIT_AS: none may wait in this child's queue. Each real-time signal an
# app sends itself while it keeps it blocked (kill and rt_sigprocmask on its own pid are allowed)
# holds a kernel allocation counted against its uid's RLIMIT_SIGPENDING (~96,000 here), which a
# non-root host's children share with the host: one escaped app filled it, and the host's own
# sigqueue() and POSIX timers failed with EAGAIN while the app lived (~7.7 MB of kernel memory).
# The child needs no queued signal: SIGKILL, the kernel's own (SIGXCPU, SIGSEGV) and the one
# abort() raises are delivered without an entry.
SIGPENDING_LIMIT = 0

# Where a child makes the directory that becomes its empty root (`enter_empty_root`): the first
# of these it can write. Guards every path outside the child: the directory is removed as soon
# as it is open, so it holds nothing and nothing can be made in it, and it is the child's own
# (one made by the zygote would be every app's: a non-root host's children own it, and its
# mode or times would be a channel between apps).
# A random name made with mkdir (which fails on anything already there), removed at once.
# /dev/shm first: a tmpfs, where mkdir costs ~25 us against ~130 us on /tmp's ext4 here.
EMPTY_ROOT_PARENTS = ("/dev/shm", "/tmp", "/var/tmp")  # noqa: S108

SYS_CAPGET = 125  # x86-64
SYS_CAPSET = 126
_LINUX_CAPABILITY_VERSION_3 = 0x20080522  # two 32-bit words per set

# The identity a child takes when the host names none (a root host's sandbox snippets, the
# tests): "nobody" owns no file and can signal or trace no process of the host's.
NOBODY_UID = 65534
NOBODY_GID = 65534


@dataclass(frozen=True)
class Limits:
    """Per-child resource limits (what a child may consume before the kernel stops it)."""

    memory_mib: int = 256  # address space on top of the runtime's own mappings
    cpu_seconds: int = 3600  # total CPU backstop; per-call deadlines are the host's job
    max_fds: int = 32  # descriptor exhaustion stops here, not at the host's limit
    # The memory cgroup the host made for this child (`host.supervise.memcg`), "" for none:
    # its limit counts what RLIMIT_AS does not (page tables, kernel stacks, slab).
    memory_cgroup: str = ""


@dataclass
class LayerReport:
    seccomp: bool = False
    landlock: bool = False
    no_new_privs: bool = False
    netns: bool = False
    ipcns: bool = False
    pidns: bool = False
    rlimits: bool = False
    pdeathsig: bool = False
    fds_closed: bool = False
    empty_env: bool = False
    uid_dropped: bool = False
    empty_root: bool = False
    memory_cgroup: bool = False
    notes: list[str] | None = None
    parent_pid: int = 0  # the process whose death kills this one (re-armed in take_identity)
    # /proc/self/status, opened before the root was emptied, for the parent-death check after
    # the identity change (`take_identity` closes it); -1 when not open
    status_fd: int = -1

    def note(self, text: str) -> None:
        if self.notes is None:
            self.notes = []
        self.notes.append(text[:250])


def prepare() -> None:
    """Build what `confine` needs before the process forks (see `sandbox.native`)."""
    native.warm()
    landlock.prepare()
    seccomp.prepare()


def unshare_network() -> bool:
    """Enter a new, empty network namespace (no interface is up). True on success."""
    libc = native.libc()
    if libc.unshare(CLONE_NEWNET) == 0:
        return True
    # Unprivileged hosts can still get a network namespace inside a user namespace.
    return bool(libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0)


def unshare_ipc() -> bool:
    """Enter a new, empty IPC namespace of this process's own. True when the namespace changed.

    Per child, not once in the zygote: a namespace shared by all children would still let two
    apps meet there. Needs CAP_SYS_ADMIN in the current user namespace: root, or the user
    namespace the zygote made for its network namespace when the host is not root.
    """
    before = os.readlink("/proc/self/ns/ipc")
    if native.libc().unshare(CLONE_NEWIPC) != 0:
        return False
    return os.readlink("/proc/self/ns/ipc") != before


def fork_in_own_pid_namespace() -> int:
    """fork(2), with the child as process 1 of a new PID namespace (the zygote forks every app
    child this way). Returns the child's pid in the parent, 0 in the child, -1 (errno set)
    when the kernel refuses: not root and no user namespace of its own to be root in.

    A raw clone(2), since the C library's fork cannot take a flag. That skips what glibc's fork
    does around the call: fork handlers (the zygote registers none and is single-threaded, so
    no lock can be held) and recording the child's thread id in the thread descriptor (no code
    in the child reads it: raise() and the runtime ask the kernel, `gettid`/`getpid`).
    """
    libc = native.libc()
    return int(libc.syscall(ctypes.c_long(SYS_CLONE),
                            ctypes.c_ulong(CLONE_NEWPID | signal.SIGCHLD),
                            None, None, None, None))


def in_own_pid_namespace(parent_pid: int) -> bool:
    """Whether this process is process 1 of a PID namespace its parent is not in."""
    if os.getpid() != 1:
        return False
    try:
        return os.readlink("/proc/self/ns/pid") != os.readlink(f"/proc/{parent_pid}/ns/pid")
    except OSError:
        return False


def thread_count() -> int:
    """How many threads this process has (from /proc/self/status)."""
    return _status_field(b"Threads:")


def confine(
    *,
    chan_in: int,
    chan_out: int,
    err_fd: int,
    devnull_fd: int | None = None,
    parent_pid: int,
    limits: Limits,
    netns_done: bool,
    uid: int = NOBODY_UID,
    gid: int = NOBODY_GID,
) -> LayerReport:
    """Apply every layer to this process. Never returns a half-confined process silently:
    a layer that fails is reported False and the host decides (refuse, or degraded mode)."""
    rep = confine_early(chan_in=chan_in, chan_out=chan_out, err_fd=err_fd,
                        devnull_fd=devnull_fd, parent_pid=parent_pid, limits=limits,
                        netns_done=netns_done)
    return take_identity(rep, uid, gid)


def _arm_parent_death(rep: LayerReport, status_fd: int | None = None) -> None:
    """`status_fd`: /proc/self/status opened before the root was emptied (`take_identity`)."""
    libc = native.libc()
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    # The parent as /proc sees it (the host's PID namespace): getppid() is 0 in a namespace of
    # the child's own, whose parent lives outside it.
    if _status_field(b"PPid:", status_fd) != rep.parent_pid:
        os._exit(71)  # the parent died before the signal was armed
    sig = ctypes.c_int(0)
    libc.prctl(PR_GET_PDEATHSIG, ctypes.byref(sig), 0, 0, 0)
    rep.pdeathsig = sig.value == signal.SIGKILL
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def confine_early(
    *,
    chan_in: int,
    chan_out: int,
    err_fd: int,
    devnull_fd: int | None = None,
    parent_pid: int,
    limits: Limits,
    netns_done: bool,
) -> LayerReport:
    """Layers 0-6 and 7's empty root (module docstring): everything that does not depend on the
    app.

    stdin and stdout go to `devnull_fd` when the caller opened one in this very process (the
    spawn entry, `sandbox.child`), else to a /dev/null opened here. Never pass a descriptor
    this process inherited from one that forks other children (the zygote): its open file
    description would be every child's, and the flags on it (O_APPEND, O_NONBLOCK, which the
    filter lets fcntl read and set) a channel between apps with no gate and no audit.
    """
    rep = LayerReport(parent_pid=parent_pid)
    if thread_count() != 1:
        # Landlock and rlimits cover the calling thread/process; a second thread would escape
        # Landlock. The zygote and the spawn entry never start threads.
        rep.note("more than one thread at confinement time")
        os._exit(70)
    # 0. its memory cgroup first, so what it allocates from here on is charged there
    if limits.memory_cgroup:
        try:
            rep.memory_cgroup = join_memory_cgroup(limits.memory_cgroup)
        except OSError as exc:
            rep.note(f"memory cgroup: {exc}")
    try:
        os.setsid()
    except OSError:
        pass  # already a session leader (spawn path) — still its own group
    # 2. descriptors
    if devnull_fd is None:
        # Opened before Landlock (layer 10) forbids it and before the identity drop (layer 7):
        # an open file description of this child's own (see the docstring). One open(2), ~1 µs.
        devnull_fd = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    # Copy every source above the target range first, so one dup2 cannot clobber another source.
    moves = [(fcntl.fcntl(src, fcntl.F_DUPFD_CLOEXEC, 64), dst) for src, dst in (
        (chan_in, CHANNEL_IN_FD), (chan_out, CHANNEL_OUT_FD), (err_fd, 2),
        (devnull_fd, 0), (devnull_fd, 1))]
    for src, dst in moves:
        os.dup2(src, dst, inheritable=False)
    os.closerange(CHANNEL_OUT_FD + 1, 1 << 20)
    # stderr only carries interpreter crash text; never let a full pipe block the child on it
    os.set_blocking(2, False)
    rep.fds_closed = sorted(int(n) for n in os.listdir("/proc/self/fd") if int(n) > 4) in (
        [], [5])  # listdir itself holds one descriptor while it runs
    # 3. environment and working directory
    if os.environ:  # the zygote's children inherit an empty one; clear() would still raise and
        os.environ.clear()  # catch a KeyError inside, touching pages the child then keeps
    rep.empty_env = not os.environ
    os.chdir("/")
    # 4. namespaces. `netns_done`: this process is already in a network namespace no other
    # app's child shares (never the zygote's: `sandbox.zygote._child` passes False).
    rep.netns = netns_done or unshare_network()
    rep.ipcns = unshare_ipc()
    rep.pidns = in_own_pid_namespace(parent_pid)
    # 5. the OOM killer's first pick, then parent death and dumpability. The adjustment first:
    # once not dumpable, /proc/self's files belong to root, and a child of a host that is not
    # root could no longer open its own.
    _prefer_for_oom(rep)
    _arm_parent_death(rep)
    # 6. rlimits
    try:
        vm_kib = max(_vm_size_kib(), 0)
        address_space = (vm_kib * 1024) + limits.memory_mib * (1 << 20)
        for res, value in (
            (resource.RLIMIT_CORE, 0),
            (resource.RLIMIT_FSIZE, 0),
            (resource.RLIMIT_NOFILE, limits.max_fds),
            (resource.RLIMIT_NPROC, 0),
            (resource.RLIMIT_MEMLOCK, 0),
            (resource.RLIMIT_MSGQUEUE, 0),
            (resource.RLIMIT_SIGPENDING, SIGPENDING_LIMIT),
            (resource.RLIMIT_AS, address_space),
        ):
            resource.setrlimit(res, (value, value))
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
        rep.rlimits = resource.getrlimit(resource.RLIMIT_FSIZE) == (0, 0)
    except (OSError, ValueError) as exc:
        rep.note(f"rlimit failed: {exc}")
    # 7's empty root, last: what came before opens files (/dev/null, /proc/self/...). Its
    # status file stays readable through a descriptor for `take_identity`.
    rep.status_fd = os.open("/proc/self/status", os.O_RDONLY | os.O_CLOEXEC)
    try:
        rep.empty_root = enter_empty_root()
    except OSError as exc:
        rep.note(f"empty root: {exc}")
    return rep


def join_memory_cgroup(path: str) -> bool:
    """Move this process into the memory cgroup `path` (made by the host, limit written): True
    when /proc/self/cgroup then names it. Raises OSError when the kernel refuses.

    The child moves itself, as root, before any app source exists in it: a move made by the
    host after the fork would race the child's own code. "0" names the writer in v1 and v2
    alike (this process is pid 1 of its own namespace: its number outside is not its to use).
    Once its identity is taken it may not move out: the files are root's, the root is empty.
    """
    fd = os.open(f"{path}/cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, b"0")
    finally:
        os.close(fd)
    name = "/" + path.rstrip("/").rsplit("/", 1)[-1]
    fd = os.open("/proc/self/cgroup", os.O_RDONLY | os.O_CLOEXEC)
    try:
        lines = os.read(fd, 1 << 16).decode("utf-8", "replace").splitlines()
    finally:
        os.close(fd)
    return any(line.endswith(name) for line in lines)


def _prefer_for_oom(rep: LayerReport) -> None:
    """Make this process the OOM killer's first pick (`OOM_SCORE_ADJ`); a failure is noted."""
    try:
        fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, str(OOM_SCORE_ADJ).encode())
        finally:
            os.close(fd)
    except OSError as exc:
        rep.note(f"oom_score_adj: {exc}")


def take_identity(rep: LayerReport, uid: int | None, gid: int | None) -> LayerReport:
    """Layers 7-11 (module docstring), once the app is known: its own uid/gid (its empty root
    was entered in `confine_early`) when this process is root (the host's `HostHello` names
    them), then the layers that would forbid them. A host that is not root has no uid to give:
    the child keeps the host's, and seccomp's argument checks and Landlock's signal scoping are
    what keep it from the others."""
    libc = native.libc()
    # 7. (its empty root was entered in `confine_early`) its identity; /proc/self/status is
    # read through the descriptor opened before the root was emptied, for the parent-death
    # check (8), and closed after it.
    status_fd, rep.status_fd = rep.status_fd, -1
    try:
        _identity(rep, uid, gid)
        # 8. parent death and dumpability, which the credential change cleared
        _arm_parent_death(rep, status_fd)
    finally:
        os.close(status_fd)
    # 9. no-new-privs
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    rep.no_new_privs = libc.prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1
    # 10. landlock
    try:
        abi = landlock.restrict_self()
        rep.landlock = True
        if abi < 6:
            rep.note(f"landlock ABI {abi}: no signal scoping")
    except OSError as exc:
        rep.note(f"landlock: {exc}")
    # 11. seccomp
    try:
        seccomp.install(os.getpid())
        rep.seccomp = libc.prctl(PR_GET_SECCOMP, 0, 0, 0, 0) == 2
    except OSError as exc:
        rep.note(f"seccomp: {exc}")
    return rep


def enter_empty_root() -> bool:
    """Make this process's root (and working directory) a directory of its own, made in the
    first writable `EMPTY_ROOT_PARENTS` and removed once open: True when "/" is then that
    removed directory. Raises OSError when none can be made or the kernel refuses the chroot
    (it needs CAP_SYS_CHROOT in this process's user namespace).

    A third wall for the file system, behind the filter (which refuses `openat` and Unix
    sockets) and Landlock (which refuses opening a file's contents, but neither an `O_PATH`
    open nor `connect()` to a socket's path): every absolute path now names nothing (ENOENT),
    and nothing can be created in a removed directory. Nothing leads out: the child holds no
    descriptor of a directory outside (only fds 0-4, pipes and /dev/null), and once its
    identity is taken it may not chroot again.
    """
    name = f"stockade-root-{os.urandom(8).hex()}"
    made = None
    for parent in EMPTY_ROOT_PARENTS:
        try:
            # Anyone may search and list it (it is empty): an absolute path names nothing
            # (ENOENT) whatever the child's uid, and a listing is Landlock's to refuse.
            os.mkdir(f"{parent}/{name}", 0o555)
        except OSError:
            continue
        made = f"{parent}/{name}"
        break
    if made is None:
        raise OSError(f"no folder of {EMPTY_ROOT_PARENTS} to make it in")
    try:
        fd = os.open(made, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        os.rmdir(made)
        raise
    try:
        os.rmdir(made)  # fails (ENOTEMPTY) if anything was put in it meanwhile: no wall then
    except OSError:
        os.close(fd)
        raise
    try:
        os.fchdir(fd)
        os.chroot(".")
        os.chdir("/")
        mine, root = os.fstat(fd), os.stat("/")
    finally:
        os.close(fd)
    return (root.st_dev, root.st_ino) == (mine.st_dev, mine.st_ino) and root.st_nlink == 0


def _identity(rep: LayerReport, uid: int | None, gid: int | None) -> None:
    """Layer 7's change of identity (`take_identity`)."""
    if os.geteuid() == 0:
        want_uid = NOBODY_UID if uid is None else uid
        want_gid = NOBODY_GID if gid is None else gid
        try:
            os.setgroups([])
            os.setresgid(want_gid, want_gid, want_gid)
            os.setresuid(want_uid, want_uid, want_uid)
            rep.uid_dropped = (os.getresuid() == (want_uid,) * 3 and want_uid != 0
                               and os.getgroups() == [])
        except OSError as exc:
            rep.note(f"uid drop failed: {exc}")
    else:
        # A host that is not root has no uid to give, but its child must not keep what the
        # zygote's user namespace gave: every capability there, over the network namespace all
        # apps' children share (CAP_NET_ADMIN brought its loopback up: a UDP channel between
        # apps with only the filter in the way). A root host's children lose theirs with the
        # change of uid above.
        try:
            rep.uid_dropped = drop_capabilities()
        except OSError as exc:
            rep.note(f"capability drop failed: {exc}")


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32))


def drop_capabilities() -> bool:
    """Empty this process's effective, permitted and inheritable capability sets (the ambient
    set empties with them); True when the kernel then reports all three empty. Raises OSError
    when the kernel refuses. (The bounding set only matters at exec, which the filter refuses.)
    """
    libc = native.libc()
    none = (_CapData * 2)()
    if libc.syscall(SYS_CAPSET, ctypes.byref(_CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)),
                    none) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset: {os.strerror(err)}")
    now = (_CapData * 2)()
    if libc.syscall(SYS_CAPGET, ctypes.byref(_CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)),
                    now) != 0:
        return False
    return all(d.effective == d.permitted == d.inheritable == 0 for d in now)


def _vm_size_kib() -> int:
    return _status_field(b"VmSize:")


def _status_field(name: bytes, status_fd: int | None = None) -> int:
    """One number from /proc/self/status (-1 when absent), read through `status_fd` when
    given (the file as it is now: read from its start).

    Read with a raw descriptor: a child that has just forked builds no buffered-file objects.
    """
    if status_fd is not None:
        data = os.pread(status_fd, 1 << 16, 0)
    else:
        fd = os.open("/proc/self/status", os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.read(fd, 1 << 16)
        finally:
            os.close(fd)
    for line in data.split(b"\n"):
        if line.startswith(name):
            return int(line.split()[1])
    return -1
