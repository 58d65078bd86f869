"""Whether a package's modules can reach its child at all.

Every start sends the app's top-level modules to its child in one `Load` frame
(`sandbox.protocol.Load`, JSON, `host.supervise.child.Child.load`), with the app's settings
beside them, and no frame may pass `sandbox.wirecaps.MAX_FRAME_BYTES` (1 MiB). The package caps
(`host.apps.package_rules`: 2 MiB of files, 512 KiB each) allow more than that, and JSON writes a
quote or a backslash as two bytes and a control character as six. A package of three 500 KiB
modules, or of one module holding 200 KiB of control characters, installed and then never
started: each start failed with `FrameError`, a host-side start failure that the crash-loop stop
never counts, so the host forked a child for it every 30 s for good.

So a package is refused (at packaging, install, update and each start alike) when its modules,
with the largest settings its manifest lets an operator give, make a frame past the cap: the
frame is built and measured as a start builds it, never estimated.
"""
from __future__ import annotations

import json

from host.apps.manifest import MAX_INT_DIGITS, MAX_SETTING_VALUE, Manifest, Setting
from sandbox.protocol import Load
from sandbox.wirecaps import MAX_FRAME_BYTES

# The longest server user id a Load frame may name (`sandbox.protocol.Load.app_user_id`).
_APP_USER_ID_MAX = 64
# The character JSON writes longest (`\u0000`, six bytes): a string setting filled with it is
# the largest value an operator can give one.
_WIDEST_CHAR = "\x00"


def modules_of(files: dict[str, bytes]) -> dict[str, str]:
    """The package's top-level Python modules by name, as a start sends them
    (`host.supervise.appcode`)."""
    return {name[:-3]: data.decode("utf-8") for name, data in files.items()
            if name.endswith(".py") and "/" not in name}


def _largest(setting: Setting) -> str | int | bool:
    """The value of `setting` whose JSON is longest among those `coerce_setting` accepts (the
    manifest's own default included: it is held to the same digit bound)."""
    if setting.type == "bool":
        return False
    if setting.type == "int":
        longest: int = -(10 ** MAX_INT_DIGITS - 1)
        return longest
    if setting.type == "select":
        return max(setting.options, key=lambda o: len(json.dumps(o, ensure_ascii=False)))
    return _WIDEST_CHAR * MAX_SETTING_VALUE


def load_frame_bytes(manifest: Manifest, files: dict[str, bytes]) -> int:
    """The size of the largest Load frame a start of this package can send."""
    module, cls = manifest.entry_parts()
    frame = Load(app_id=manifest.id, app_user_id="u" * _APP_USER_ID_MAX,
                 modules=modules_of(files), entry_module=module, entry_class=cls,
                 settings={s.key: _largest(s) for s in manifest.setting})
    return len(frame.model_dump_json().encode())


def load_frame_problem(manifest: Manifest, files: dict[str, bytes]) -> str | None:
    """Why no start of this package could send its modules to its child, or None."""
    size = load_frame_bytes(manifest, files)
    if size <= MAX_FRAME_BYTES:
        return None
    return (f"the package's modules make a load frame of up to {size} bytes as its child "
            f"receives them (JSON, beside its settings at their largest), and at most "
            f"{MAX_FRAME_BYTES} fit: "
            "the app could never start; make its modules smaller (JSON writes a quote or "
            "backslash as two bytes and a control character as six)")
