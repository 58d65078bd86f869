"""Setting up the author harness's world (`sandbox/harness.py`): what operators and visitors
do, which the app's tests arrange around it. None of it is gated or recorded in `calls`: it is
not the app's doing. Kept apart so the harness module stays one thing (the fake gate and the
events); `AppHarness` is the only class that uses it.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sandbox.harness_server import FakeServer, plain_copy


class HarnessWorld:
    """Operator and visitor actions on the harness's `FakeServer` (users, agents, departments,
    visitors, rooms, messages), each returning what the server made, as plain data."""

    server: FakeServer

    def _tick(self) -> float:
        raise NotImplementedError  # the harness's clock (`AppHarness._tick`)

    def emitted_named(self, event: str) -> list[dict[str, Any]]:
        """Payloads of the emitted events named `event`, in order."""
        return [p for n, p in self.server.emitted if n == event]

    def add_user(self, username: str, name: str | None = None, *, type: str = "user",
                 roles: Iterable[str] = (), custom_fields: Mapping[str, str] | None = None,
                 email: str | None = None, agent: bool = False, status: str = "available",
                 departments: Iterable[str] = ()) -> dict[str, Any]:
        """A user made by an operator (not by the app); `agent=True` makes it a livechat agent
        with `status`, in `departments` (names or ids)."""
        u = self.server.new_user(username, name or username, type, email=email, roles=roles,
                                 custom_fields=custom_fields)
        if agent:
            self.make_agent(u["id"], status=status, departments=departments)
        return plain_copy(self.server.users[u["id"]])

    def make_agent(self, user_id: str, *, status: str = "available",
                   departments: Iterable[str] = ()) -> dict[str, Any]:
        """Make a user (e.g. `app_user["id"]`) a livechat agent, as an operator would."""
        self.server.livechat_add_agent(user_id)
        self.server.livechat_set_agent_status(user_id, status)
        for d in departments:  # each may route queued rooms, as the embedded server does
            self.server.livechat_add_department_agent(d, user_id)
        return plain_copy(self.server.agent(user_id))

    def add_department(self, name: str) -> dict[str, Any]:
        dep_id = self.server.next_id("d")
        self.server.departments[dep_id] = {"id": dep_id, "name": name, "enabled": True}
        return plain_copy(self.server.department(dep_id))

    def add_visitor(self, name: str | None = None, email: str | None = None,
                    custom_fields: Mapping[str, str] | None = None) -> dict[str, Any]:
        vid = self.server.next_id("v")
        self.server.visitors[vid] = {
            "id": vid, "token": f"token-{vid}", "name": name, "email": email,
            "custom_fields": dict(custom_fields or {}), "created_at": self._tick()}
        return plain_copy(self.server.visitors[vid])

    def start_room(self, visitor_id: str, department: str | None = None, *,
                   custom_fields: Mapping[str, str] | None = None) -> dict[str, Any]:
        """A visitor starts a conversation: the room is created and routed like the embedded
        server does (to the least busy routable agent, if any). Returns the
        `livechat.room_started` payload (`{"room", "visitor"}`, the room as created, before
        routing). The embedded server's rooms start without custom fields; `custom_fields`
        stands in for a server adapter that sets them."""
        self.server.livechat_create_room(visitor_id, department, custom_fields=custom_fields)
        return self.emitted_named("livechat.room_started")[-1]

    def visitor_says(self, room_id: str, text: str) -> dict[str, Any]:
        """The room's visitor writes; returns the `message.sent` payload."""
        room = self.server.livechat_get_room(room_id)
        v = self.server.livechat_get_visitor(room["visitor_id"])
        sender = {"type": "visitor", "id": v["id"], "username": None, "name": v["name"]}
        self.server.post(room_id, sender, text)
        return self.emitted_named("message.sent")[-1]

    def agent_says(self, user_id: str, room_id: str, text: str) -> dict[str, Any]:
        """A user (an agent at a console) writes; returns the `message.sent` payload."""
        self.server.post(room_id, self.server.user_sender(user_id), text)
        return self.emitted_named("message.sent")[-1]

    def close_room(self, room_id: str, by_visitor: bool = False) -> dict[str, Any]:
        """Someone other than the app closes the room (the visitor, or the serving agent);
        returns the `livechat.room_closed` payload."""
        room = self.server.livechat_get_room(room_id)
        if by_visitor:
            closer = {"type": "visitor", "id": room["visitor_id"], "app_id": None}
        else:
            closer = {"type": "user", "id": room["served_by"], "app_id": None}
        self.server.close(room_id, closer, None)
        return self.emitted_named("livechat.room_closed")[-1]

    def stored(self, key: str) -> Any:
        """The value the app stored under `key` (KeyError if none)."""
        return plain_copy(self.server.store[key]["value"])
