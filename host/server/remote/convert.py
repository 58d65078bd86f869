"""Rocket.Chat's REST documents turned into Stockade's server shapes (`host.server.shapes`), so
an app sees the same fields from a remote workspace as from the embedded server.

Lenient on purpose: a field Rocket.Chat leaves out (older versions, a setting turned off) gets
the shape's empty value, never a KeyError; what Stockade itself keeps (which app created a user,
an app's agent display) is filled from `Owned` by the caller.
"""
from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from host.server.limits import MAX_ID
from host.server.shapes import Agent, AgentDisplay, Closer, Department, Message, Room, User, Visitor


def ts(value: Any) -> float:
    """Rocket.Chat's ISO-8601 (`...Z`) or `{"$date": ms}` as epoch seconds (0.0 if absent).

    Always a finite float: Python's JSON reader takes `NaN`, `Infinity` and 400-digit numbers,
    which reached apps as `null` for a time (or raised OverflowError)."""
    raw = value.get("$date") if isinstance(value, dict) else None
    try:
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            out = float(raw) / 1000.0
        elif isinstance(value, str) and value:
            out = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        else:
            return 0.0
    except (ValueError, OverflowError):
        return 0.0
    return out if math.isfinite(out) else 0.0


def _str_map(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        return {}
    return {str(k): str(v) for k, v in raw.items() if v is not None}


def _list(raw: Any) -> list[Any]:
    """A field the workspace documents as a list; anything else reads as empty (iterating a
    string gave its letters as roles, a number raised)."""
    return raw if isinstance(raw, list) else []


def str_list(raw: Any) -> list[str]:
    return [v for v in _list(raw) if isinstance(v, str)]


def _opt_str(raw: Any) -> str | None:
    """A string field, or None: never an object, list or number passed on to an app as sent."""
    return raw if isinstance(raw, str) else None


def _ref_id(raw: Any) -> str | None:
    """The id a reference (`servedBy`, a closer) names, or None when it names none that could be
    an id: a string of 1..MAX_ID characters. A room's serving agent is kept in host.db
    (`rc_rooms`): a workspace answering with a megabyte-long id (or an object, kept as its
    repr) grew host.db by a megabyte a room."""
    ident = raw.get("_id") if isinstance(raw, dict) else None
    return ident if isinstance(ident, str) and 0 < len(ident) <= MAX_ID else None


def active(doc: dict[str, Any]) -> bool:
    """Whether a user document reads as active: unless the workspace says `active: false`. The
    one reading of the flag for what apps see (`user`), the seat read-back and the read-back of
    a lost deactivation. Guards the seat ceiling: the seat read-back freed the seat of a user
    whose document left the field out, while apps were shown that user as active, and the
    ceiling admitted one more creation for each (DESIGN rules 8 and 11)."""
    return doc.get("active") is not False


def user(doc: dict[str, Any], *, created_by_app: str | None, app_id: str | None) -> User:
    """`users.info`'s `user`."""
    emails = [e["address"] for e in _list(doc.get("emails"))
              if isinstance(e, dict) and isinstance(e.get("address"), str)]
    kind = str(doc.get("type") or "user")
    return User(
        id=str(doc["_id"]), type="app" if app_id else ("bot" if kind == "bot" else "user"),
        username=str(doc.get("username") or ""), name=str(doc.get("name") or ""),
        emails=emails, roles=str_list(doc.get("roles")),
        active=active(doc), custom_fields=_str_map(doc.get("customFields")),
        created_by_app=created_by_app, app_id=app_id, created_at=ts(doc.get("createdAt")))


def agent(doc: dict[str, Any], departments: list[Any] | None = None) -> Agent:
    """`livechat/users/agent/{id}`'s `user` (or an entry of the agent list); its departments
    from `livechat/agents/{agentId}/departments` (`departments`: that answer's list), as the
    user document names none."""
    deps = ([d.get("departmentId") for d in departments if isinstance(d, dict)]
            if departments is not None else _list(doc.get("departments")))
    status = "available" if doc.get("statusLivechat") == "available" else "not-available"
    return Agent(
        user_id=str(doc["_id"]), username=str(doc.get("username") or ""),
        name=str(doc.get("name") or ""), type="bot" if doc.get("type") == "bot" else "user",
        status=status, routable_offline=bool(doc.get("routableOffline", False)),
        departments=[d for d in deps if isinstance(d, str) and d])


def department(doc: dict[str, Any], agents: list[Any] | None = None) -> Department:
    """`livechat/department/{id}`'s `department` (its `agents` beside it, or inside it)."""
    raw = _list(agents if agents is not None else doc.get("agents"))
    return Department(
        id=str(doc["_id"]), name=str(doc.get("name") or ""), enabled=bool(doc.get("enabled",
                                                                                  True)),
        agents=[str(a.get("agentId")) for a in raw if isinstance(a, dict) and a.get("agentId")])


def visitor(doc: dict[str, Any]) -> Visitor:
    """`livechat/visitors.info`'s `visitor`."""
    emails = [e for e in _list(doc.get("visitorEmails")) if isinstance(e, dict)]
    return Visitor(
        id=str(doc["_id"]), token=str(doc.get("token") or ""),
        name=str(doc["name"]) if doc.get("name") is not None else None,
        email=_opt_str(emails[0].get("address")) if emails else None,
        custom_fields=_str_map(doc.get("livechatData")), created_at=ts(doc.get("ts")))


def room(doc: dict[str, Any], *, display: tuple[str, str | None] | None) -> Room:
    """A livechat room (`t: "l"`) as `rooms.info` / `livechat/room.info` return it."""
    is_open = bool(doc.get("open", False))
    closed_by: Closer | None = None
    if not is_open:
        closer = str(doc.get("closer") or "user")
        closed_by = Closer(type="visitor" if closer == "visitor" else "user",
                           id=_ref_id(doc.get("closedBy")), app_id=None)
    return Room(
        id=str(doc["_id"]), visitor_id=_ref_id(doc.get("v")) or "",
        department_id=str(doc["departmentId"]) if doc.get("departmentId") else None,
        served_by=_ref_id(doc.get("servedBy")), open=is_open,
        custom_fields=_str_map(doc.get("livechatData")),
        agent_display=AgentDisplay(name=display[0], avatar_url=display[1]) if display else None,
        created_by_app=None, created_at=ts(doc.get("ts")),
        closed_at=ts(doc.get("closedAt")) if not is_open else None, closed_by=closed_by,
        close_comment=str(doc["closingMessage"]) if doc.get("closingMessage") else None)


def message(doc: dict[str, Any], *, app_id: str | None) -> Message:
    """A message (`_id`, `rid`, `msg`, `u`, `ts`; `alias`/`avatar` when impersonated; a
    visitor's message carries the visitor's `token`)."""
    u = doc.get("u") if isinstance(doc.get("u"), dict) else {}
    assert isinstance(u, dict)
    is_visitor = bool(doc.get("token")) or u.get("type") == "visitor"
    display = (AgentDisplay(name=str(doc["alias"]), avatar_url=_opt_str(doc.get("avatar")))
               if doc.get("alias") else None)
    return Message(
        id=str(doc["_id"]), room_id=str(doc.get("rid") or ""),
        sender={"type": "visitor" if is_visitor else "user", "id": str(u.get("_id") or ""),
                "username": None if is_visitor else _opt_str(u.get("username")),
                "name": _opt_str(u.get("name"))},
        app_id=app_id, text=str(doc.get("msg") or ""), ts=ts(doc.get("ts")), display=display)
