"""The suite's helper modules (`apphelp`, `pghelp`, ...) each have a name of their own.

pytest puts each test's folder on `sys.path` (its default `prepend` import mode) and a test
imports its helpers by bare name, so `import X` gives whichever folder's `X` the worker met
first: two helpers of one name in two folders broke the other's tests in a clean-clone CI (a new
`tests/hookhelp.py` beside `tests/remote/hookhelp.py`, 2 errors, depending on which file the
worker ran first).
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def helper_modules(root: Path) -> dict[str, list[Path]]:
    """Each helper module's name under `root` and the files that bear it (not tests, not
    conftest files, not package markers)."""
    found: dict[str, list[Path]] = defaultdict(list)
    for path in root.rglob("*.py"):
        if path.name.startswith("test_") or path.name in ("conftest.py", "__init__.py"):
            continue
        found[path.stem].append(path)
    return found


def test_no_two_helpers_share_a_name() -> None:
    shared = {name: [str(p.relative_to(TESTS)) for p in paths]
              for name, paths in helper_modules(TESTS).items() if len(paths) > 1}
    assert not shared, f"helper modules of one name in two folders: {shared}"


def test_the_check_finds_two_helpers_of_one_name(tmp_path: Path) -> None:
    for folder in (tmp_path, tmp_path / "remote"):
        folder.mkdir(exist_ok=True)
        (folder / "hookhelp.py").write_text("")
    (tmp_path / "test_x.py").write_text("")
    assert {n: len(p) for n, p in helper_modules(tmp_path).items()} == {"hookhelp": 2}
