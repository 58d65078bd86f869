"""Roles that let their holder speak under another name: an app gives them to no person it did
not create.

Rocket.Chat's `message-impersonate` lets a message carry an `alias` and `avatar` of the
sender's choosing: the name and face a visitor sees. Its defaults give it to `bot` and `app`
(and admins), the roles a relay's own user posts an external agent's words with. Neither role is
admin-class, so a policy may let an app assign `bot` (a permit's `roles`), and with
`any_user = true` to people the app never made: a human agent given `bot` could then show a
visitor "Bank Security Team". So an app may give such a role only to a user that is not a person
(a bot user, an app's own user) or to a user it created itself (its own users are its own to
shape, as every own-users action says: an agent-mirroring app keeps its users routable while
offline with `bot`); both servers refuse it otherwise, behind the gate, whatever a policy says.
An operator's own call is not checked (the operator may make anyone a bot).
"""
from __future__ import annotations

from host.server.errors import Forbidden
from policies.names import impersonation_refused, person_not_made_by

# The permissions that change whose name and face a message shows (chat.sendMessage's
# `alias` / `avatar`). Guards: an app handing a person (a livechat agent serving visitors) the
# power to pose as anyone to them, through a role a policy calls ordinary.
IMPERSONATION_POWERS = frozenset({"message-impersonate"})


def refuse_to_person(user_type: str, created_by: str | None, app_id: str, role: str) -> None:
    """Forbidden for app `app_id` giving `role` (one that impersonates) to a user of
    `user_type` that `created_by` names as made by another app or by no app."""
    if person_not_made_by(user_type, created_by, app_id):
        raise Forbidden(impersonation_refused(role))
