"""A Ctrl-C that lands just after a COMMIT surfaces as itself.

The install store and the lineage table rolled back unconditionally on any exception; an
interrupt arriving after the COMMIT had gone through made that ROLLBACK fail, and the operator
saw "unexpected OperationalError: cannot rollback - no transaction is active" and exit 1 instead
of "interrupted" and 130 (the Ctrl-C test of `bench` caught it under load). Every write
transaction now goes through `host.store.immediate`, which rolls back only one still open.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from host.apps.installs import InstallStore
from host.apps.lineage import Lineage
from host.store import open_store

Opener = Callable[[Path], AbstractContextManager[object]]


def _install_store(db: Path) -> Iterator[AbstractContextManager[object]]:
    store = InstallStore(db)
    try:
        yield store._tx()
    finally:
        store.close()


def _lineage(db: Path) -> Iterator[AbstractContextManager[object]]:
    yield Lineage(db)._tx()


def _store(db: Path) -> Iterator[AbstractContextManager[object]]:
    s = open_store(db)
    try:
        yield s.transaction()
    finally:
        s.close()


@pytest.mark.parametrize("opener", [_install_store, _lineage, _store],
                         ids=["installs", "lineage", "store"])
def test_an_interrupt_after_the_commit_is_still_an_interrupt(
        tmp_path: Path, opener: Callable[[Path], Iterator[AbstractContextManager[object]]]
) -> None:
    for tx in opener(tmp_path / "host.db"):
        with pytest.raises(KeyboardInterrupt), tx as conn:
            conn.execute("COMMIT")  # type: ignore[attr-defined]  # the commit has gone through
            raise KeyboardInterrupt  # ... and then the Ctrl-C lands
