"""A mistyped app.toml field is named by the author harness, as the host names it at packaging.

The harness read app.toml "with just enough checking to run the app" and ignored every key it
did not use. A setting's `labl = ...` (for `label`) passed every test, then `stockade app
package` refused the folder; `evnets = [...]` (for `events`) failed the tests with "app.toml
does not list 'livechat.room_started' in `events`", which points at the wrong line. The harness
now refuses an unknown key where it stands, with the key it most likely meant; the keys it
knows are the host's manifest model's (pinned below), so the two cannot drift apart.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from harness_helpers import write_app

from host.apps.manifest import Manifest, Permission, Setting
from sandbox.harness import AppHarness, HarnessError

SOURCE = "from stockade import App\nclass Probe(App):\n    pass\n"


def _app(tmp_path: Path, manifest: str) -> Path:
    folder = write_app(tmp_path, source=SOURCE)
    (folder / "app.toml").write_text(manifest)
    return folder


BASE = '''id = "probe"
name = "Probe"
version = "1.0.0"
author = "tests"
api = ">=1,<2"
entry = "main:Probe"
'''
PERMISSION = '''
[[permission]]
name = "livechat.read"
reason = "reads the rooms it is told about"
'''
SETTING = '''
[[setting]]
key = "greeting"
type = "string"
label = "Greeting"
'''


def test_a_mistyped_top_level_key_is_named_with_its_likely_meaning(tmp_path: Path) -> None:
    folder = _app(tmp_path, BASE + 'evnets = ["livechat.room_started"]\n' + PERMISSION)
    with pytest.raises(HarnessError, match=r"unknown key 'evnets'.*did you mean 'events'\?") \
            as info:
        AppHarness.from_dir(folder)
    assert str(folder / "app.toml") in str(info.value) and "\n" not in str(info.value)


def test_a_mistyped_key_in_a_setting_is_refused(tmp_path: Path) -> None:
    folder = _app(tmp_path, BASE + SETTING.replace("label =", "labl ="))
    with pytest.raises(HarnessError, match=r"setting 'greeting': unknown key 'labl'.*'label'"):
        AppHarness.from_dir(folder)


def test_a_mistyped_key_in_a_permission_is_refused(tmp_path: Path) -> None:
    folder = _app(tmp_path, BASE + PERMISSION + 'role = ["bot"]\n')
    with pytest.raises(HarnessError,
                       match=r"permission 'livechat.read': unknown key 'role'.*'roles'"):
        AppHarness.from_dir(folder)


def test_author_text_in_the_refusal_is_quoted(tmp_path: Path) -> None:
    folder = _app(tmp_path, BASE + '"x\\u001b[31m\\nforged" = 1\n')
    with pytest.raises(HarnessError) as info:
        AppHarness.from_dir(folder)
    assert "\x1b" not in str(info.value) and "\n" not in str(info.value)


def test_a_correct_manifest_still_loads(tmp_path: Path) -> None:
    h = AppHarness.from_dir(_app(tmp_path, BASE + PERMISSION + SETTING))
    assert h.manifest.permissions and h.settings == {}


def test_the_harness_knows_exactly_the_hosts_keys() -> None:
    from sandbox.harness_manifest import MANIFEST_KEYS, PERMISSION_KEYS, SETTING_KEYS

    assert MANIFEST_KEYS == frozenset(Manifest.model_fields)
    assert PERMISSION_KEYS == frozenset(Permission.model_fields)
    assert SETTING_KEYS == frozenset(Setting.model_fields)
