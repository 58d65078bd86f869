"""Assume escape: a zygote child's inherited memory names no other app's child and counts no fork.

The finding: every app child is a fork of the zygote, and its stack still holds the zygote's
`main` frame. Code that escaped RestrictedPython walks up to it (`sys._getframe().f_back...`)
and read there (a) `live`, the set of every child the zygote had forked and not reaped: the
host pid of every other app's running child (and of every pre-forked child waiting for the
next app), the process list that Landlock keeps `/proc` from showing; and (b) its own fork
request, whose `id` was the host's count of forks: between two of its own children an app
learnt how many children the host had started for other apps (their starts, crashes and
restarts), the leak `Child.next_frame_id` closed for event ids.

What must hold, with a real zygote whose children run the snippet unrestricted
(`escapezygote`): nothing on the child's stack, nor any set or list anywhere in its heap
(`gc.get_objects`), holds another live child's pid; and the fork ids it finds do not count the
forks made for other apps in between.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from escapezygote import escaped_spawner, run_escaped, start_app

from host.supervise.child import Child
from host.supervise.identities import APP_UID_BASE

# Apps of this test's own: numbers from the range the host gives installs (identities.py)
VICTIM_UIDS = [APP_UID_BASE + 0xFE10 + i for i in range(3)]
ATTACKER_UID = APP_UID_BASE + 0xFE20

# Every pid held on the zygote frames above the snippet (their locals, and the containers
# those hold), every set and list in the heap holding one of OTHERS, and the id of every
# fork request (a dict with "op": "fork") reachable from those frames.
SNOOP = '''
OTHERS = set(%r)
found = []
ids = []
gc = sys.modules["gc"]
f = sys._getframe().f_back  # the frames above the snippet's own
while f is not None:
    for name, value in list(f.f_locals.items()):
        held = [value]
        if isinstance(value, (set, frozenset, list, tuple)):
            held += list(value)
        if isinstance(value, dict):
            held += list(value.keys()) + list(value.values())
            if value.get("op") == "fork":
                ids.append(value.get("id"))
        for v in held:
            if type(v) is int and v in OTHERS:
                found.append(f.f_code.co_name + "." + name)
    f = f.f_back
held = value = None
for obj in gc.get_objects():
    if obj is not OTHERS and type(obj) in (set, list) and any(type(v) is int and v in OTHERS for v in obj):
        found.append("heap " + type(obj).__name__)
raise Exception("REPORT " + repr({"found": sorted(set(found)), "ids": ids}))
'''


def _pooled(spawner: object) -> list[int]:
    pool = getattr(spawner, "pool", None)
    return [] if pool is None else [kid.pid for kid in pool._ready]


@pytest.mark.parametrize("prefork", [0, 2], ids=["zygote", "prefork pool"])
def test_an_escaped_child_finds_no_other_childs_pid(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, prefork: int) -> None:
    spawner = escaped_spawner(monkeypatch, tmp_path, prefork=prefork)
    kids: list[Child] = []
    try:
        if spawner.pool is not None:
            assert spawner.pool.wait_ready(10.0)
        kids = [start_app(spawner, uid) for uid in VICTIM_UIDS]
        if spawner.pool is not None:
            assert spawner.pool.wait_ready(10.0)
        attacker = start_app(spawner, ATTACKER_UID)
        kids.append(attacker)
        # the other apps' children, and the pre-forked ones the next apps will get
        others = [kid.pid for kid in kids[:-1]] + _pooled(spawner)
        report = run_escaped(attacker, SNOOP % (others,))
        assert report["found"] == [], (
            f"an escaped child reads other children's pids {others} in {report['found']}")
    finally:
        for kid in kids:
            kid.shutdown(0.5)
        spawner.close()


def test_fork_ids_do_not_count_other_apps_forks(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    spawner = escaped_spawner(monkeypatch, tmp_path)
    kids: list[Child] = []
    try:
        first = start_app(spawner, ATTACKER_UID)
        kids.append(first)
        before = run_escaped(first, SNOOP % ([],))["ids"]
        kids += [start_app(spawner, uid) for uid in VICTIM_UIDS]  # three forks for others
        second = start_app(spawner, ATTACKER_UID)
        kids.append(second)
        after = run_escaped(second, SNOOP % ([],))["ids"]
        assert before and after, "the snippet found no fork request at all (test is blind)"
        assert after[0] - before[0] != len(VICTIM_UIDS) + 1, (
            f"fork ids {before[0]} then {after[0]}: the gap counts the forks for other apps")
    finally:
        for kid in kids:
            kid.shutdown(0.5)
        spawner.close()
