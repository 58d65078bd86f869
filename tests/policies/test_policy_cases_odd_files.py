"""`policy test` and `policy fmt` read a file as the loader does: a regular file, at most
MAX_FILE_BYTES of it, never blocking.

Before, `policy test` read each *.cases.toml whole and only then looked at its size (a sparse
3 GiB file was read into memory), and a FIFO named *.cases.toml hung it for good; `policy fmt`
read a file whole too. A policy folder is the author's: the reviewer's tools must finish."""
from __future__ import annotations

import contextlib
import os
import signal
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import typer
from typer.testing import CliRunner

from host.cli.main import root
from host.cli.policy_fmt_cmd import _read
from policies.cases import CaseResult, run_dir
from policies.findings import Finding
from policies.loader import MAX_FILE_BYTES

POLICY = 'schema = 1\nname = "x"\n'
runner = CliRunner()


T = TypeVar("T")


def _never_blocking(fn: Callable[[], T]) -> T:
    """`fn()`, failing the test (not hanging it) if it blocks: a blocked open or read of a FIFO
    is interrupted by the alarm's signal."""
    def stop(signum: int, frame: object) -> None:
        raise AssertionError("blocked reading a FIFO")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(10)
    try:
        return fn()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_a_fifo_named_cases_is_refused_without_blocking(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text(POLICY)
    os.mkfifo(tmp_path / "a.cases.toml")  # nobody ever writes to it: a read would block
    results, problems = _never_blocking(lambda: run_dir(tmp_path))
    assert not results
    assert any(p.code == "STK001" and "regular" in p.message for p in problems)


def _peak(fn: Callable[[], object]) -> int:
    """The most memory Python held at once while `fn` ran (a file read whole shows here)."""
    tracemalloc.start()
    try:
        with contextlib.suppress(typer.Exit):
            fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _sparse(path: Path) -> Path:
    with path.open("wb") as fh:
        fh.truncate(64 * MAX_FILE_BYTES)  # 16 MiB that use no disk
    return path


def test_a_huge_cases_file_is_refused_after_reading_only_its_cap(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text(POLICY)
    _sparse(tmp_path / "big.cases.toml")
    got: list[tuple[list[CaseResult], list[Finding]]] = []
    peak = _peak(lambda: got.append(run_dir(tmp_path)))
    problems = got[0][1]
    assert any(p.code == "STK001" and "larger" in p.message for p in problems)
    assert peak < 8 * MAX_FILE_BYTES, f"{peak} bytes held"


def test_fmt_reads_a_huge_file_only_up_to_its_cap(tmp_path: Path) -> None:
    big = _sparse(tmp_path / "big.toml")
    assert _peak(lambda: _read(big)) < 8 * MAX_FILE_BYTES


def test_fmt_never_blocks_on_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "f.toml"
    os.mkfifo(fifo)
    r = _never_blocking(lambda: runner.invoke(
        root, ["--home", str(tmp_path / "home"), "policy", "fmt", "--check", str(fifo)]))
    assert r.exit_code == 2, r.output
