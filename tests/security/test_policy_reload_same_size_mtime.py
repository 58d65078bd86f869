"""A serving host notices a policy file replaced by one of the same size and modification time.

The watcher's fingerprint was each file's name, size and mtime: `cp -p`, `rsync -t` or
`touch -r` keep the mtime a reviewed copy had, and a narrowing edit can keep the size
(`apps = ["crm"]` -> `apps = ["bot"]`), so the host kept deciding with the old, wider policy
while `policy reload` and the console said the folder loads as the new one. The fingerprint
now holds the inode's change time too, which no user-space call can set back."""
from __future__ import annotations

import os
from pathlib import Path

from host.gate.gate import PolicySource
from host.gate.policywatch import PolicyWatch
from policies import Request, decide
from policies.loader import load_policy

WIDE = ('schema = 1\nname = "crm"\n[[rule]]\nid = "read"\neffect = "permit"\n'
        'apps = ["crm"]\nactions = ["users.get"]\n')
NARROW = WIDE.replace('apps = ["crm"]', 'apps = ["bot"]')
GET = Request("crm", "i1", "users.get", {"user_id": "u1"}, {}, 0.0)


def test_a_same_size_same_mtime_replacement_is_picked_up(tmp_path: Path) -> None:
    assert len(WIDE) == len(NARROW)
    f = tmp_path / "crm.toml"
    f.write_text(WIDE)
    source = PolicySource(load_policy(tmp_path))
    watch = PolicyWatch(source, tmp_path, lambda kind, detail: None)
    assert decide(source.current(), frozenset({"users.read"}), GET).allowed
    st = f.stat()
    # File times tick coarsely (a jiffy): wait until a write is stamped later than crm.toml's,
    # so the rewrite below gets a change time of its own whatever the filesystem's grain.
    probe = tmp_path / "probe.txt"
    probe.write_text("x")
    while probe.stat().st_ctime_ns == st.st_ctime_ns:
        probe.write_text("x")
    f.write_text(NARROW)  # in place, as `cp -p` does, then the mtime set back
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f.stat().st_size == st.st_size and f.stat().st_mtime_ns == st.st_mtime_ns
    watch.poll()
    watch.poll()  # a change is used once it has held still for a poll
    assert source.current().revision == load_policy(tmp_path).revision
    assert not decide(source.current(), frozenset({"users.read"}), GET).allowed
