"""Server shapes rendered the way the Rocket.Chat REST API renders them (`_id`, `customFields`,
ISO-8601 `ts`, `v`/`servedBy` on rooms, `u`/`msg`/`rid` on messages), so REST clients written for
Rocket.Chat find the fields where they expect them."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from host.server.shapes import Agent, Department, Message, Role, Room, User, Visitor


def iso(ts: float | None) -> str | None:
    """Epoch seconds as Rocket.Chat's ISO-8601 UTC with milliseconds (`...Z`)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def user(u: User) -> dict[str, Any]:
    """A user as `users.info` returns it."""
    return {
        "_id": u["id"], "type": u["type"], "username": u["username"], "name": u["name"],
        "emails": [{"address": e, "verified": False} for e in u["emails"]],
        "roles": u["roles"], "active": u["active"], "customFields": u["custom_fields"],
        "createdAt": iso(u["created_at"]), "createdByApp": u["created_by_app"],
        "appId": u["app_id"],
    }


def role(r: Role) -> dict[str, Any]:
    """A role as `roles.list` returns it (`protected` carries the privileged flag)."""
    return {"_id": r["name"], "name": r["name"], "description": r["description"],
            "protected": r["privileged"], "scope": "Users"}


def agent(a: Agent) -> dict[str, Any]:
    """A livechat agent (`statusLivechat` as in Rocket.Chat)."""
    return {"_id": a["user_id"], "username": a["username"], "name": a["name"],
            "statusLivechat": a["status"], "routableOffline": a["routable_offline"]}


def department(d: Department) -> dict[str, Any]:
    """A livechat department as `livechat/department` lists it: `numAgents`, never the agents
    (Rocket.Chat gives those beside it, from `livechat/department/{_id}`: `department_agent`).
    A list item carrying them hid that the remote adapter never read the agents."""
    return {"_id": d["id"], "name": d["name"], "enabled": d["enabled"],
            "numAgents": len(d["agents"])}


def department_agent(department_id: str, agent_id: str, username: str | None,
                     enabled: bool) -> dict[str, Any]:
    """One agent of a department (`livechat/department/{_id}`'s `agents`, and
    `livechat/agents/{agentId}/departments`'s `departments`)."""
    return {"_id": f"{department_id}:{agent_id}", "agentId": agent_id,
            "departmentId": department_id, "username": username, "count": 0, "order": 0,
            "departmentEnabled": enabled}


def visitor(v: Visitor) -> dict[str, Any]:
    """A livechat visitor (guest)."""
    return {"_id": v["id"], "token": v["token"], "name": v["name"],
            "visitorEmails": [{"address": v["email"]}] if v["email"] else [],
            "livechatData": v["custom_fields"], "ts": iso(v["created_at"])}


def room(r: Room) -> dict[str, Any]:
    """A livechat room (`t: "l"`)."""
    out: dict[str, Any] = {
        "_id": r["id"], "t": "l", "open": r["open"], "v": {"_id": r["visitor_id"]},
        "departmentId": r["department_id"], "livechatData": r["custom_fields"],
        "ts": iso(r["created_at"]), "createdByApp": r["created_by_app"],
    }
    if r["served_by"] is not None:
        out["servedBy"] = {"_id": r["served_by"]}
    if r["agent_display"] is not None:
        out["agentDisplay"] = {"name": r["agent_display"]["name"],
                               "avatarUrl": r["agent_display"]["avatar_url"]}
    if not r["open"]:
        closed_by = r["closed_by"]
        out["closedAt"] = iso(r["closed_at"])
        out["closer"] = closed_by["type"] if closed_by else None
        out["closedBy"] = {"_id": closed_by["id"]} if closed_by else None
        out["closingMessage"] = r["close_comment"]
    return out


def message(m: Message) -> dict[str, Any]:
    """A message (`rid`, `msg`, `u`), with Rocket.Chat's `alias`/`avatar` when it carries a
    display (`u` stays the real sender, for staff and audit)."""
    s = m["sender"]
    out: dict[str, Any] = {
        "_id": m["id"], "rid": m["room_id"], "msg": m["text"], "ts": iso(m["ts"]),
        "u": {"_id": s["id"], "username": s["username"], "name": s["name"], "type": s["type"]},
        "appId": m["app_id"],
    }
    if m["display"] is not None:
        out["alias"] = m["display"]["name"]
        if m["display"]["avatar_url"] is not None:
            out["avatar"] = m["display"]["avatar_url"]
    return out
