"""A seccomp-BPF filter for the app child (x86-64), installed with TSYNC so it covers every thread.

Why hand-assembled: the filter is ~100 instructions of a fixed shape, and building it here
keeps the child free of a native dependency (libseccomp's Python bindings are not on PyPI as a
wheel). The program:

1. kills the process for any architecture but x86-64 and for the x32 ABI (syscall numbers
   with bit 30 set), so a 32-bit `int 0x80` cannot reach syscalls by other numbers;
2. lets the hot `read`/`write` calls through first;
3. refuses with an errno: every way to make a network endpoint, run a program, make a
   process, inspect or signal another process, open or change a file, change identity, load
   kernel code, or enter namespaces;
4. allows `kill`/`tgkill`/`tkill` only when aimed at the child's own pid (so `abort()` works);
5. allows `clone` only for threads without namespace flags (RLIMIT_NPROC=0 refuses those too);
6. allows the rest (memory, time, futexes, signals handlers, exit).
"""
from __future__ import annotations

import ctypes
import errno
import struct

from sandbox import native

# BPF opcodes (linux/filter.h)
_LD_W_ABS = 0x20
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


# syscall name -> number (x86-64)
NR = {
    "read": 0, "write": 1, "open": 2, "stat": 4, "lstat": 6, "ioctl": 16, "access": 21,
    "socket": 41, "connect": 42, "accept": 43, "sendto": 44, "recvfrom": 45, "sendmsg": 46,
    "recvmsg": 47, "shutdown": 48, "bind": 49, "listen": 50, "getsockname": 51,
    "getpeername": 52, "socketpair": 53, "setsockopt": 54, "getsockopt": 55, "clone": 56,
    "fork": 57, "vfork": 58, "execve": 59, "kill": 62, "truncate": 76, "ftruncate": 77,
    "getdents": 78, "chdir": 80, "fchdir": 81, "rename": 82, "mkdir": 83, "rmdir": 84,
    "creat": 85, "link": 86, "unlink": 87, "symlink": 88, "readlink": 89, "chmod": 90,
    "fchmod": 91, "chown": 92, "fchown": 93, "lchown": 94, "ptrace": 101, "setuid": 105,
    "setgid": 106, "setreuid": 113, "setregid": 114, "setgroups": 116, "setresuid": 117,
    "setresgid": 119, "setfsuid": 122, "setfsgid": 123, "capset": 126,
    "rt_sigqueueinfo": 129, "utime": 132, "mknod": 133, "personality": 135, "statfs": 137,
    "pivot_root": 155, "chroot": 161, "acct": 163, "mount": 165, "umount2": 166,
    "swapon": 167, "swapoff": 168, "reboot": 169, "sethostname": 170, "setdomainname": 171,
    "init_module": 175, "delete_module": 176, "quotactl": 179, "setxattr": 188,
    "lsetxattr": 189, "fsetxattr": 190, "getxattr": 191, "lgetxattr": 192, "fgetxattr": 193,
    "listxattr": 194, "llistxattr": 195, "flistxattr": 196, "removexattr": 197,
    "lremovexattr": 198, "fremovexattr": 199, "tkill": 200, "getdents64": 217,
    "tgkill": 234, "utimes": 235, "kexec_load": 246, "add_key": 248, "request_key": 249,
    "keyctl": 250, "openat": 257, "mkdirat": 258, "mknodat": 259, "fchownat": 260,
    "futimesat": 261, "newfstatat": 262, "unlinkat": 263, "renameat": 264, "linkat": 265,
    "symlinkat": 266, "readlinkat": 267, "fchmodat": 268, "faccessat": 269, "unshare": 272,
    "utimensat": 280, "accept4": 288, "rt_tgsigqueueinfo": 297, "perf_event_open": 298,
    "recvmmsg": 299, "fanotify_init": 300, "name_to_handle_at": 303,
    "open_by_handle_at": 304, "sendmmsg": 307, "setns": 308, "process_vm_readv": 310,
    "process_vm_writev": 311, "kcmp": 312, "finit_module": 313, "renameat2": 316,
    "memfd_create": 319, "kexec_file_load": 320, "bpf": 321, "execveat": 322,
    "userfaultfd": 323, "statx": 332, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "open_tree": 428, "move_mount": 429, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433, "pidfd_open": 434, "clone3": 435,
    "openat2": 437, "pidfd_getfd": 438, "faccessat2": 439, "process_madvise": 440,
    "mount_setattr": 442, "memfd_secret": 447, "pidfd_send_signal": 424,
}

# What each refused group guards. The errno is what the (escaped) code sees.
DENY: dict[str, tuple[int, tuple[str, ...]]] = {
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
    # no inspecting or signalling other processes
    "inspect": (errno.EPERM, (
        "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_open",
        "pidfd_getfd", "pidfd_send_signal", "process_madvise", "rt_sigqueueinfo",
        "rt_tgsigqueueinfo", "perf_event_open",
    )),
    # no file access at all: app source arrives over the channel, so the child opens nothing
    "files": (errno.EACCES, (
        "open", "openat", "openat2", "creat", "open_by_handle_at", "name_to_handle_at",
        "stat", "lstat", "newfstatat", "statx", "access", "faccessat", "faccessat2",
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
_TIOCSTI = 0x5412  # pushes bytes into a terminal's input queue: a classic escape


def _stmt(code: int, k: int) -> tuple[int, int, int, int]:
    return (code, 0, 0, k)


def _jump(code: int, k: int, jt: int, jf: int) -> tuple[int, int, int, int]:
    return (code, jt, jf, k)


def build_filter(own_pid: int) -> list[tuple[int, int, int, int]]:
    """Assemble the program as (code, jt, jf, k) tuples."""
    deny: list[tuple[int, int]] = []  # (nr, errno)
    for err, names in DENY.values():
        deny.extend((NR[n], err) for n in names)
    prog: list[tuple[int, int, int, int]] = [
        _stmt(_LD_W_ABS, _OFF_ARCH),
        _jump(_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        _stmt(_RET_K, RET_KILL_PROCESS),
        _stmt(_LD_W_ABS, _OFF_NR),
        _jump(_JGE_K, X32_SYSCALL_BIT, 0, 1),
        _stmt(_RET_K, RET_KILL_PROCESS),
        _jump(_JEQ_K, NR["read"], 0, 1),
        _stmt(_RET_K, RET_ALLOW),
        _jump(_JEQ_K, NR["write"], 0, 1),
        _stmt(_RET_K, RET_ALLOW),
    ]
    for nr, err in deny:
        prog.append(_jump(_JEQ_K, nr, 0, 1))
        prog.append(_stmt(_RET_K, RET_ERRNO | err))
    # signals: only to ourselves (arg0 is the target pid / tgid / tid; single-threaded child)
    for name in ("kill", "tgkill", "tkill"):
        prog += [
            _jump(_JEQ_K, NR[name], 0, 4),
            _stmt(_LD_W_ABS, _arg_lo(0)),
            _jump(_JEQ_K, own_pid, 0, 1),
            _stmt(_RET_K, RET_ALLOW),
            _stmt(_RET_K, RET_ERRNO | errno.EPERM),
        ]
    # clone: threads only, and never with namespace flags
    prog += [
        _jump(_JEQ_K, NR["clone"], 0, 6),
        _stmt(_LD_W_ABS, _arg_lo(0)),
        _jump(_JSET_K, _CLONE_NS_FLAGS, 3, 0),
        _jump(_JSET_K, _CLONE_THREAD, 0, 2),
        _stmt(_RET_K, RET_ALLOW),
        _stmt(_RET_K, RET_ALLOW),  # unreachable filler keeps the offsets readable
        _stmt(_RET_K, RET_ERRNO | errno.EPERM),
    ]
    # ioctl: refuse TIOCSTI whatever the descriptor
    prog += [
        _stmt(_LD_W_ABS, _OFF_NR),
        _jump(_JEQ_K, NR["ioctl"], 0, 3),
        _stmt(_LD_W_ABS, _arg_lo(1)),
        _jump(_JEQ_K, _TIOCSTI, 0, 1),
        _stmt(_RET_K, RET_ERRNO | errno.EPERM),
        _stmt(_RET_K, RET_ALLOW),
    ]
    return prog


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
