"""`stockade app new NAME`: a small working app to start from.

The templates live in host/apps/templates/app/ (`*.tmpl`, str.format placeholders). The generated
test runs the app through the same RestrictedPython loader the confined child uses, with a
recording fake in place of the host and the operator's rule it writes beside the app applied by
the host's engine (`use_policy`), so an author can test handlers without a host, and a call the
rule does not permit fails the tests, not the app in production.

Everything that could refuse is checked before the first byte is written, and a write that fails
anyway (a full disk, a folder made read-only meanwhile) takes back what this call wrote: an
author is never left with half an app. Files are created with O_EXCL | O_NOFOLLOW, so a name
that appeared meanwhile, or a symlink planted at it, is refused rather than followed.
"""
from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from host.apps.manifest import APP_ID_RE

_TEMPLATES = Path(__file__).resolve().parent / "templates" / "app"


def _layout(app_id: str) -> dict[str, str]:
    """Template file -> path in the new app folder. The test module is named after the app:
    `tests/` holds no `__init__.py`, so pytest imports each test file by its base name, and two
    apps' `test_app.py` collected in one run collide ("import file mismatch")."""
    return {
        "app.toml.tmpl": "app.toml",
        "main.py.tmpl": "main.py",
        "test_app.py.tmpl": f"tests/test_{app_id.replace('-', '_')}.py",
    }


class ScaffoldError(Exception):
    """The name is not a valid app id, the target is not an empty folder, or a file could not
    be written (then nothing of the new app is left behind)."""


def class_name_for(app_id: str) -> str:
    """`agent-sync` -> `AgentSync`."""
    return "".join(part.capitalize() for part in re.split(r"[-_]", app_id) if part) or "MyApp"


def scaffold(app_id: str, target: Path, *, author: str = "Your Name") -> list[Path]:
    """Write a new app into `target` (created; must be empty if it exists). Returns the files,
    the operator's rule (beside the folder) last."""
    if not re.fullmatch(APP_ID_RE, app_id):
        raise ScaffoldError(
            f"{app_id[:40]!r} is not a valid app id (lower-case letters, digits and '-', "
            "starting with a letter, 2-40 characters)")
    # Absolute and normalised first: `--dir .` has the parent `.` itself, which put the rule
    # (that a package may not hold) inside the app folder.
    target = Path(os.path.abspath(target))
    if target.parent == target:
        raise ScaffoldError(f"{target} is the file system's root: name a folder below it")
    _check_target(target)
    # The operator's rule lives beside the app, never in it: a package holds no policy.
    policy = policy_path_for(app_id, target)
    if os.path.lexists(policy):  # a dangling symlink there too: never written through
        raise ScaffoldError(f"{policy} exists")
    values = {"app_id": app_id, "title": app_id.replace("-", " ").title(),
              "class_name": class_name_for(app_id), "author": author}
    texts = [(target / rel, (_TEMPLATES / tmpl).read_text().format(**values))
             for tmpl, rel in _layout(app_id).items()]
    texts.append((policy, (_TEMPLATES / "policy.toml.tmpl").read_text().format(**values)))
    made_dirs: list[Path] = []
    written: list[Path] = []
    try:
        for path, text in texts:
            _make_dirs(path.parent, made_dirs)
            _create(path, text)
            written.append(path)
    except OSError as exc:
        for path in reversed(written):
            with contextlib.suppress(OSError):
                path.unlink()
        for d in reversed(made_dirs):
            with contextlib.suppress(OSError):
                d.rmdir()
        where = exc.filename if exc.filename else target
        raise ScaffoldError(f"could not write {where}: {exc.strerror or exc}; nothing of the "
                            "new app was left behind") from None
    return written


def _check_target(target: Path) -> None:
    """Refuse a target that is not an empty folder (or not there yet), before anything is
    written."""
    if os.path.islink(target) and not target.exists():
        raise ScaffoldError(f"{target} is a symbolic link to nothing: name a folder")
    if target.exists():
        if not target.is_dir():
            raise ScaffoldError(f"{target} is not a folder: name an empty or new folder")
        if any(target.iterdir()):
            raise ScaffoldError(f"{target} exists and is not empty")
        return
    # The nearest existing ancestor must be a folder, or the first mkdir fails half-way.
    for up in target.parents:
        if os.path.lexists(up):
            if not up.is_dir():
                raise ScaffoldError(f"{up} is not a folder, so {target} cannot be made in it")
            break


def _make_dirs(folder: Path, made: list[Path]) -> None:
    """mkdir -p, remembering each folder this call made (deepest last) to take it back."""
    missing: list[Path] = []
    for d in (folder, *folder.parents):
        if os.path.lexists(d):
            break
        missing.append(d)
    for d in reversed(missing):
        d.mkdir()
        made.append(d)


def _create(path: Path, text: str) -> None:
    """A new file: never an existing one, never through a symlink."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    except BaseException:
        with contextlib.suppress(OSError):  # created but not written whole: not left behind
            path.unlink()
        raise


def policy_path_for(app_id: str, target: Path) -> Path:
    """Where `app new` writes the operator rule the new app needs: beside its folder."""
    return Path(os.path.abspath(target)).parent / f"{app_id}.policy.toml"
