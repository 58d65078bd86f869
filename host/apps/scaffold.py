"""`stockade app new NAME`: a small working app to start from.

The templates live in host/apps/templates/app/ (`*.tmpl`, str.format placeholders). The generated
test runs the app through the same RestrictedPython loader the confined child uses, with a
recording fake in place of the host, so an author can test handlers without a host.
"""
from __future__ import annotations

import re
from pathlib import Path

from host.apps.manifest import APP_ID_RE

_TEMPLATES = Path(__file__).resolve().parent / "templates" / "app"
# template file -> path in the new app folder
_LAYOUT = {
    "app.toml.tmpl": "app.toml",
    "main.py.tmpl": "main.py",
    "test_app.py.tmpl": "tests/test_app.py",
}


class ScaffoldError(Exception):
    """The name is not a valid app id, or the target folder is not empty."""


def class_name_for(app_id: str) -> str:
    """`agent-sync` -> `AgentSync`."""
    return "".join(part.capitalize() for part in re.split(r"[-_]", app_id) if part) or "MyApp"


def scaffold(app_id: str, target: Path, *, author: str = "Your Name") -> list[Path]:
    """Write a new app into `target` (created; must be empty if it exists). Returns the files."""
    if not re.fullmatch(APP_ID_RE, app_id):
        raise ScaffoldError(
            f"{app_id[:40]!r} is not a valid app id (lower-case letters, digits and '-', "
            "starting with a letter, 2-40 characters)")
    if target.exists() and any(target.iterdir()):
        raise ScaffoldError(f"{target} exists and is not empty")
    # The operator's rule lives beside the app, never in it: a package holds no policy.
    policy = policy_path_for(app_id, target)
    if policy.exists():
        raise ScaffoldError(f"{policy} exists")
    values = {"app_id": app_id, "title": app_id.replace("-", " ").title(),
              "class_name": class_name_for(app_id), "author": author}
    written: list[Path] = []
    for tmpl, rel in _LAYOUT.items():
        text = (_TEMPLATES / tmpl).read_text().format(**values)
        out = target / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        written.append(out)
    policy.write_text((_TEMPLATES / "policy.toml.tmpl").read_text().format(**values))
    written.append(policy)
    return written


def policy_path_for(app_id: str, target: Path) -> Path:
    """Where `app new` writes the operator rule the new app needs: beside its folder."""
    return target.parent / f"{app_id}.policy.toml"
