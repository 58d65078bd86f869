"""Two bounds a manifest could pass unchecked, each refused with an error that names it.

- An int setting's default had no digit bound, though what an operator types is held to
  `MAX_INT_DIGITS` (the frames carrying settings to the child encode 64-bit integers at most):
  `default = 100000000000000000000` was accepted, and an app whose default the operator could
  never have typed was installed (past 2**63 it could never start).
- A manifest within a hash line of the 64 KiB limit went over it once the host stamped its
  content hash on (`stamp_manifest`, as every stored package is), and was refused as holding a
  `content_hash` line "inside a string": the message sent its author looking for a line that
  is not there. It now says the manifest is too large, and by how much.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from apps_helpers import app_files, manifest_text, write_folder, write_zip

from host.apps.manifest import (
    MAX_INT_DIGITS,
    MAX_MANIFEST_BYTES,
    ManifestError,
    coerce_setting,
    parse_manifest,
)
from host.apps.packages import PackageError, read_package, stamp_manifest

LARGEST = 10 ** MAX_INT_DIGITS - 1  # the largest an operator can type (18 nines)


def _int_setting(default: int) -> str:
    return f'\n[[setting]]\nkey = "batch"\ntype = "int"\nlabel = "Batch"\ndefault = {default}\n'


@pytest.mark.parametrize("default", [10 ** 20, LARGEST + 1, -(LARGEST + 1), 2 ** 63,
                                     -(2 ** 63)])
def test_an_int_default_the_operator_could_not_type_is_refused(default: int) -> None:
    with pytest.raises(ManifestError) as refused:
        parse_manifest(manifest_text(settings=_int_setting(default)).encode())
    message = str(refused.value)
    assert "'batch'" in message and f"{MAX_INT_DIGITS} digits" in message, message
    assert "\n" not in message


@pytest.mark.parametrize("default", [LARGEST, -LARGEST, 0, 10])
def test_an_int_default_within_the_bound_is_what_the_operator_could_type(default: int) -> None:
    manifest = parse_manifest(manifest_text(settings=_int_setting(default)).encode())
    setting = manifest.setting[0]
    assert setting.default == default
    assert coerce_setting(setting, str(default)) == default  # the operator's own input


def test_an_int_value_past_the_bound_is_refused_however_it_comes() -> None:
    setting = parse_manifest(manifest_text(settings=_int_setting(1)).encode()).setting[0]
    with pytest.raises(ValueError, match=f"{MAX_INT_DIGITS} digits"):
        coerce_setting(setting, 10 ** 20)  # a JSON number, not text
    with pytest.raises(ValueError, match=f"{MAX_INT_DIGITS} digits"):
        coerce_setting(setting, str(10 ** 20))


def _manifest_of(size: int) -> bytes:
    """A valid manifest of exactly `size` bytes (padded by a comment line)."""
    text = manifest_text()
    pad = size - len(text.encode()) - len("#\n")
    assert pad >= 0
    return (text + "#" + "x" * pad + "\n").encode()


def test_a_manifest_the_hash_line_takes_past_the_limit_is_refused_as_too_large(
        tmp_path: Path) -> None:
    stamp = len(stamp_manifest("", "sha256:" + "0" * 64).encode())  # the line the host adds
    fits = _manifest_of(MAX_MANIFEST_BYTES - stamp)
    assert read_package(write_folder(tmp_path / "fits", {**app_files(), "app.toml": fits}))
    for n, over in enumerate([MAX_MANIFEST_BYTES - stamp + 1, MAX_MANIFEST_BYTES]):
        files = {**app_files(), "app.toml": _manifest_of(over)}
        parse_manifest(files["app.toml"])  # within the limit as written
        for where in (write_folder(tmp_path / f"src{n}", files),
                      write_zip(tmp_path / f"p{n}.zip", files)):
            with pytest.raises(PackageError) as refused:
                read_package(where)
            message = str(refused.value)
            # before: "has a line starting with `content_hash` ... (inside a string?)"
            assert "too large" in message and "content_hash" not in message, message
            assert f"{MAX_MANIFEST_BYTES - stamp} bytes" in message, message
            assert "\n" not in message
