"""Assume escape: unrestricted Python inside the confined child must still be refused by the OS.

RestrictedPython is one wall, not the wall (DESIGN rule 5). These tests skip it entirely: the
test forks, applies `sandbox.confine.confine(...)` to the fork exactly as the zygote does for an
app child (`sandbox/zygote.py::_child`: its own network namespace first, then every layer), and
then runs raw Python/ctypes attacks in the confined fork. Each attack's outcome travels back over
the channel pipe (fd 4 after confinement) as JSON; the parent asserts every one was refused and,
for file attacks, also checks the filesystem itself afterwards (a refusal message alone could
lie).

Attacks whose expected outcome is the kernel killing the process (x32 ABI, `int 0x80`) run in
their own fork, and the parent checks the wait status.

The last tests check the memory of real zygote children: no signing key, no other app's token.
This machine's CI runs as root (uid drop and /proc/<pid>/mem need it); the root-only checks
assert that rather than skip.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import mmap
import os
import re
import resource
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from sechelp import settle_heap

from host.clock import SystemClock
from host.keys import tokens
from host.keys.keyring import Keyring
from host.supervise.child import ChildLimits
from host.supervise.spawner import Spawner
from sandbox import confine

IS_ROOT = os.geteuid() == 0
libc = ctypes.CDLL(None, use_errno=True)

Attack = Callable[[], str]  # returns a description if the attack SUCCEEDED; raises if refused


def _discard(_value: object) -> None:
    """Call-site helper for lambdas that must return None."""


def _confined_fork(body: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], int]:
    """Fork; in the child confine exactly like the zygote, run `body`, send its dict back.

    Returns (result dict, wait status). The child always leaves through os._exit.
    """
    out_r, out_w = os.pipe()
    in_r, in_w = os.pipe()
    err_r, err_w = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # ---- the confined child ----
        code = 0
        try:
            settle_heap()
            os.close(out_r)
            os.close(in_w)
            os.close(err_r)
            devnull = os.open("/dev/null", os.O_RDWR)
            netns = confine.unshare_network()  # the zygote does this once, before forking
            report = confine.confine(
                chan_in=in_r, chan_out=out_w, err_fd=err_w, devnull_fd=devnull,
                parent_pid=parent, limits=confine.Limits(), netns_done=netns,
            )
            result = body()
            result["__layers__"] = asdict(report)
            data = json.dumps(result).encode()
            view = memoryview(data)
            while view:
                view = view[os.write(confine.CHANNEL_OUT_FD, view):]
        except BaseException as exc:  # report anything; never return to pytest
            with contextlib.suppress(BaseException):
                os.write(confine.CHANNEL_OUT_FD, json.dumps({"__crash__": repr(exc)}).encode())
            code = 70
        finally:
            os._exit(code)
    # ---- the test process ----
    os.close(out_w)
    os.close(in_r)
    os.close(err_w)
    chunks = []
    while chunk := os.read(out_r, 1 << 16):
        chunks.append(chunk)
    os.close(out_r)
    os.close(in_w)
    os.close(err_r)
    _, status = os.waitpid(pid, 0)
    raw = b"".join(chunks)
    return (json.loads(raw) if raw else {}), status


def _run_attacks(attacks: dict[str, Attack]) -> dict[str, Any]:
    """Run each attack; record 'refused: <error>' or 'SUCCEEDED: <detail>'."""
    results: dict[str, Any] = {}
    for name, fn in attacks.items():
        try:
            detail = fn()
            results[name] = f"SUCCEEDED: {detail}"[:300]
        except BaseException as exc:  # any refusal shape is a refusal
            results[name] = f"refused: {type(exc).__name__}: {exc}"[:300]
    return results


def _check(rc: int, what: str) -> str:
    """ctypes helper: a libc call that returned >= 0 succeeded."""
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return f"{what} returned {rc}"


# ---- the attack catalogue (module level so everything is imported before confinement) ------

def _attacks(ctx: dict[str, Any]) -> dict[str, Attack]:
    host_pid: int = ctx["host_pid"]
    other_pid: int = ctx["other_pid"]
    home: str = ctx["home"]
    keyfile: str = ctx["keyfile"]
    victim: str = ctx["victim"]
    tag: str = ctx["tag"]

    def sock(family: int, kind: int = socket.SOCK_STREAM) -> Attack:
        def f() -> str:
            s = socket.socket(family, kind)
            return f"socket {s}"
        return f

    def connect_tcp() -> str:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(1)
        s.connect(("127.0.0.1", 22))
        return f"connected {s}"

    def connect_abstract_unix() -> str:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect("\0stockade-assume-escape")
        return "connected"

    def socketpair() -> str:
        a, b = socket.socketpair()
        return f"pair {a} {b}"

    def raw_socket_syscall() -> str:
        return _check(libc.syscall(41, 2, 1, 0), "syscall(socket)")

    def write_file(path: str) -> Attack:
        def f() -> str:
            with open(path, "w") as fh:
                fh.write("pwned")
            return f"wrote {path}"
        return f

    def os_open_write(path: str) -> Attack:
        def f() -> str:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
            os.write(fd, b"pwned")
            return f"wrote {path} via fd {fd}"
        return f

    def read_file(path: str) -> Attack:
        def f() -> str:
            with open(path, "rb") as fh:
                return f"read {len(fh.read(4096))} bytes of {path}"
        return f

    def ptrace_attach() -> str:
        return _check(libc.ptrace(16, host_pid, 0, 0), "ptrace(PTRACE_ATTACH, host)")

    def ptrace_traceme() -> str:
        return _check(libc.ptrace(0, 0, 0, 0), "ptrace(PTRACE_TRACEME)")

    def vm_readv() -> str:
        class IoVec(ctypes.Structure):
            _fields_ = (("base", ctypes.c_void_p), ("len", ctypes.c_size_t))
        buf = ctypes.create_string_buffer(64)
        local = IoVec(ctypes.addressof(buf), 64)
        remote = IoVec(0x400000, 64)
        return _check(libc.syscall(310, host_pid, ctypes.byref(local), 1,
                                   ctypes.byref(remote), 1, 0), "process_vm_readv(host)")

    def kill(pid: int, sig: int = 0) -> Attack:
        def f() -> str:
            os.kill(pid, sig)
            return f"signalled {pid}"
        return f

    def thread() -> str:
        t = threading.Thread(target=lambda: None)
        t.start()
        t.join()
        return "thread ran"

    def fork() -> str:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        return f"forked {pid}"

    def posix_spawn() -> str:
        return f"spawned {os.posix_spawn('/bin/true', ['true'], {})}"

    def subprocess_run() -> str:
        return f"ran {subprocess.run(['/bin/true'], check=False)}"

    def execv() -> str:
        os.execv("/bin/sh", ["sh", "-c", f"touch /tmp/{tag}-exec"])
        return "exec returned?"

    def clone_newuser() -> str:
        return _check(libc.unshare(0x10000000), "unshare(CLONE_NEWUSER)")

    def clone_newns() -> str:
        return _check(libc.unshare(0x00020000), "unshare(CLONE_NEWNS)")

    def mount_tmpfs() -> str:
        return _check(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None), "mount")

    def tiocsti() -> str:
        c = ctypes.c_char(b"x")
        rc = libc.ioctl(0, 0x5412, ctypes.byref(c))
        if rc < 0 and ctypes.get_errno() != errno.EPERM:
            # ENOTTY would mean the filter let it through to the driver
            return f"TIOCSTI reached the driver (errno {ctypes.get_errno()})"
        return _check(rc, "ioctl(TIOCSTI)")

    def memfd() -> str:
        return f"memfd {os.memfd_create('x')}"

    def io_uring() -> str:
        params = ctypes.create_string_buffer(120)
        return _check(libc.syscall(425, 8, params), "io_uring_setup")

    def bpf() -> str:
        return _check(libc.syscall(321, 0, None, 0), "bpf")

    def userfaultfd() -> str:
        return _check(libc.syscall(323, 0), "userfaultfd")

    def setuid0() -> str:
        os.setuid(0)
        return f"uid now {os.getuid()}"

    def setgid0() -> str:
        os.setgid(0)
        return f"gid now {os.getgid()}"

    def raise_nofile() -> str:
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
        return "raised RLIMIT_NOFILE"

    def raise_as() -> str:
        resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        return "removed RLIMIT_AS"

    def mkdir() -> str:
        os.mkdir(f"/tmp/{tag}-dir")
        return "made a directory"

    def unlink() -> str:
        os.unlink(victim)
        return "unlinked the victim"

    def rename() -> str:
        os.rename(victim, victim + ".moved")
        return "renamed the victim"

    def chmod() -> str:
        os.chmod(victim, 0o777)
        return "chmod the victim"

    def symlink() -> str:
        os.symlink("/etc/passwd", f"/tmp/{tag}-link")
        return "made a symlink"

    def listdir() -> str:
        return f"listed {len(os.listdir('/'))} entries"

    def chdir() -> str:
        os.chdir("/tmp")
        return "changed directory"

    def inherited_fd() -> str:
        # Asked with F_GETFD, which the filter allows: fstat is refused (EACCES) for every
        # descriptor, open or not, so a probe with it found none even when one was inherited.
        open_fds = []
        for fd in range(5, 4096):
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, fcntl.F_GETFD)
                open_fds.append(fd)
        if open_fds:
            return f"inherited descriptors open: {open_fds}"
        raise OSError("no inherited descriptor")

    def environment() -> str:
        if os.environ:
            return f"environment not empty: {sorted(os.environ)[:5]}"
        raise OSError("environment empty")

    def cwd_writable() -> str:
        return write_file(f"./{tag}-cwd")()

    def pidfd() -> str:
        return f"pidfd {os.pidfd_open(host_pid)}"

    return {
        # network, every family and route
        "socket_inet": sock(socket.AF_INET),
        "socket_inet6": sock(socket.AF_INET6),
        "socket_unix": sock(socket.AF_UNIX),
        "socket_netlink": sock(socket.AF_NETLINK, socket.SOCK_RAW),
        "socket_packet": sock(socket.AF_PACKET, socket.SOCK_RAW),
        "socket_udp": sock(socket.AF_INET, socket.SOCK_DGRAM),
        "socketpair": socketpair,
        "socket_raw_syscall": raw_socket_syscall,
        "connect_tcp": connect_tcp,
        "connect_abstract_unix": connect_abstract_unix,
        # new programs, processes and threads
        "execv": execv,
        "fork": fork,
        "posix_spawn": posix_spawn,
        "subprocess": subprocess_run,
        "thread": thread,
        "unshare_user": clone_newuser,
        "unshare_mount": clone_newns,
        "mount": mount_tmpfs,
        # other processes
        "ptrace_attach_host": ptrace_attach,
        "ptrace_traceme": ptrace_traceme,
        "process_vm_readv_host": vm_readv,
        "kill_host": kill(host_pid),
        "kill_host_sigkill": kill(host_pid, signal.SIGKILL),
        "kill_init": kill(1),
        "kill_other_child": kill(other_pid, signal.SIGKILL),
        "kill_process_group": kill(0, 0),
        "kill_everything": kill(-1, 0),
        "pidfd_open_host": pidfd,
        "ioctl_tiocsti": tiocsti,
        # files: writes
        "write_tmp": write_file(f"/tmp/{tag}-w"),
        "write_tmp_os_open": os_open_write(f"/tmp/{tag}-o"),
        "write_home": write_file(f"{home}/{tag}-home"),
        "write_cwd": cwd_writable,
        "write_dev_shm": write_file(f"/dev/shm/{tag}-shm"),
        "mkdir": mkdir,
        "unlink": unlink,
        "rename": rename,
        "chmod": chmod,
        "symlink": symlink,
        "memfd_create": memfd,
        # files: reads
        "read_etc_passwd": read_file("/etc/passwd"),
        "read_proc_self_environ": read_file("/proc/self/environ"),
        "read_proc_host_mem": read_file(f"/proc/{host_pid}/mem"),
        "read_proc_host_environ": read_file(f"/proc/{host_pid}/environ"),
        "read_keys_file": read_file(keyfile),
        "read_victim": read_file(victim),
        "listdir_root": listdir,
        "chdir": chdir,
        # identity and limits
        "setuid0": setuid0,
        "setgid0": setgid0,
        "raise_rlimit_nofile": raise_nofile,
        "raise_rlimit_as": raise_as,
        # kernel surface
        "io_uring_setup": io_uring,
        "bpf": bpf,
        "userfaultfd": userfaultfd,
        # state confinement should have left behind
        "inherited_fds": inherited_fd,
        "environment": environment,
    }


@pytest.fixture(scope="module")
def assume_escape_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One confined fork runs the whole catalogue (each attack is independent)."""
    tmp = tmp_path_factory.mktemp("assume-escape")
    home = tmp / "home"
    home.mkdir()
    os.chmod(tmp, 0o755)
    os.chmod(home, 0o777)  # world-writable: only the sandbox can stop the write, not DAC
    ring = Keyring.open(home / "keys")
    keyfile = str(home / "keys" / f"{ring.current}.key")
    victim = home / "victim.txt"
    victim.write_text("intact")
    os.chmod(victim, 0o666)
    tag = "stockade-ae-" + secrets.token_hex(4)
    other = subprocess.Popen(["sleep", "60"])
    # an inherited, non-CLOEXEC descriptor to the key file: confinement must close it
    leak_fd = os.open(keyfile, os.O_RDONLY)
    os.set_inheritable(leak_fd, True)
    try:
        ctx = {"host_pid": os.getpid(), "other_pid": other.pid, "home": str(home),
               "keyfile": keyfile, "victim": str(victim), "tag": tag}
        attacks = _attacks(ctx)
        results, status = _confined_fork(lambda: _run_attacks(attacks))
        results["__status__"] = status
        results["__other_alive__"] = other.poll() is None
        results["__victim__"] = victim.read_text() if victim.exists() else None
        results["__victim_mode__"] = oct(victim.stat().st_mode & 0o777) if victim.exists() else None
        leftovers = [str(p) for p in (*Path("/tmp").glob(tag + "*"), *home.glob(tag + "*"),
                                      *Path("/").glob(tag + "*"),
                                      *Path("/dev/shm").glob(tag + "*"))]
        results["__leftovers__"] = leftovers
        for p in leftovers:
            with contextlib.suppress(OSError):
                os.unlink(p) if not os.path.isdir(p) else os.rmdir(p)
        return results
    finally:
        os.close(leak_fd)
        other.kill()
        other.wait()


ATTACK_NAMES = sorted(_attacks({"host_pid": 1, "other_pid": 1, "home": "", "keyfile": "",
                                "victim": "", "tag": ""}))


def test_confined_fork_ran(assume_escape_results: dict[str, Any]) -> None:
    """The harness itself worked: the fork confined itself and ran every attack."""
    assert "__crash__" not in assume_escape_results, assume_escape_results.get("__crash__")
    status = assume_escape_results["__status__"]
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    assert set(ATTACK_NAMES) <= set(assume_escape_results)


@pytest.mark.parametrize("attack", ATTACK_NAMES)
def test_os_refuses(assume_escape_results: dict[str, Any], attack: str) -> None:
    outcome = assume_escape_results[attack]
    assert outcome.startswith("refused"), f"{attack}: {outcome}"


def test_layer_report_complete(assume_escape_results: dict[str, Any]) -> None:
    """Every layer reported applied (the host refuses to run apps otherwise)."""
    layers = assume_escape_results["__layers__"]
    for name in ("seccomp", "landlock", "no_new_privs", "netns", "ipcns", "rlimits", "pdeathsig",
                 "fds_closed", "empty_env", "uid_dropped", "empty_root"):
        assert layers[name] is True, (name, layers)


def test_filesystem_untouched(assume_escape_results: dict[str, Any]) -> None:
    """Check the world, not the messages: no file created, the victim unchanged."""
    assert assume_escape_results["__leftovers__"] == []
    assert assume_escape_results["__victim__"] == "intact"
    assert assume_escape_results["__victim_mode__"] == "0o666"
    assert assume_escape_results["__other_alive__"] is True


def test_errors_come_from_the_os_layers(assume_escape_results: dict[str, Any]) -> None:
    """The refusals are the filter's errnos, not accidents (e.g. a missing file)."""
    assert "Errno 1]" in assume_escape_results["socket_inet"]  # EPERM from seccomp
    assert "Errno 13]" in assume_escape_results["read_etc_passwd"]  # EACCES from seccomp
    assert "Errno 1]" in assume_escape_results["fork"]
    assert "Errno 1]" in assume_escape_results["kill_host"]


def _killed_by_kernel(body: Callable[[], None]) -> int:
    def run() -> dict[str, Any]:
        body()
        return {"returned": True}
    result, status = _confined_fork(run)
    assert "returned" not in result, "the forbidden syscall returned instead of killing"
    assert os.WIFSIGNALED(status), f"expected death by signal, got status {status}"
    return os.WTERMSIG(status)


def test_x32_abi_syscall_kills_the_process() -> None:
    # bit 30 set: the x32 ABI aliases of every syscall number; the filter kills outright so a
    # number the deny list covers cannot be reached by its x32 twin
    sig = _killed_by_kernel(lambda: libc.syscall(0x40000000 | 39))
    assert sig == signal.SIGSYS


def test_int80_i386_syscall_kills_the_process() -> None:
    # `mov eax, 20 (getpid, i386 table); int 0x80; ret` in an executable page: the i386 entry
    # point has another syscall table, so the filter kills any non-x86-64 architecture.
    code = bytes([0xB8, 0x14, 0, 0, 0, 0xCD, 0x80, 0xC3])
    page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(code)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(page))
    func = ctypes.CFUNCTYPE(ctypes.c_int)(addr)
    sig = _killed_by_kernel(lambda: _discard(func()))
    # SIGSYS from the filter; SIGSEGV if this kernel has no IA-32 emulation at all
    assert sig in (signal.SIGSYS, signal.SIGSEGV)


def test_cpu_rlimit_kills_a_spinning_escape() -> None:
    """Backstop under the host's deadline: RLIMIT_CPU ends unrestricted spinning on its own."""
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            settle_heap()
            devnull = os.open("/dev/null", os.O_RDWR)
            in_r, _in_w = os.pipe()
            _err_r, err_w = os.pipe()
            confine.confine(chan_in=in_r, chan_out=out_w, err_fd=err_w, devnull_fd=devnull,
                            parent_pid=os.getppid(), limits=confine.Limits(cpu_seconds=1),
                            netns_done=confine.unshare_network())
            while True:
                pass
        finally:
            os._exit(70)
    os.close(out_w)
    start = time.monotonic()
    _, status = os.waitpid(pid, 0)
    os.close(out_r)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGXCPU, signal.SIGKILL)
    assert time.monotonic() - start < 5


# ---- secrets are not in the children's memory ---------------------------------------------


def _scan_memory(pid: int, needles: dict[str, bytes]) -> set[str]:
    """Names of the needles found anywhere in the readable memory of `pid` (needs root)."""
    found: set[str] = set()
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
            if not m or m.group(3)[0] != "r" or "[vvar" in line or "[vsyscall" in line:
                continue
            start, end = int(m.group(1), 16), int(m.group(2), 16)
            try:
                mem.seek(start)
                data = mem.read(end - start)
            except OSError:
                continue
            for name, needle in needles.items():
                if needle in data:
                    found.add(name)
    return found


@pytest.fixture(scope="module")
def two_children(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from cryptography.hazmat.primitives import serialization

    home = tmp_path_factory.mktemp("memscan")
    ring = Keyring.open(home / "keys")
    clock = SystemClock()
    spawner = Spawner(use_zygote=True)
    kids = [spawner.start(ChildLimits()) for _ in range(2)]
    toks = []
    for kid in kids:
        tok = tokens.issue(ring, clock, app_id=f"app-{kid.pid}", install_id="i",
                           session_id=kid.session_id, generation=1, epoch=1,
                           permissions=frozenset({"users.read"}), policy_hash="p")
        kid.handshake(tok, lambda t, s=kid.session_id: _discard(
            tokens.verify(t, ring, clock, session_id=s)), degraded=False)
        toks.append(tok)
    key = ring._private[ring.current].private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
        serialization.NoEncryption())
    try:
        yield spawner, kids, toks, key
    finally:
        for kid in kids:
            kid.shutdown(0.5)
        spawner.close()


def test_zygote_is_a_fresh_interpreter_with_empty_env(two_children: Any) -> None:
    """The zygote cannot hold host secrets: it never shared the host's memory or environment."""
    assert IS_ROOT, "CI runs as root here; this check reads another process's /proc"
    spawner = two_children[0]
    zpid = spawner.zygote.pid
    assert Path(f"/proc/{zpid}/environ").read_bytes() == b""
    argv = Path(f"/proc/{zpid}/cmdline").read_bytes().split(b"\0")
    assert argv[0] == sys.executable.encode()
    assert argv[1:4] == [b"-I", b"-m", b"sandbox.zygote"]
    # its parent is the host itself (it was exec'd, not forked from host memory)
    status = Path(f"/proc/{zpid}/status").read_text()
    assert f"PPid:\t{os.getpid()}\n" in status


def test_children_hold_no_key_and_no_other_token(two_children: Any) -> None:
    assert IS_ROOT, "CI runs as root here; reading /proc/<pid>/mem needs it"
    spawner, kids, toks, key = two_children
    _a, b = kids
    needles = {"key": key, "token_a": toks[0].encode(), "token_b": toks[1].encode()}
    in_b = _scan_memory(b.pid, needles)
    in_zygote = _scan_memory(spawner.zygote.pid, needles)
    # positive control: the scanner does find what *is* there (B's own token, received on
    # its own channel) -- so an empty result below is not a blind scanner
    assert "token_b" in in_b
    assert "key" not in in_b
    assert "token_a" not in in_b
    assert "key" not in in_zygote
    assert not {"token_a", "token_b"} & in_zygote
    # the host itself does hold the key (control for the key needle)
    assert "key" in _scan_memory(os.getpid(), {"key": key})


def test_children_run_as_nobody_with_empty_environ(two_children: Any) -> None:
    assert IS_ROOT
    _spawner, kids, _toks, _key = two_children
    for kid in kids:
        status = Path(f"/proc/{kid.pid}/status").read_text()
        assert re.search(r"^Uid:\t65534\t65534\t65534\t65534$", status, re.M), status
        assert re.search(r"^NoNewPrivs:\t1$", status, re.M)
        assert re.search(r"^Seccomp:\t2$", status, re.M)
        assert re.search(r"^Threads:\t1$", status, re.M)
        fds = sorted(int(n) for n in os.listdir(f"/proc/{kid.pid}/fd"))
        assert fds == [0, 1, 2, 3, 4], fds
        # the child's netns differs from the host's
        assert os.readlink(f"/proc/{kid.pid}/ns/net") != os.readlink("/proc/self/ns/net")


# ---- each wall on its own: Landlock and seccomp each refuse file access without the other ----


def _one_wall(apply: Callable[[], None]) -> dict[str, Any]:
    """Fork, set no-new-privs, apply ONE layer, try to read and write a file."""
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        res: dict[str, Any] = {}
        try:
            settle_heap()
            os.close(out_r)
            libc.prctl(confine.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
            apply()
            for name, fn in (("read", lambda: open("/etc/hostname", "rb").read()),
                             ("write", lambda: open("/tmp/stockade-onewall", "w").write("x"))):
                try:
                    fn()
                    res[name] = "SUCCEEDED"
                except OSError as exc:
                    res[name] = f"refused errno {exc.errno}"
            os.write(out_w, json.dumps(res).encode())
        finally:
            os._exit(0)
    os.close(out_w)
    data = os.read(out_r, 4096)
    os.close(out_r)
    os.waitpid(pid, 0)
    return json.loads(data)  # type: ignore[no-any-return]


def test_landlock_alone_refuses_files() -> None:
    from sandbox import landlock

    res = _one_wall(lambda: _discard(landlock.restrict_self()))
    assert res == {"read": f"refused errno {errno.EACCES}",
                   "write": f"refused errno {errno.EACCES}"}
    assert not Path("/tmp/stockade-onewall").exists()


def test_the_empty_root_alone_refuses_files() -> None:
    """The third wall (`confine.enter_empty_root`) on its own: no path names anything."""
    res = _one_wall(lambda: _discard(confine.enter_empty_root()))
    assert res == {"read": f"refused errno {errno.ENOENT}",
                   "write": f"refused errno {errno.ENOENT}"}
    assert not Path("/tmp/stockade-onewall").exists()


def test_seccomp_alone_refuses_files() -> None:
    from sandbox import seccomp

    res = _one_wall(lambda: seccomp.install(os.getpid()))
    assert res == {"read": f"refused errno {errno.EACCES}",
                   "write": f"refused errno {errno.EACCES}"}
    assert not Path("/tmp/stockade-onewall").exists()
