"""Under `use_policy` the harness keeps from the app the events the host would keep from it: an
event follows the reads its data amounts to (`policies.events`)."""
from pathlib import Path

import pytest
from harness_helpers import write_app

from sandbox.harness import AppHarness, HarnessError

POLICY = '''schema = 1
name = "t"
[[rule]]
id = "reads"
effect = "permit"
apps = ["probe"]
actions = ["livechat.read"]
'''
NO_VISITOR = POLICY + '''
[[rule]]
id = "no-visitor"
effect = "forbid"
apps = ["probe"]
actions = ["livechat.get_visitor"]
'''


def _harness(tmp_path: Path, policy: str) -> AppHarness:
    (tmp_path / "p.toml").write_text(policy)
    return AppHarness.from_dir(write_app(tmp_path / "app")).use_policy(tmp_path / "p.toml")


def test_an_event_the_policy_permits_is_fired(tmp_path: Path) -> None:
    assert _harness(tmp_path, POLICY).fire("livechat.room_started", {})["app_id"] == "probe"


def test_an_event_carrying_a_forbidden_read_is_not(tmp_path: Path) -> None:
    h = _harness(tmp_path, NO_VISITOR)
    with pytest.raises(HarnessError, match=r"would not deliver.*livechat\.get_visitor.*no-visitor"):
        h.fire("livechat.room_started", {})
    h.server.emitted.append(("livechat.room_started", {}))
    assert h.deliver() == []  # skipped, as the host skips it
