"""Hostile package handling: every bad package gets one clear PackageError and writes nothing."""
from __future__ import annotations

import io
import os
import struct
import zipfile
from pathlib import Path

import pytest
from apps_helpers import app_files, manifest_text, write_folder, write_zip

from host.apps.package_rules import MAX_FILE_BYTES, MAX_FILES
from host.apps.packages import (
    PackageError,
    build_zip,
    package_folder,
    read_package,
)
from sandbox.loader import LoadFailed, load_app
from sandbox.restricted import CompileFailed


def _snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def bad(tmp_path: Path):
    """Assert a package is refused with one clear error and that nothing new appears on disk."""

    def check(path: Path, needle: str) -> str:
        before = _snapshot(tmp_path)
        with pytest.raises(PackageError) as ei:
            read_package(path)
        msg = str(ei.value)
        assert needle.lower() in msg.lower(), msg
        assert "\n" not in msg
        assert _snapshot(tmp_path) == before
        return msg

    return check


def test_good_folder_and_zip_roundtrip(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "src", app_files())
    pkg, data = package_folder(folder)
    assert pkg.manifest.id == "agent-sync"
    assert pkg.manifest.content_hash == pkg.content_hash
    z = tmp_path / "a.zip"
    z.write_bytes(data)
    again = read_package(z)
    assert again.content_hash == pkg.content_hash
    # Deterministic: packaging twice gives identical bytes.
    assert package_folder(folder)[1] == data
    assert build_zip(again, with_signature=False) == data


def test_tool_caches_in_folder_are_skipped(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "src", app_files())
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\0" * 10)
    assert read_package(folder).manifest.id == "agent-sync"


def test_zip_slip(tmp_path: Path, bad) -> None:
    files = app_files() | {"../evil.py": b"x"}
    bad(write_zip(tmp_path / "p.zip", files), "..")


def test_absolute_path(tmp_path: Path, bad) -> None:
    files = app_files() | {"/etc/evil.py": b"x"}
    bad(write_zip(tmp_path / "p.zip", files), "absolute")


def test_backslash(tmp_path: Path, bad) -> None:
    files = app_files() | {"..\\evil.py": b"x"}
    bad(write_zip(tmp_path / "p.zip", files), "backslash")


def test_symlink_member(tmp_path: Path, bad) -> None:
    files = app_files() | {"link.py": b"/etc/passwd"}
    bad(write_zip(tmp_path / "p.zip", files, modes={"link.py": 0o120777}), "symbolic link")


def test_device_member_in_zip(tmp_path: Path, bad) -> None:
    files = app_files() | {"dev.py": b""}
    bad(write_zip(tmp_path / "p.zip", files, modes={"dev.py": 0o020644}), "not a regular file")


def test_duplicate_names(tmp_path: Path, bad) -> None:
    path = write_zip(tmp_path / "p.zip", app_files())
    with pytest.warns(UserWarning), zipfile.ZipFile(path, "a") as zf:
        zf.writestr("main.py", b"class Other: pass\n")
    bad(path, "twice")


def test_case_duplicates(tmp_path: Path, bad) -> None:
    files = app_files() | {"Main.py": b"x = 2\n"}
    bad(write_zip(tmp_path / "p.zip", files), "ignoring case")


def test_symlink_in_folder(tmp_path: Path, bad) -> None:
    folder = write_folder(tmp_path / "src", app_files())
    os.symlink("/etc/passwd", folder / "passwd.txt")
    bad(folder, "symbolic link")


def test_fifo_in_folder(tmp_path: Path, bad) -> None:
    folder = write_folder(tmp_path / "src", app_files())
    os.mkfifo(folder / "pipe.py")
    bad(folder, "not a regular file")


def test_oversize_file(tmp_path: Path, bad) -> None:
    files = app_files() | {"big.py": b"#" * (MAX_FILE_BYTES + 1)}
    bad(write_zip(tmp_path / "p.zip", files), "larger than")
    bad(write_folder(tmp_path / "src", files), "larger than")


def test_too_many_files(tmp_path: Path, bad) -> None:
    files = app_files() | {f"m{i}.py": b"" for i in range(MAX_FILES)}
    bad(write_zip(tmp_path / "p.zip", files), "more than")


def test_disallowed_extension(tmp_path: Path, bad) -> None:
    files = app_files() | {"native.so": b"\x7fELF"}
    bad(write_zip(tmp_path / "p.zip", files), "type packages may not hold")


def test_too_deep(tmp_path: Path, bad) -> None:
    files = app_files() | {"a/b/c/d/e.py": b""}
    bad(write_zip(tmp_path / "p.zip", files), "deeper")


def _lie_about_size(data: bytes, name: bytes, fake_size: int) -> bytes:
    """Rewrite the uncompressed-size fields of `name` in local and central headers."""
    out = bytearray(data)
    # Local file header: sig PK\3\4, uncompressed size at offset 22.
    i = 0
    while (i := out.find(b"PK\x03\x04", i)) != -1:
        nlen = struct.unpack_from("<H", out, i + 26)[0]
        if bytes(out[i + 30:i + 30 + nlen]) == name:
            struct.pack_into("<I", out, i + 22, fake_size)
        i += 4
    # Central directory header: sig PK\1\2, uncompressed size at offset 24.
    i = 0
    while (i := out.find(b"PK\x01\x02", i)) != -1:
        nlen = struct.unpack_from("<H", out, i + 28)[0]
        if bytes(out[i + 46:i + 46 + nlen]) == name:
            struct.pack_into("<I", out, i + 24, fake_size)
        i += 4
    return bytes(out)


def test_zip_bomb_with_lying_sizes(tmp_path: Path, bad) -> None:
    # 50 MiB of zeros deflate to ~50 KiB; the headers claim 100 bytes.
    bomb = b"0" * (50 * 1024 * 1024)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in app_files().items():
            zf.writestr(name, data)
        zf.writestr("bomb.txt", bomb)
    path = tmp_path / "bomb.zip"
    path.write_bytes(_lie_about_size(buf.getvalue(), b"bomb.txt", 100))
    bad(path, "bomb.txt")


def test_zip_bomb_honest_headers(tmp_path: Path, bad) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in app_files().items():
            zf.writestr(name, data)
        zf.writestr("bomb.txt", b"0" * (50 * 1024 * 1024))
    path = tmp_path / "bomb.zip"
    path.write_bytes(buf.getvalue())
    bad(path, "larger than")


def test_not_a_zip(tmp_path: Path, bad) -> None:
    p = tmp_path / "p.zip"
    p.write_bytes(b"this is not a zip")
    bad(p, "not a readable zip")


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"app_id": "Agent_Sync"}, "id"),
        ({"version": "one"}, "version"),
        ({"permissions": ("users.create", "root.everything")}, "unknown permission"),
        ({"events": ("message.sent",)}, "needs permission"),
        ({"events": ("no.such_event",), "permissions": ("livechat.read",)}, "unknown event"),
        ({"entry": "main"}, "entry"),
        ({"api": ">=2,<3"}, "does not include"),
        ({"api": "latest"}, "api range"),
        ({"extra": 'homepage = "x"\n'}, "extra"),
        ({"permissions": ("livechat.read", "livechat.read")}, "twice"),
    ],
)
def test_bad_manifest_fields(tmp_path: Path, bad, kw: dict, needle: str) -> None:
    files = app_files() | {"app.toml": manifest_text(**kw).encode()}
    bad(write_zip(tmp_path / "p.zip", files), needle)


def test_strict_types(tmp_path: Path, bad) -> None:
    files = app_files() | {"app.toml": manifest_text().replace('version = "1.0.0"', "version = 1").encode()}
    bad(write_zip(tmp_path / "p.zip", files), "version")


def test_missing_entry_module(tmp_path: Path, bad) -> None:
    files = app_files()
    del files["main.py"]
    bad(write_zip(tmp_path / "p.zip", files), "entry module main.py")


def test_missing_manifest(tmp_path: Path, bad) -> None:
    files = app_files()
    del files["app.toml"]
    bad(write_zip(tmp_path / "p.zip", files), "no app.toml")


def test_modified_after_packaging(tmp_path: Path, bad) -> None:
    _, data = package_folder(write_folder(tmp_path / "src", app_files()))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members["main.py"] += b"\nimport os\n"
    bad(write_zip(tmp_path / "p.zip", members), "changed after packaging")


def test_a_manifest_stamping_would_change_is_refused_before_install(tmp_path: Path, bad) -> None:
    """The host stores a package with its manifest stamped (every line opening with
    `content_hash =` dropped, the hash put first). A line inside a multi-line string that also
    closes the string changed what the stored manifest says: the package passed every check,
    was shown and installed, and its stored copy then never parsed (the app never ran). Fails
    before: `read_package` accepted it."""
    text = manifest_text(extra='description = """about this app\ncontent_hash = x"""  # ok\n')
    files = {**app_files(), "app.toml": text.encode()}
    bad(write_zip(tmp_path / "p.zip", files), "starting with `content_hash`")
    bad(write_folder(tmp_path / "src", files), "starting with `content_hash`")
    # A recorded hash where stamping puts it, and one further down, are no such line.
    _, data = package_folder(write_folder(tmp_path / "ok", app_files()))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    head, _, body = members["app.toml"].partition(b"\n")
    first, _, rest = body.partition(b"\n")  # after `id = ...`, still above every table
    members["app.toml"] = first + b"\n" + head + b"\n" + rest
    assert read_package(write_zip(tmp_path / "moved.zip", members)).manifest.id == "agent-sync"


@pytest.mark.parametrize("name", ["My-mod.py", "json.py", "stockade.py", "Helpers.PY", "2nd.py"])
def test_a_module_the_child_could_never_load_is_refused_at_install(
    tmp_path: Path, bad, name: str
) -> None:
    """Such a package installed and failed at every start (the loader refuses the name, or the
    module would shadow one the sandbox provides, or appcode never sends it)."""
    folder = write_folder(tmp_path / "src", {**app_files(), name: b"X = 1\n"})
    msg = bad(folder, "cannot be loaded")
    assert repr(name) in msg
    if name.endswith(".py"):
        with pytest.raises((LoadFailed, CompileFailed)):
            load_app({"main": "from stockade import App\nclass A(App):\n    pass\n",
                      name[:-3]: "X = 1\n"}, "main", "A")


def test_modules_in_folders_and_plain_names_are_accepted(tmp_path: Path) -> None:
    files = {**app_files(), "helpers_2.py": b"X = 1\n", "tests/test_App-x.py": b"X = 1\n"}
    pkg, _ = package_folder(write_folder(tmp_path / "src", files))
    assert "helpers_2.py" in pkg.files and "tests/test_App-x.py" in pkg.files
