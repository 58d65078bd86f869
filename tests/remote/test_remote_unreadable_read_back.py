"""The read-back of a remote write left pending (`was_applied`) reads the workspace; an answer
it could not use (a user document without `_id`) raised KeyError out of it. The host's
settlement at start asks this of every unfinished call and takes only a ServerError as "cannot
say now" (`Host._was_applied`): anything else stopped `Host.start`, so a workspace answering
one user document oddly kept the home from being served. Now such an answer is `Unavailable`:
the intent stays pending, its units reserved."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rcfake import FakeWorkspace, remote_on

from host.runtime import Host
from host.server.errors import Unavailable


@pytest.mark.parametrize("doc", [{"username": "bob"}, {"_id": "u" * 500, "username": "bob"}],
                         ids=["no-id", "id-over-the-cap"])
def test_an_unusable_read_back_is_cannot_say_now(tmp_path: Path, doc: dict[str, Any]) -> None:
    fake = FakeWorkspace({"GET users.info": lambda q, b: (200, {"user": doc})})
    rs = remote_on(fake, tmp_path)
    rs.owned.begin_op("op-1", "users.create", {"username": "bob", "app_id": "a"}, 0.0)
    with pytest.raises(Unavailable):
        rs.was_applied("op-1")
    op = rs.owned.op("op-1")
    assert op is not None and op[1] == "pending"
    # The start's settlement: "cannot say now" (None), not an exception out of Host.start.
    assert Host._was_applied(SimpleNamespace(server=rs), "op-1") is None  # type: ignore[arg-type]
