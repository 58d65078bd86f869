"""The livechat room, visitor and message actions of `RemoteServer`, each one documented
Rocket.Chat REST call (or two: a look-up the call needs, named in the method's docstring)."""
from __future__ import annotations

from typing import Any

from host.server import limits
from host.server.db import new_id
from host.server.errors import (
    Forbidden,
    InvalidArgument,
    NotFound,
    Prevented,
    ServerError,
    Unavailable,
)
from host.server.events import writing_cause
from host.server.principals import Caller, Principal, app_of, user_of
from host.server.remote import convert
from host.server.remote.client import Unauthorized
from host.server.remote.core import RemoteCore
from host.server.shapes import Department, Message, Room, Visitor

# Messages read per room at most (Rocket.Chat's own page cap is 100; the adapter's list cap).
MAX_MESSAGES = 500
# Rooms a page of `livechat/rooms` holds (Rocket.Chat's own cap) and the pages one look for
# rooms opened since a time reads at most: 5,000 rooms opened while no host listened are all
# caught up; past that the oldest are left, and the catch-up says so in the host's log.
ROOMS_PAGE = 100
MAX_ROOM_PAGES = 50
# What closeByUser answers for a room already closed (OpenAPI: the bare `error` text).
ALREADY_CLOSED = frozenset({"error-room-already-closed"})


class RemoteRooms(RemoteCore):
    """Rooms, visitors and messages over REST."""

    def room(self, room_id: str) -> Room:
        """GET rooms.info ?roomId=."""
        doc = self.get("rooms.info", roomId=limits.ident(room_id, "room_id")).get("room")
        # rooms.info answers any room the service account sees: a channel, group or DM is no
        # livechat room (read as one it was a closed room with no visitor: a signed webhook
        # naming #general raised livechat.room_closed for it).
        if not isinstance(doc, dict) or doc.get("t") != "l":
            raise NotFound(f"no livechat room {room_id!r}")
        return convert.room(doc, display=self.owned.display(str(doc["_id"])))

    def livechat_get_room(self, caller: Principal, room_id: str) -> Room:
        """A room. NotFound."""
        return self.room(room_id)

    def livechat_list_rooms(self, caller: Principal, open: bool | None = None) -> list[Room]:
        """GET livechat/rooms ?open= (newest first, one page of at most 100)."""
        query = {"count": "100", "sort": '{"ts":-1}'}
        if open is not None:
            query["open"] = "true" if open else "false"
        docs = self.get("livechat/rooms", **query).get("rooms") or []
        rooms = [convert.room(d, display=self.owned.display(str(d["_id"]))) for d in docs
                 if isinstance(d, dict)]
        return sorted(rooms, key=lambda r: r["created_at"], reverse=True)

    def open_rooms_since(self, since: float) -> tuple[list[Room], bool]:
        """GET livechat/rooms ?open=true, newest first, page after page until a room opened
        before `since` (or the last page): the open rooms opened since, and whether there were
        more than MAX_ROOM_PAGES pages of them (the oldest then left out)."""
        found: list[Room] = []
        for page in range(MAX_ROOM_PAGES):
            docs = self.get("livechat/rooms", open="true", count=str(ROOMS_PAGE),
                            offset=str(page * ROOMS_PAGE), sort='{"ts":-1}').get("rooms") or []
            rooms = [convert.room(d, display=self.owned.display(str(d["_id"]))) for d in docs
                     if isinstance(d, dict)]
            found += [r for r in rooms if r["created_at"] >= since]
            if len(docs) < ROOMS_PAGE or any(r["created_at"] < since for r in rooms):
                return found, False
        return found, True

    def livechat_get_visitor(self, caller: Principal, visitor_id: str) -> Visitor:
        """GET livechat/visitors.info ?visitorId=."""
        doc = self.get("livechat/visitors.info",
                       visitorId=limits.ident(visitor_id, "visitor_id")).get("visitor")
        if not isinstance(doc, dict):
            raise NotFound(f"no visitor {visitor_id!r}")
        return convert.visitor(doc)

    def livechat_create_room(self, caller: Principal, visitor_id: str,
                             department: str | None = None, *, op_id: str | None = None
                             ) -> Room:
        """GET livechat/room ?token=&department= (the widget's own call; the visitor's token
        read first with livechat/visitors.info). Not retried: a repeat could open a second
        room."""
        token = self.livechat_get_visitor(caller, visitor_id)["token"]
        query = {"token": token}
        if department:
            query["department"] = self._department_id(department)

        def send() -> Room:
            doc = self.client.call("GET", "livechat/room", query=query, idempotent=False)
            return convert.room(doc["room"], display=None)

        return self._write(op_id, "livechat.create_room", {}, send)

    def livechat_take_room(self, caller: Principal, room_id: str, agent_id: str, *,
                           op_id: str | None = None) -> Room:
        """POST livechat/inquiries.take {inquiryId, userId} (the inquiry read first with
        livechat/inquiries.getOne ?roomId=)."""
        room_id = limits.ident(room_id, "room_id")
        agent_id = limits.ident(agent_id, "agent_id")
        inquiry = self.get("livechat/inquiries.getOne", roomId=room_id).get("inquiry") or {}
        if not inquiry.get("_id"):
            raise NotFound(f"room {room_id!r} is not in the queue")

        def send() -> Room:
            self.post("livechat/inquiries.take", {"inquiryId": inquiry["_id"],
                                                  "userId": agent_id}, idempotent=False)
            return self.after_write("livechat.take_room", lambda: self.room(room_id))

        return self._write(op_id, "livechat.take_room",
                           {"room_id": room_id, "agent_id": agent_id}, send)

    def livechat_transfer_room(self, caller: Principal, room_id: str,
                               department: str | None = None, agent_id: str | None = None, *,
                               op_id: str | None = None) -> Room:
        """POST livechat/room.forward {roomId, departmentId?, userId?}."""
        room_id = limits.ident(room_id, "room_id")
        if not department and not agent_id:
            raise InvalidArgument("transfer needs a department or an agent")
        body: dict[str, Any] = {"roomId": room_id}
        if department:
            body["departmentId"] = self._department_id(department)
        if agent_id:
            body["userId"] = limits.ident(agent_id, "agent_id")

        def send() -> Room:
            self.post("livechat/room.forward", body, idempotent=False)
            return self.after_write("livechat.transfer_room", lambda: self.room(room_id))

        return self._write(op_id, "livechat.transfer_room", {}, send)

    def livechat_close_room(self, caller: Principal, room_id: str, comment: str | None = None,
                            *, op_id: str | None = None) -> Room:
        """POST livechat/room.closeByUser {rid, comment?} (Rocket.Chat 6.4+). Retried like an
        idempotent write; a retry answered `error-room-already-closed` after an attempt whose
        answer was lost is that attempt's close (applied). A room closed before the first
        attempt is a Conflict: this call closed nothing."""
        room_id = limits.ident(room_id, "room_id")
        body: dict[str, Any] = {"rid": room_id}
        if comment:
            body["comment"] = limits.message_text(comment)

        def send() -> Room:
            self.client.call("POST", "livechat/room.closeByUser", body=body, idempotent=True,
                             done_if_repeated=ALREADY_CLOSED)
            return self.after_write("livechat.close_room", lambda: self.room(room_id))

        return self._write(op_id, "livechat.close_room", {"room_id": room_id}, send)

    # -- agent display and messages ---------------------------------------------------------
    def _serving(self, caller: Principal, room_id: str) -> Room:
        room = self.room(room_id)
        if isinstance(caller, Caller) and room["served_by"] != caller.app_user_id:
            raise Forbidden("only the app whose user serves this room may do this here")
        return room

    def livechat_set_agent_display(self, caller: Principal, room_id: str, name: str,
                                   avatar_url: str | None = None, *,
                                   op_id: str | None = None) -> Room:
        """Kept by Stockade (Rocket.Chat has no such field); the visitor sees it on each
        relayed message's `alias` / `avatar`."""
        name = limits.name(name)
        room = self._serving(caller, room_id)
        self.owned.set_display(room["id"], name, avatar_url)
        return self.room(room["id"])

    def livechat_relay_message(self, caller: Principal, room_id: str, text: str, alias: str,
                               avatar_url: str | None = None, *, op_id: str | None = None
                               ) -> Message:
        """POST chat.sendMessage {message: {rid, msg, alias, avatar}} as the app's user."""
        self._serving(caller, room_id)
        return self._send(caller, user_of(caller), room_id, text, op_id,
                          {"alias": limits.name(alias), "avatar": avatar_url})

    def messages_send(self, caller: Principal, room_id: str, text: str, *,
                      op_id: str | None = None) -> Message:
        """POST chat.sendMessage {message: {rid, msg}} as the app's own user."""
        return self._send(caller, user_of(caller), room_id, text, op_id, {})

    def messages_send_as_user(self, caller: Principal, room_id: str, user_id: str, text: str,
                              *, op_id: str | None = None) -> Message:
        """POST chat.sendMessage as a user this app created (Forbidden for any other)."""
        if isinstance(caller, Caller) and self.owned.created_by(user_id) != caller.app_id:
            raise Forbidden("an app sends only as users it created")
        return self._send(caller, user_id, room_id, text, op_id, {})

    def _send(self, caller: Principal, sender: str | None, room_id: str, text: str,
              op_id: str | None, extra: dict[str, Any]) -> Message:
        room_id = limits.ident(room_id, "room_id")
        text = limits.message_text(text)
        if not sender:
            raise Forbidden("this app has no user of its own to send as (reinstall it)")
        text = self._pre_send(caller, sender, room_id, text)
        body: dict[str, Any] = {"message": {"rid": room_id, "msg": text,
                                            **{k: v for k, v in extra.items() if v}}}
        app, cause = app_of(caller), writing_cause()
        chosen = None
        if app is not None and cause.depth > 0:
            # Written while the app handles an event: the webhook of this message must come
            # back as an event one deeper (`sentcauses`), and it may come before the POST's
            # answer, so the id is chosen here, recorded first, and given to the workspace.
            chosen = new_id()
            body["message"]["_id"] = chosen
            self.sent.remember(chosen, cause, room_id, self.clock.now())

        def send() -> Message:
            try:
                doc = self.post("chat.sendMessage", body, idempotent=False,
                                auth=self.as_user(sender))["message"]
            except Unauthorized:
                # A 401 applied nothing: the minted sign-in is gone (the user was deactivated
                # since); mint once more and send once more.
                self.forget_user(sender)
                doc = self.post("chat.sendMessage", body, idempotent=False,
                                auth=self.as_user(sender))["message"]
            if app is not None:
                self.owned.record_message(str(doc["_id"]), app, self.clock.now(),
                                          extra.get("alias"), extra.get("avatar"))
            return self.to_message(doc)

        try:
            return self._write(op_id, "messages.send", {}, send)
        except ServerError as exc:
            # Refused: no webhook will come for it. Kept when it may have been applied (an
            # answer lost): its webhook may still come.
            if chosen is not None and not (isinstance(exc, Unavailable)
                                           and exc.outcome_unknown):
                self.sent.forget(chosen)
            raise

    def _pre_send(self, caller: Principal, sender: str, room_id: str, text: str) -> str:
        hook = self._hook
        if hook is None:
            return text
        draft: dict[str, Any] = {
            "id": "", "room_id": room_id, "text": text, "ts": self.clock.now(),
            "sender": {"type": "user", "id": sender, "username": None, "name": None},
            "app_id": app_of(caller), "display": None, "room": self.room(room_id),
            "origin": ({"app_id": caller.app_id, "install_id": caller.install_id}
                       if isinstance(caller, Caller) else None)}
        verdict = hook(draft)
        if verdict is None or verdict.get("prevented"):
            by = verdict.get("prevented_by") if verdict else None
            why = verdict.get("reason") if verdict else "prevented"
            raise Prevented(f"message prevented by {by or 'a pre-send hook'}: {why}", by)
        return str(verdict.get("text", text))

    def messages_list(self, caller: Principal, room_id: str, limit: int | None = None
                      ) -> list[Message]:
        """GET channels.messages ?roomId=&count= (newest first there; oldest first here)."""
        room_id = limits.ident(room_id, "room_id")
        count = min(limit or 50, MAX_MESSAGES)
        docs = self.get("channels.messages", roomId=room_id, count=str(min(count, 100)),
                        sort='{"ts":-1}').get("messages") or []
        return [self.to_message(d) for d in reversed([d for d in docs if isinstance(d, dict)])]

    def message(self, message_id: str) -> Message:
        """GET chat.getMessage ?msgId= (NotFound, or InvalidArgument: Rocket.Chat answers an id
        it does not hold with a bare 400)."""
        doc = self.get("chat.getMessage", msgId=limits.ident(message_id, "message_id")
                       ).get("message")
        if not isinstance(doc, dict) or not doc.get("_id"):
            raise NotFound(f"no message {message_id!r}")
        return self.to_message(doc)

    def to_message(self, doc: dict[str, Any]) -> Message:
        """A message, with what Stockade recorded when an app sent it: the app, and the
        external agent it relayed (a workspace that drops `alias` still shows it here)."""
        mine = self.owned.message_app(str(doc["_id"]))
        if mine is None and (sent := self.sent.peek(str(doc["_id"]), self.clock.now())):
            # Its webhook came before the POST's answer, which records the app on disk.
            mine = (sent.cause.app_id, None, None) if sent.cause.app_id else None
        msg = convert.message(doc, app_id=mine[0] if mine else None)
        if mine is not None and mine[1] and msg["display"] is None:
            msg["display"] = {"name": mine[1], "avatar_url": mine[2]}
        return msg

    def _department_id(self, department: str) -> str:
        return str(self._department_doc(department)["_id"])

    # -- departments (read) ----------------------------------------------------------------------
    def department_docs(self) -> list[dict[str, Any]]:
        """GET livechat/department ?count=100 (one page: at most 100 departments). Each item
        carries `numAgents`, never the agents (`department_agents`)."""
        docs = self.get("livechat/department", count="100").get("departments") or []
        return [d for d in docs if isinstance(d, dict) and d.get("_id")]

    def livechat_list_departments(self, caller: Principal | None = None) -> list[Department]:
        """The department list (one request). Its `agents` are empty: Rocket.Chat's list names
        none (`livechat_get_department` reads them)."""
        return sorted((convert.department(d, []) for d in self.department_docs()),
                      key=lambda d: d["name"].lower())

    def list_departments(self) -> list[Department]:
        return self.livechat_list_departments(None)

    def _department_doc(self, department: str) -> dict[str, Any]:
        """By id, else by name (case-insensitive), from the department list (a workspace has
        few; one request)."""
        docs = self.department_docs()
        for d in docs:
            if str(d["_id"]) == department:
                return d
        for d in docs:
            if str(d.get("name") or "").lower() == str(department).lower():
                return d
        raise NotFound(f"no department {department!r}")

    def department_agents(self, department_id: str) -> list[str]:
        """GET livechat/department/{_id}: the agent ids beside the department (where Rocket.Chat
        gives them)."""
        res = self.get(f"livechat/department/{limits.ident(department_id, 'department')}")
        return convert.department(res.get("department") or {"_id": department_id},
                                  res.get("agents") or [])["agents"]

    def livechat_get_department(self, caller: Principal | None, department: str) -> Department:
        """Found by id or name in the list, then read with its agents (GET
        livechat/department/{_id}): two requests."""
        dep = convert.department(self._department_doc(department), [])
        dep["agents"] = self.department_agents(dep["id"])
        return dep
