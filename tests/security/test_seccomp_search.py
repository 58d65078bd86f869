"""The seccomp program's verdict for every syscall number, read by running the program itself.

The filter finds a call's number by binary search (`seccomp._search`); a jump off by one would
send some number to its neighbour's rule (an allowed `mmap` where `mount` was meant), and no
app run exercises all of them. So a small interpreter of the classic BPF the program uses runs
the assembled bytes (exactly what the kernel is given) for every number up to 1,023, the
numbers around the x32 bit and other architectures, and each argument rule's edges, and
compares each verdict with what the tables (`ALLOW`, `REFUSE`, the argument lists) say in
their own terms. It also bounds the path: the kernel runs the program once per syscall number
to build its cache at install (a start's cost), and at every call it cannot cache.
"""
from __future__ import annotations

import errno
import struct

import pytest

from sandbox import seccomp

AUDIT_ARCH_I386 = 0x40000003
OWN_PID = 4242
ALLOW = seccomp.RET_ALLOW
KILL = seccomp.RET_KILL_PROCESS
EPERM = seccomp.RET_ERRNO | errno.EPERM
# The longest path any call may take: arch and x32 checks (6), the hot pair (4), the search
# (~7 comparisons and a leaf), an argument rule (8). A chain past every rule was ~200.
MAX_STEPS = 40

_BY_NR = {nr: name for name, nr in seccomp.NR.items()}
_REFUSED = {name: err for err, names in seccomp.REFUSE.values() for name in names}


def run(prog: bytes, nr: int, arch: int = seccomp.AUDIT_ARCH_X86_64,
        args: tuple[int, ...] = (0, 0, 0, 0, 0, 0)) -> tuple[int, int]:
    """(the program's return value, instructions run) for one `struct seccomp_data`."""
    data = struct.pack("<IIQ6Q", nr & 0xFFFF_FFFF, arch, 0, *args)
    insns = [struct.unpack_from("HBBI", prog, off) for off in range(0, len(prog), 8)]
    acc, pc, steps = 0, 0, 0
    while True:
        code, jt, jf, k = insns[pc]  # running off the end is an IndexError: a broken program
        steps += 1
        if code == 0x20:  # BPF_LD | BPF_W | BPF_ABS
            acc = struct.unpack_from("<I", data, k)[0]
            pc += 1
        elif code == 0x05:  # BPF_JMP | BPF_JA
            pc += 1 + k
        elif code in (0x15, 0x35, 0x45):  # JEQ, JGE, JSET with K
            hit = {0x15: acc == k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += 1 + (jt if hit else jf)
        elif code == 0x06:  # BPF_RET | BPF_K
            return k, steps
        else:
            raise AssertionError(f"instruction {code:#x} at {pc} is not one this test reads")


def expected(nr: int, arch: int, args: tuple[int, ...]) -> int:
    """The verdict the module's tables state, in their own terms."""
    if arch != seccomp.AUDIT_ARCH_X86_64 or nr & 0xFFFF_FFFF >= seccomp.X32_SYSCALL_BIT:
        return KILL
    name = _BY_NR.get(nr)
    lo = [a & 0xFFFF_FFFF for a in args]
    if name in seccomp.ALLOW:
        return ALLOW
    if name in ("kill", "tgkill", "tkill"):
        return ALLOW if lo[0] == OWN_PID else EPERM
    if name == "clone":
        if lo[0] & seccomp._CLONE_NS_FLAGS or not lo[0] & seccomp._CLONE_THREAD:
            return EPERM
        return ALLOW
    if name == "prctl":
        return ALLOW if lo[0] in seccomp.PRCTL_ALLOWED else EPERM
    if name == "ioctl":
        return ALLOW if lo[1] in seccomp.IOCTL_ALLOWED else EPERM
    if name == "fcntl":
        return ALLOW if lo[1] in seccomp.FCNTL_ALLOWED else EPERM
    if name == "prlimit64":
        return ALLOW if lo[0] == 0 and args[2] == 0 else EPERM
    if name in _REFUSED:
        return seccomp.RET_ERRNO | _REFUSED[name]
    return KILL


@pytest.fixture(scope="module")
def prog() -> bytes:
    return seccomp.program(OWN_PID)


def test_every_number_gets_its_tables_verdict_on_a_short_path(prog: bytes) -> None:
    numbers = [*range(1024), 0x3FFF_FFFF, 0x4000_0000, 0x4000_0001, 0x7FFF_FFFF, 0xFFFF_FFFF]
    wrong: list[str] = []
    longest = 0
    for nr in numbers:
        got, steps = run(prog, nr)
        longest = max(longest, steps)
        if got != expected(nr, seccomp.AUDIT_ARCH_X86_64, (0,) * 6):
            wrong.append(f"{nr} ({_BY_NR.get(nr, '?')}): {got:#x}")
    assert not wrong, wrong
    assert longest <= MAX_STEPS


@pytest.mark.parametrize("nr", [0, 1, 59, 62, 157, 231, 317])
def test_another_architecture_is_killed_whatever_the_number(prog: bytes, nr: int) -> None:
    assert run(prog, nr, AUDIT_ARCH_I386)[0] == KILL


HIGH = 1 << 32
_EDGES: dict[str, list[tuple[int, ...]]] = {
    "kill": [(OWN_PID,), (OWN_PID + 1,), (OWN_PID - 1,), (1,), (OWN_PID | HIGH,), (0,)],
    "clone": [(0x10000,), (0x10000 | 0x20000000,), (0,), (0x10000 | 0x40000000,),
              (0x3D0F00,), (0x3D0F00 | 0x10000000,)],
    "prctl": [(v,) for v in (*seccomp.PRCTL_ALLOWED, 1, 4, 22, 38, 0, 2 | HIGH)],
    "ioctl": [(0, v) for v in (*seccomp.IOCTL_ALLOWED, 0x5412, 0x5420, 0x5422, 0x5452)],
    "fcntl": [(0, v) for v in (*seccomp.FCNTL_ALLOWED, 0, 5, 8, 1030)],
    "prlimit64": [(0, 7, 0), (0, 7, 1), (1, 7, 0), (0, 7, HIGH), (HIGH, 7, 0), (0, 7, 0, 1)],
}
_EDGES["tgkill"] = _EDGES["tkill"] = _EDGES["kill"]


@pytest.mark.parametrize("name", sorted(_EDGES))
def test_argument_rules_hold_at_their_edges(prog: bytes, name: str) -> None:
    nr = seccomp.NR[name]
    for partial in _EDGES[name]:
        args = (*partial, *(0,) * (6 - len(partial)))
        got, steps = run(prog, nr, args=args)
        assert got == expected(nr, seccomp.AUDIT_ARCH_X86_64, args), (name, args, hex(got))
        assert steps <= MAX_STEPS


def test_each_call_has_one_rule() -> None:
    named = [*seccomp.ALLOW, *seccomp._arg_rules(OWN_PID), *_REFUSED]
    assert len(named) == len(set(named))
