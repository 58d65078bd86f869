"""Roles that let their holder speak under another name go to bots only, when an app gives them.

Rocket.Chat's `message-impersonate` lets a message carry an `alias` and `avatar` of the
sender's choosing: the name and face a visitor sees. Its defaults give it to `bot` and `app`
(and admins), the roles a relay's own user posts an external agent's words with. Neither role is
admin-class, so a policy may let an app assign `bot` (a permit's `roles`), and with
`any_user = true` to people: a human agent given `bot` could then show a visitor "Bank Security
Team". So an app may give such a role only to a user that is not a person (a `bot` user it
made, or an app's own user), at creation or later; both servers refuse it otherwise, behind the
gate, whatever a policy says. An operator's own call is not checked (the operator may make
anyone a bot).
"""
from __future__ import annotations

from collections.abc import Iterable

from host.server.errors import Forbidden

# The permissions that change whose name and face a message shows (chat.sendMessage's
# `alias` / `avatar`). Guards: an app handing a person (a livechat agent serving visitors) the
# power to pose as anyone to them, through a role a policy calls ordinary.
IMPERSONATION_POWERS = frozenset({"message-impersonate"})
# User types that are no person: a bot user an app made, an app's own user.
NOT_A_PERSON = frozenset({"bot", "app"})


def refuse_to_person(user_type: str, roles: Iterable[str], impersonating: frozenset[str]) -> None:
    """Forbidden when a user of `user_type` that is a person would be given one of `roles`
    that is in `impersonating` (the roles holding an `IMPERSONATION_POWERS` permission)."""
    if user_type in NOT_A_PERSON:
        return
    for role in roles:
        if role in impersonating:
            raise Forbidden(f"the role {role!r} lets its holder post under another name "
                            "(message-impersonate): apps give it only to bot users, never to "
                            "a person")
