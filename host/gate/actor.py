"""Who a call speaks as, named in clear on its audit record (`AuditRecord.actor`)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Longest user id named in clear on a record (the engine refuses ids over MAX_ID anyway); a
# longer one is cut with a marker rather than let an app's argument refuse its own audit record.
_MAX_ACTOR_ID = 120


def acting_user(action: str, args: Mapping[str, Any]) -> str | None:
    """Who a message sent as another user speaks as, for the record's `actor`: audited "with
    both identities" (the app in `app_id`, the user it speaks as here, in clear, never only in
    the digest), on the decision whether it is allowed or refused. None for other actions."""
    if action != "messages.send_as_user":
        return None
    uid = args.get("user_id")
    if not isinstance(uid, str):
        return "user (not a string)"
    return "user " + (uid if len(uid) <= _MAX_ACTOR_ID else uid[:_MAX_ACTOR_ID] + "…")
