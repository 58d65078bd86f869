"""A seccomp-BPF filter for the app child (x86-64), installed with TSYNC so it covers every thread.

An ALLOW-list: a system call that is not named in this module kills the process. The program:

1. kills the process for any architecture but x86-64 and for the x32 ABI (syscall numbers
   with bit 30 set), so a 32-bit `int 0x80` cannot reach syscalls by other numbers;
2. lets the hot `read`/`write` calls through first;
3. finds the call's number by binary search (`_search`): a dozen instructions on any path
   instead of a chain past every rule, which the kernel walks once per syscall number when
   it installs the filter (its per-number cache of calls always allowed) and again at every
   call it cannot cache; then
   allows the calls in `ALLOW`, each there because the confined runtime was measured making
   it (see `ALLOW`'s comment for how) or because a failure path of the runtime needs it;
4. checks the argument where the argument carries the danger (`ARG_RULES`): `prctl` only
   reads (never PR_SET_PDEATHSIG), `ioctl`/`fcntl` only the descriptor flags, `prlimit64`
   only reads its own limits, `kill`/`tgkill`/`tkill` only aimed at its own pid, `clone` only
   threads without namespace flags (RLIMIT_NPROC=0 refuses those too);
5. refuses with an errno the calls in `REFUSE`: what Python's standard library or libc try as
   a probe with a fallback (file opens, sockets, `clone3`), and the attack classes the
   assume-escape suite tries one after another in a single child, so a refusal is an
   exception the (escaped) code sees, not a crash;
6. kills the process for everything else (SECCOMP_RET_KILL_PROCESS): no legitimate runtime
   path reaches an unlisted call, so reaching one is an attack and nothing is owed to it.

Why hand-assembled: the filter is ~500 instructions of a fixed shape, and building it here
keeps the child free of a native dependency (libseccomp's Python bindings are not on PyPI as a
wheel).
"""
from __future__ import annotations

import ctypes
import errno
import struct

from sandbox import native

# BPF opcodes (linux/filter.h)
_LD_W_ABS = 0x20
_JA = 0x05  # k: how many instructions to skip (a conditional jump reaches 255 at most)
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06

# seccomp return actions (linux/seccomp.h)
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
RET_ALLOW = 0x7FFF0000

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1
NR_SECCOMP = 317

# offsets in struct seccomp_data
_OFF_NR = 0
_OFF_ARCH = 4


def _arg_lo(i: int) -> int:
    return 16 + 8 * i


def _arg_hi(i: int) -> int:
    return 20 + 8 * i


# syscall name -> number (x86-64)
NR = {
    "read": 0, "write": 1, "open": 2, "close": 3, "stat": 4, "fstat": 5, "lstat": 6,
    "poll": 7, "mmap": 9, "mprotect": 10, "munmap": 11, "brk": 12, "rt_sigaction": 13,
    "rt_sigprocmask": 14, "rt_sigreturn": 15, "ioctl": 16, "access": 21, "pipe": 22,
    "sched_yield": 24, "mremap": 25, "madvise": 28, "shmget": 29, "shmat": 30, "shmctl": 31,
    "dup": 32, "dup2": 33, "nanosleep": 35, "getpid": 39,
    "socket": 41, "connect": 42, "accept": 43, "sendto": 44, "recvfrom": 45, "sendmsg": 46,
    "recvmsg": 47, "shutdown": 48, "bind": 49, "listen": 50, "getsockname": 51,
    "getpeername": 52, "socketpair": 53, "setsockopt": 54, "getsockopt": 55, "clone": 56,
    "fork": 57, "vfork": 58, "execve": 59, "exit": 60, "kill": 62, "semget": 64, "semop": 65,
    "semctl": 66, "shmdt": 67, "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71,
    "fcntl": 72, "truncate": 76, "ftruncate": 77,
    "getdents": 78, "chdir": 80, "fchdir": 81, "rename": 82, "mkdir": 83, "rmdir": 84,
    "creat": 85, "link": 86, "unlink": 87, "symlink": 88, "readlink": 89, "chmod": 90,
    "fchmod": 91, "chown": 92, "fchown": 93, "lchown": 94, "ptrace": 101, "setuid": 105,
    "setgid": 106, "setpgid": 109, "setreuid": 113, "setregid": 114, "setgroups": 116,
    "setresuid": 117, "setresgid": 119, "setfsuid": 122, "setfsgid": 123, "capset": 126,
    "rt_sigqueueinfo": 129, "sigaltstack": 131, "utime": 132, "mknod": 133,
    "personality": 135, "statfs": 137, "setpriority": 141, "sched_setparam": 142,
    "sched_setscheduler": 144, "pivot_root": 155, "prctl": 157, "setrlimit": 160,
    "chroot": 161, "acct": 163, "mount": 165, "umount2": 166,
    "swapon": 167, "swapoff": 168, "reboot": 169, "sethostname": 170, "setdomainname": 171,
    "init_module": 175, "delete_module": 176, "quotactl": 179, "gettid": 186,
    "setxattr": 188,
    "lsetxattr": 189, "fsetxattr": 190, "getxattr": 191, "lgetxattr": 192, "fgetxattr": 193,
    "listxattr": 194, "llistxattr": 195, "flistxattr": 196, "removexattr": 197,
    "lremovexattr": 198, "fremovexattr": 199, "tkill": 200, "futex": 202,
    "sched_setaffinity": 203, "getdents64": 217, "restart_syscall": 219, "semtimedop": 220,
    "clock_gettime": 228, "clock_getres": 229, "clock_nanosleep": 230, "exit_group": 231,
    "tgkill": 234, "utimes": 235, "mbind": 237, "set_mempolicy": 238, "mq_open": 240,
    "kexec_load": 246, "add_key": 248, "request_key": 249,
    "keyctl": 250, "ioprio_set": 251, "migrate_pages": 256, "openat": 257, "mkdirat": 258,
    "mknodat": 259, "fchownat": 260,
    "futimesat": 261, "newfstatat": 262, "unlinkat": 263, "renameat": 264, "linkat": 265,
    "symlinkat": 266, "readlinkat": 267, "fchmodat": 268, "faccessat": 269, "ppoll": 271,
    "unshare": 272, "move_pages": 279,
    "utimensat": 280, "accept4": 288, "pipe2": 293, "rt_tgsigqueueinfo": 297,
    "perf_event_open": 298,
    "recvmmsg": 299, "fanotify_init": 300, "prlimit64": 302, "name_to_handle_at": 303,
    "open_by_handle_at": 304, "sendmmsg": 307, "setns": 308, "process_vm_readv": 310,
    "process_vm_writev": 311, "kcmp": 312, "finit_module": 313, "sched_setattr": 314,
    "renameat2": 316, "getrandom": 318,
    "memfd_create": 319, "kexec_file_load": 320, "bpf": 321, "execveat": 322,
    "userfaultfd": 323, "statx": 332, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "open_tree": 428, "move_mount": 429, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433, "pidfd_open": 434, "clone3": 435,
    "openat2": 437, "pidfd_getfd": 438, "faccessat2": 439, "process_madvise": 440,
    "mount_setattr": 442, "memfd_secret": 447, "pidfd_send_signal": 424,
}

# The ONE table of what a confined child may call freely, each with why it is needed.
# Measured: the real child runtime was run through load, every event kind and every bridge
# (tests/spine/test_spine_bridges.py, test_spine_events.py, test_spine_delivery.py,
# test_spine_wire_chunks.py, tests/security/test_escapes.py, test_dos.py) under
# `strace -f -ff`, and every call each app child made after its seccomp() was collected:
# brk, read, poll, write, prctl(PR_GET_SECCOMP), ioctl(FIONBIO), mmap, munmap, mremap,
# clock_nanosleep, exit_group (and openat, refused). The entries not in that list are
# failure and signal paths the measurement cannot reach on a good run (marked "path:").
ALLOW: dict[str, str] = {
    "read": "frames from the host arrive on fd 3",
    "write": "frames to the host on fd 4; interpreter crash text on stderr",
    "poll": "the wire waits for the channel to be readable/writable",
    "ppoll": "path: libc may implement poll() with it",
    "brk": "the C heap (malloc's main arena)",
    "mmap": "Python arenas and large allocations (bounded by RLIMIT_AS)",
    "munmap": "frees what mmap mapped",
    "mremap": "realloc of large blocks",
    "mprotect": "path: libc guard pages (a refused thread start maps its stack first)",
    "madvise": "path: malloc returns freed pages to the kernel",
    "clock_nanosleep": "time.sleep in app code",
    "nanosleep": "path: older libc's sleep",
    "clock_gettime": "path: monotonic deadlines when the vDSO is unavailable",
    "clock_getres": "path: time.get_clock_info",
    "getrandom": "path: entropy for uuid4/secrets-style helpers; reads only the kernel pool",
    "futex": "path: libc's internal locks (stdio) on contention",
    "close": "path: a refused or finished descriptor is closed",
    "getpid": "path: abort() and the runtime address signals to their own pid",
    "gettid": "path: abort() raises SIGABRT at its own thread",
    "rt_sigaction": "path: abort() resets the SIGABRT handler",
    "rt_sigprocmask": "path: abort() unblocks SIGABRT",
    "rt_sigreturn": "path: return from any signal handler",
    "sigaltstack": "path: the interpreter's fault handler stack",
    "restart_syscall": "path: the kernel restarts an interrupted poll/sleep after SIGSTOP",
    "exit": "path: a thread leaving (none start, but libc may use it)",
    "exit_group": "the child leaving",
}
# Refused with an errno (not killed): what the (escaped) code sees. Every group says what it
# guards; a call in neither ALLOW nor here kills the process.
REFUSE: dict[str, tuple[int, tuple[str, ...]]] = {
    # no network: the child reaches the world only through the gate
    "network": (errno.EPERM, (
        "socket", "socketpair", "connect", "accept", "accept4", "bind", "listen", "sendto",
        "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "shutdown", "getsockname",
        "getpeername", "setsockopt", "getsockopt",
    )),
    # no new programs and no new processes (threads are handled by the clone rule)
    "exec": (errno.EPERM, ("execve", "execveat")),
    "fork": (errno.EPERM, ("fork", "vfork")),
    # clone3 hides its flags in memory the filter cannot read; ENOSYS makes libc fall back to
    # clone, whose flags the filter checks
    "clone3": (errno.ENOSYS, ("clone3",)),
    # no new descriptors: subprocess makes pipes before it forks, and a pipe or a dup is a
    # way around RLIMIT_NOFILE accounting the runtime never needs
    "descriptors": (errno.EPERM, ("pipe", "pipe2", "dup", "dup2")),
    # no inspecting, signalling or re-scheduling other processes (the kernel's uid checks are
    # a second wall: these never reach them)
    "inspect": (errno.EPERM, (
        "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_open",
        "pidfd_getfd", "pidfd_send_signal", "process_madvise", "rt_sigqueueinfo",
        "rt_tgsigqueueinfo", "perf_event_open", "setpriority", "sched_setscheduler",
        "sched_setparam", "sched_setattr", "sched_setaffinity", "ioprio_set",
        "migrate_pages", "move_pages", "mbind", "set_mempolicy", "setpgid", "setrlimit",
    )),
    # no SysV IPC and no POSIX message queues: their objects outlive the child, sit outside
    # its RLIMIT_AS (shared memory) and are a channel between apps with no gate and no audit
    "sysv-ipc": (errno.EPERM, (
        "shmget", "shmat", "shmctl", "shmdt", "semget", "semop", "semctl", "semtimedop",
        "msgget", "msgsnd", "msgrcv", "msgctl", "mq_open",
    )),
    # no file access at all: app source arrives over the channel, so the child opens nothing
    "files": (errno.EACCES, (
        "open", "openat", "openat2", "creat", "open_by_handle_at", "name_to_handle_at",
        "stat", "lstat", "fstat", "newfstatat", "statx", "access", "faccessat", "faccessat2",
        "readlink", "readlinkat", "getdents", "getdents64", "statfs", "chdir", "fchdir",
        "getxattr", "lgetxattr", "fgetxattr", "listxattr", "llistxattr", "flistxattr",
    )),
    "file-changes": (errno.EPERM, (
        "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat", "renameat2",
        "link", "linkat", "symlink", "symlinkat", "chmod", "fchmod", "fchmodat", "chown",
        "fchown", "lchown", "fchownat", "truncate", "ftruncate", "utime", "utimes",
        "utimensat", "futimesat", "mknod", "mknodat", "setxattr", "lsetxattr", "fsetxattr",
        "removexattr", "lremovexattr", "fremovexattr", "memfd_create", "memfd_secret",
    )),
    # no identity changes (no-new-privs already blocks gains; this blocks the attempt)
    "identity": (errno.EPERM, (
        "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups",
        "setfsuid", "setfsgid", "capset", "personality",
    )),
    # no kernel surface that sandboxes routinely close
    "kernel": (errno.EPERM, (
        "mount", "umount2", "pivot_root", "chroot", "swapon", "swapoff", "reboot",
        "sethostname", "setdomainname", "init_module", "finit_module", "delete_module",
        "kexec_load", "kexec_file_load", "acct", "quotactl", "unshare", "setns", "bpf",
        "userfaultfd", "keyctl", "add_key", "request_key", "fanotify_init", "io_uring_setup",
        "io_uring_enter", "io_uring_register", "open_tree", "move_mount", "fsopen",
        "fsconfig", "fsmount", "fspick", "mount_setattr",
    )),
}

# clone flags that create namespaces; a thread clone never needs them
_CLONE_THREAD = 0x00010000
_CLONE_NS_FLAGS = 0x7E020000  # NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
# prctl options the runtime may use: only reads. Everything else (PR_SET_PDEATHSIG above all:
# clearing it would let the child outlive its host; PR_SET_DUMPABLE would reopen /proc/<pid>/mem
# and ptrace to its uid) is refused.
PRCTL_ALLOWED = (
    2,   # PR_GET_PDEATHSIG: doctor and the layer report read it
    3,   # PR_GET_DUMPABLE
    21,  # PR_GET_SECCOMP: confine checks the filter is in force (measured)
    39,  # PR_GET_NO_NEW_PRIVS
)
# ioctl requests the runtime may make: descriptor flags only. TIOCSTI (pushes bytes into a
# terminal's input queue) and every driver ioctl are refused.
IOCTL_ALLOWED = (
    0x5421,  # FIONBIO: os.set_blocking on the channel (measured)
    0x5450,  # FIONCLEX
    0x5451,  # FIOCLEX
)
# fcntl commands the runtime may use: descriptor flags only. F_SETOWN/F_SETSIG would aim
# SIGIO at another process, F_DUPFD makes descriptors, locks touch shared files.
FCNTL_ALLOWED = (
    1,  # F_GETFD
    2,  # F_SETFD
    3,  # F_GETFL
    4,  # F_SETFL
)


def _stmt(code: int, k: int) -> tuple[int, int, int, int]:
    return (code, 0, 0, k)


def _jump(code: int, k: int, jt: int, jf: int) -> tuple[int, int, int, int]:
    return (code, jt, jf, k)


Insn = tuple[int, int, int, int]
_EPERM = RET_ERRNO | errno.EPERM


def _one_of(values: tuple[int, ...]) -> list[Insn]:
    """Accumulator (an argument) is one of `values`: allow; else EPERM. Always returns."""
    out: list[Insn] = []
    for i, v in enumerate(values):
        out.append(_jump(_JEQ_K, v, len(values) - i, 0))
    out += [_stmt(_RET_K, _EPERM), _stmt(_RET_K, RET_ALLOW)]
    return out


def _arg_rules(own_pid: int) -> dict[str, list[Insn]]:
    """Per-call blocks run with the syscall number matched; each block ends in a return."""
    self_only = [
        # arg0 is the target pid / tgid / tid; the child is single-threaded
        _stmt(_LD_W_ABS, _arg_lo(0)),
        _jump(_JEQ_K, own_pid, 0, 1),
        _stmt(_RET_K, RET_ALLOW),
        _stmt(_RET_K, _EPERM),
    ]
    return {
        "kill": self_only,
        "tgkill": self_only,
        "tkill": self_only,
        # threads only, and never with namespace flags
        "clone": [
            _stmt(_LD_W_ABS, _arg_lo(0)),
            _jump(_JSET_K, _CLONE_NS_FLAGS, 2, 0),
            _jump(_JSET_K, _CLONE_THREAD, 0, 1),
            _stmt(_RET_K, RET_ALLOW),
            _stmt(_RET_K, _EPERM),
        ],
        "prctl": [_stmt(_LD_W_ABS, _arg_lo(0)), *_one_of(PRCTL_ALLOWED)],
        "ioctl": [_stmt(_LD_W_ABS, _arg_lo(1)), *_one_of(IOCTL_ALLOWED)],
        "fcntl": [_stmt(_LD_W_ABS, _arg_lo(1)), *_one_of(FCNTL_ALLOWED)],
        # prlimit64(pid, resource, new, old): only reading its own limits (pid 0, new NULL);
        # another process's limits, or changing its own, is refused
        "prlimit64": [
            _stmt(_LD_W_ABS, _arg_lo(0)),
            _jump(_JEQ_K, 0, 0, 5),
            _stmt(_LD_W_ABS, _arg_lo(2)),
            _jump(_JEQ_K, 0, 0, 3),
            _stmt(_LD_W_ABS, _arg_hi(2)),
            _jump(_JEQ_K, 0, 0, 1),
            _stmt(_RET_K, RET_ALLOW),
            _stmt(_RET_K, _EPERM),
        ],
    }


# The most syscall numbers a leaf of the search tests one after another. Four keeps every path
# short (~7 comparisons down the tree, at most 4 in a leaf) while the tree adds few jumps.
_LEAF = 4
_MAX_JUMP = 255  # jt/jf are one byte


def build_filter(own_pid: int) -> list[Insn]:
    """Assemble the program as (code, jt, jf, k) tuples."""
    prog: list[Insn] = [
        _stmt(_LD_W_ABS, _OFF_ARCH),
        _jump(_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        _stmt(_RET_K, RET_KILL_PROCESS),
        _stmt(_LD_W_ABS, _OFF_NR),
        _jump(_JGE_K, X32_SYSCALL_BIT, 0, 1),
        _stmt(_RET_K, RET_KILL_PROCESS),
    ]
    # The accumulator holds the syscall number from here on: every block that loads an
    # argument ends in a return, so a non-matching test falls through with nr intact.
    for name in ("read", "write"):  # the hot path, before any search (kernels without the cache)
        prog += [_jump(_JEQ_K, NR[name], 0, 1), _stmt(_RET_K, RET_ALLOW)]
    return prog + _search(sorted(_actions(own_pid).items()))


def _actions(own_pid: int) -> dict[int, list[Insn]]:
    """Each named call's block by its number; every block ends in a return."""
    out: dict[int, list[Insn]] = {}
    named = [(name, [_stmt(_RET_K, RET_ALLOW)]) for name in ALLOW]
    named += list(_arg_rules(own_pid).items())
    named += [(name, [_stmt(_RET_K, RET_ERRNO | err)])
              for err, names in REFUSE.values() for name in names]
    for name, block in named:
        if NR[name] in out:  # one rule per call: two would leave which one holds to the order
            raise ValueError(f"seccomp: {name} has two rules")
        out[NR[name]] = block
    return out


def _search(entries: list[tuple[int, list[Insn]]]) -> list[Insn]:
    """Binary search over `entries` (sorted by number) for the number in the accumulator; a
    number with no entry kills the process. Every path ends in a return."""
    if len(entries) <= _LEAF:
        out: list[Insn] = []
        for nr, block in entries:
            out += [_jump(_JEQ_K, nr, 0, len(block)), *block]
        return [*out, _stmt(_RET_K, RET_KILL_PROCESS)]
    mid = len(entries) // 2
    below, above = _search(entries[:mid]), _search(entries[mid:])
    pivot = entries[mid][0]
    if len(below) <= _MAX_JUMP:
        return [_jump(_JGE_K, pivot, len(below), 0), *below, *above]
    # too far for a conditional jump: over an unconditional one
    return [_jump(_JGE_K, pivot, 0, 1), _stmt(_JA, len(below)), *below, *above]


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


_INSN = struct.Struct("HBBI")  # struct sock_filter
# Stands for the child's pid in the prebuilt program. A pid is at most 2**22 (pid_max), so no
# real pid and no other constant of the filter is this value (`prepare` checks the latter).
_PID_MARK = 0xFFFF_FFFF
_program: tuple[bytes, tuple[int, ...]] | None = None
# The program as the kernel reads it (a C buffer and its sock_fprog), built with the program.
_loaded: tuple[ctypes.Array[ctypes.c_char], _SockFprog] | None = None


def prepare() -> tuple[bytes, tuple[int, ...]]:
    """The program assembled once per process: its packed bytes and where the pid goes.

    The zygote calls this before it forks, so a child only patches in its own pid: assembling
    ~200 instructions, or even building the C buffer the kernel reads them from, in the child
    would allocate (and copy from the zygote) memory it keeps.
    """
    global _program, _loaded
    if _program is None:
        prog = build_filter(_PID_MARK)
        raw = b"".join(_INSN.pack(c, jt, jf, k) for c, jt, jf, k in prog)
        marks = tuple(i * _INSN.size + 4 for i, insn in enumerate(prog) if insn[3] == _PID_MARK)
        if len(marks) != 3:  # kill, tgkill, tkill: anything else means the mark collided
            raise RuntimeError(f"seccomp: expected 3 pid slots in the filter, found {len(marks)}")
        buf = ctypes.create_string_buffer(raw, len(raw))
        _loaded = (buf, _SockFprog(len(raw) // _INSN.size, ctypes.addressof(buf)))
        _program = (raw, marks)
    return _program


def _patched(own_pid: int) -> tuple[ctypes.Array[ctypes.c_char], _SockFprog]:
    """The prebuilt C buffer with `own_pid` written into its pid slots, and its sock_fprog.

    Patched in place: in a forked child the buffer is the child's own copy of the zygote's.
    """
    _raw, marks = prepare()
    assert _loaded is not None  # set by prepare
    buf, fprog = _loaded
    for offset in marks:
        struct.pack_into("I", buf, offset, own_pid)
    return buf, fprog


def program(own_pid: int) -> bytes:
    """The packed filter for a process whose pid is `own_pid`: exactly what `install` hands
    the kernel (the prebuilt buffer, patched)."""
    return _patched(own_pid)[0].raw


def install(own_pid: int) -> None:
    """Install the filter on every thread of this process (TSYNC). Needs no-new-privs first."""
    _buf, fprog = _patched(own_pid)
    rc = native.libc().syscall(
        NR_SECCOMP, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, ctypes.byref(fprog)
    )
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp filter refused by the kernel: {errno.errorcode.get(err)}")
