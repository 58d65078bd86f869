"""Assume escape: the C heap a zygote child inherits keeps no other fork's request.

The finding: the zygote received each fork request into a buffer of its own
(`socket.recv_fds`: 4 KiB, from the C allocator) and freed it; freed memory is not cleared, and
every later child inherits the zygote's heap. Code that escaped RestrictedPython (and reads its
own memory, as native code can) found there the text of the last six fork requests, each with
its id: between two of its own children it counted, and told apart, the children the host had
started for other apps (starts, restarts, the prefork pool's), the leak random fork ids
(`test_zygote_memory_names_no_other_child.py`) closed for the ids themselves. Now every
request lands in one buffer, cleared once read (`sandbox.zygote._receive`).

The snippet runs unrestricted in a real zygote child (`escapezygote`); it finds its mapped
pages with `madvise` (which the filter allows; an unmapped page is ENOMEM) around every object
the collector knows, and reads them.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from escapezygote import escaped_spawner, run_escaped, start_app

from host.supervise.child import Child
from host.supervise.identities import APP_UID_BASE

VICTIM_UIDS = [APP_UID_BASE + 0xFE30 + i for i in range(3)]
ATTACKER_UID = APP_UID_BASE + 0xFE38

# The ids of every fork request whose text the child's memory holds, and its own (from the
# zygote frame it was forked in, `_child`'s `req`).
SCAN = r'''
ctypes, gc, re = sys.modules["ctypes"], sys.modules["gc"], sys.modules["re"]
madvise = ctypes.CDLL(None).madvise
madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
own = None
f = sys._getframe()
while f is not None:
    req = f.f_locals.get("req")
    if isinstance(req, dict) and req.get("op") == "fork":
        own = req.get("id")
    f = f.f_back
request = re.compile(rb'"op": "fork", "id": (\d+)')
seen = set()
for mib in sorted({id(o) >> 20 for o in gc.get_objects()}):
    for page in range((mib - 1) << 20, (mib + 2) << 20, 4096):
        if madvise(page, 4096, 0) == 0:  # MADV_NORMAL: mapped
            seen.update(int(m.group(1)) for m in request.finditer(ctypes.string_at(page, 4096)))
raise Exception("REPORT " + repr({"own": own, "seen": sorted(seen)}))
'''


def test_a_childs_heap_holds_no_other_forks_request(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    spawner = escaped_spawner(monkeypatch, tmp_path)
    kids: list[Child] = []
    try:
        kids.append(start_app(spawner, ATTACKER_UID))
        kids += [start_app(spawner, uid) for uid in VICTIM_UIDS]  # three forks for others
        second = start_app(spawner, ATTACKER_UID)
        kids.append(second)
        report = run_escaped(second, SCAN)
        assert report["own"] is not None, "the snippet found no request of its own (blind)"
        others = [i for i in report["seen"] if i != report["own"]]
        assert others == [], (
            f"the child's heap holds {len(others)} other fork requests: {others}")
    finally:
        for kid in kids:
            kid.shutdown(0.5)
        spawner.close()
