"""Grant resolution: explicit, never blanket; interactive subsets."""
from __future__ import annotations

import pytest

from host.apps.consent import ConsentDeclined, ConsentError, ConsentRequired, resolve_grants

ASKED = frozenset({"users.read", "users.create", "http"})


def answers(*seq: bool):
    it = iter(seq)
    return lambda _q, _d: next(it)


def test_flags_name_exactly_the_grants() -> None:
    g = resolve_grants(ASKED, ["users.read"], interactive=False, confirm=answers())
    assert g == {"users.read"}
    with pytest.raises(ConsentError):
        resolve_grants(ASKED, ["roles.assign"], interactive=False, confirm=answers())


def test_no_tty_no_flags_requires_confirmation() -> None:
    with pytest.raises(ConsentRequired) as ei:
        resolve_grants(ASKED, [], interactive=False, confirm=answers())
    assert "--grant http --grant users.create --grant users.read" in str(ei.value)


def test_interactive_all_or_subset_or_decline() -> None:
    assert resolve_grants(ASKED, [], interactive=True, confirm=answers(True)) == ASKED
    # no to "all", then per permission (sorted: http, users.create, users.read), then proceed
    g = resolve_grants(ASKED, [], interactive=True,
                       confirm=answers(False, False, False, True, True))
    assert g == {"users.read"}
    with pytest.raises(ConsentDeclined):
        resolve_grants(ASKED, [], interactive=True, confirm=answers(False, True, True, True, False))


def test_update_decides_only_new_permissions() -> None:
    g = resolve_grants(ASKED, ["http"], interactive=False, confirm=answers(),
                       ask_about=frozenset({"http"}), already=frozenset({"users.read"}))
    assert g == {"http", "users.read"}
    with pytest.raises(ConsentError):  # users.create was declined before: not part of this decision
        resolve_grants(ASKED, ["users.create"], interactive=False, confirm=answers(),
                       ask_about=frozenset({"http"}), already=frozenset({"users.read"}))
