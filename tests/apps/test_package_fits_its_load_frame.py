"""A package that installs can reach its child: every start sends the package's modules to the
child in one `Load` frame (JSON, with the app's settings beside them), and no frame may pass
`MAX_FRAME_BYTES` (1 MiB), while the package caps allow 2 MiB of files, 512 KiB each, and JSON
writes a quote or backslash as two bytes and a control character as six.

Attacked as a hostile package author: three 500 KiB modules, one module of 200 KiB of control
characters in a comment, and a small module beside 32 string settings an operator fills to their
cap. Before, each installed and then never started: every start failed with `FrameError` (a
host-side start failure, which the crash-loop stop never counts, so the host forked a child
for it every 30 s for good). Each case is also held against the real encoding: what the
package reader accepts is a frame the host can send."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from apps_helpers import app_files, write_zip

from host.apps.manifest import MAX_SETTING_VALUE
from host.apps.packages import PackageError, read_package
from sandbox.protocol import Load
from sandbox.wire import FrameError, encode

Files = dict[str, bytes]


def _three_big_modules() -> Files:
    body = b"X = 1\n" + (b"# " + b"a" * 100 + b"\n") * (500 * 1024 // 103)
    return {**app_files(), **{f"big{i}.py": body for i in range(3)}}


def _control_characters() -> Files:
    return {**app_files(), "noisy.py": b"# " + b"\x01" * (200 * 1024) + b"\n"}


_SETTINGS = "".join(f'\n[[setting]]\nkey = "s{i}"\ntype = "string"\nlabel = "S{i}"\n'
                    for i in range(32))


def _many_string_settings() -> Files:
    files = app_files(settings=_SETTINGS)
    return {**files, "helpers.py": b"X = 1\n" + b"# " + b"b" * (400 * 1024) + b"\n"}


def _frame(files: Files, settings: dict[str, object]) -> bytes:
    """The Load frame a start sends for these files, as `Child.load` encodes it."""
    modules = {n[:-3]: d.decode() for n, d in files.items() if n.endswith(".py") and "/" not in n}
    body = Load(app_id="agent-sync", app_user_id="u" * 64, modules=modules,
                entry_module="main", entry_class="AgentSync", settings=settings)
    return encode(body.model_dump_json().encode())


def _largest_settings(files: Files) -> dict[str, object]:
    return ({f"s{i}": "\x00" * MAX_SETTING_VALUE for i in range(32)}
            if "helpers.py" in files else {})


@pytest.mark.parametrize("make", [_three_big_modules, _control_characters,
                                  _many_string_settings])
def test_a_package_whose_load_frame_cannot_be_sent_is_refused(
        tmp_path: Path, make: Callable[[], Files]) -> None:
    files = make()
    with pytest.raises(FrameError):  # what every start of it met
        _frame(files, _largest_settings(files))
    with pytest.raises(PackageError, match="load frame"):
        read_package(write_zip(tmp_path / "p.zip", files))


def test_the_largest_package_accepted_is_a_frame_the_host_can_send(tmp_path: Path) -> None:
    settings = "".join(f'\n[[setting]]\nkey = "s{i}"\ntype = "secret"\nlabel = "S{i}"\n'
                       for i in range(4))
    largest = {f"s{i}": "\x00" * MAX_SETTING_VALUE for i in range(4)}
    line = b"# " + b"c" * 100 + b"\n"
    lines = 0
    for step in (1000, 100, 10, 1):  # grow the module until the reader refuses it
        while True:
            files = {**app_files(settings=settings), "pad1.py": line * 5000,
                     "pad2.py": line * (lines + step)}
            try:
                read_package(write_zip(tmp_path / "p.zip", files))
            except PackageError as exc:
                assert "load frame" in str(exc)
                break
            lines += step
    accepted = {**app_files(settings=settings), "pad1.py": line * 5000, "pad2.py": line * lines}
    assert len(_frame(accepted, largest)) > 1_000_000  # close to the cap, and it is sent
