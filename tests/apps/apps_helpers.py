"""Builders for test packages: a valid app, and ways to write it as a folder or a (bent) zip."""
from __future__ import annotations

import stat
import zipfile
from collections.abc import Iterable
from pathlib import Path

MAIN_PY = b'''from stockade import App


class AgentSync(App):
    def on_livechat_room_started(self, ctx, event):
        return None
'''


def manifest_text(
    *,
    app_id: str = "agent-sync",
    version: str = "1.0.0",
    api: str = ">=1,<2",
    entry: str = "main:AgentSync",
    permissions: Iterable[str] = ("livechat.read", "users.create"),
    events: Iterable[str] = ("livechat.room_started",),
    settings: str = "",
    extra: str = "",
) -> str:
    lines = [
        f'id = "{app_id}"',
        'name = "Agent Sync"',
        f'version = "{version}"',
        'author = "Acme Support Tools"',
        f'api = "{api}"',
        f'entry = "{entry}"',
        "events = [" + ", ".join(f'"{e}"' for e in events) + "]",
        extra,
    ]
    for p in permissions:
        lines += ["[[permission]]", f'name = "{p}"', f'reason = "Needed to do {p} for the demo."']
    return "\n".join(lines) + "\n" + settings


SECRET_SETTINGS = '''
[[setting]]
key = "crm_token"
type = "secret"
label = "CRM token"

[[setting]]
key = "batch"
type = "int"
label = "Batch size"
default = 10

[[setting]]
key = "mode"
type = "select"
label = "Mode"
options = ["fast", "safe"]
default = "safe"
'''


def app_files(**kw: object) -> dict[str, bytes]:
    return {"app.toml": manifest_text(**kw).encode(), "main.py": MAIN_PY}  # type: ignore[arg-type]


def write_folder(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def write_zip(path: Path, files: dict[str, bytes], modes: dict[str, int] | None = None) -> Path:
    """Write members verbatim (no name sanitising), with optional unix modes per member."""
    modes = modes or {}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = modes.get(name, stat.S_IFREG | 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return path
