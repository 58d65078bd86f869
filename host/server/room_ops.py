"""`RoomOps`: the embedded server's livechat rooms, visitors and messages (mixed into
`EmbeddedServer`). App actions take a `Caller`; the visitor and agent helpers at the bottom are
non-app operations for the demo, the tests and the REST API.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from host.server import limits, livechat, messages, ops, rooms
from host.server.core import ServerCore
from host.server.db import Tx
from host.server.errors import Forbidden, InvalidArgument, Prevented, ServerError
from host.server.events import GUEST_SAVED, MESSAGE_SENT
from host.server.principals import SYSTEM, Caller, Operator, Principal, app_of, user_of
from host.server.shapes import AgentDisplay, Closer, Message, Room, Sender, Visitor

log = logging.getLogger("stockade.server")

# Caps on what a pre-send hook may say about a refusal (it ends up in the sender's error).
MAX_PREVENTED_BY = 64
MAX_PREVENT_REASON = 256


def _closer(p: Principal) -> Closer:
    return Closer(type="user", id=user_of(p), app_id=app_of(p))


def _require_served(room: Room, user_id: str, who: str, what: str) -> None:
    if room["served_by"] != user_id:
        raise Forbidden(f"only {who} serves room {room['id']!r} may {what} there")


def _still_served(tx: Tx, room_id: str, served_by: str | None, what: str) -> None:
    """Refuse unless `served_by` (when given) serves the open room now, in the write itself.
    A security boundary: the REST route let the caller in as the serving agent on a read made
    before this write took the store's write lock, and a transfer committed while it waited
    (a manager's, say) made the room another agent's; the stale check alone let the first
    agent pass that agent's conversation on, or close it."""
    if served_by is not None:
        room = rooms.get_open(tx.conn, room_id)
        if room["served_by"] != served_by:
            raise Forbidden(f"only the agent who serves room {room_id!r} may {what} it, and "
                            "it was transferred meanwhile")


class RoomOps(ServerCore):
    """Rooms, visitors and messages."""

    # -- livechat.read --------------------------------------------------------------------------

    def livechat_get_room(self, caller: Principal, room_id: str) -> Room:
        """A room. NotFound."""
        # One statement is its own consistent snapshot (as `users_get`): no BEGIN/COMMIT.
        return rooms.get(self.db.conn(), room_id)

    def livechat_list_rooms(self, caller: Principal, open: bool | None = None) -> list[Room]:
        """Rooms, newest first, at most 500; `open` filters."""
        if open is not None and not isinstance(open, bool):
            raise InvalidArgument("open must be true, false or absent")
        with self.db.read() as c:
            return rooms.list_rooms(c, open)

    def livechat_open_room_of(self, caller: Principal, visitor_id: str) -> Room | None:
        """The visitor's open room, or None (by visitor: never a filter over a capped list)."""
        return rooms.open_room_of(self.db.conn(), visitor_id)  # one statement: its snapshot

    def livechat_queue(
        self, caller: Principal, departments_of: str | None, department: str | None = None
    ) -> list[Room]:
        """Open rooms nobody serves, longest waiting first, at most 500: all, or those of
        `departments_of`'s departments (and of none); `department` narrows to one."""
        with self.db.read() as c:
            return rooms.queue(c, departments_of, department)

    def livechat_rooms_seen_by(
        self, caller: Principal, agent_id: str, open: bool | None = None
    ) -> list[Room]:
        """The rooms `agent_id` serves and its departments' queue, newest first, at most 500
        (an agent's view; a manager's is `livechat_list_rooms`)."""
        if open is not None and not isinstance(open, bool):
            raise InvalidArgument("open must be true, false or absent")
        with self.db.read() as c:
            return rooms.seen_by(c, agent_id, open)

    def livechat_visitor_room_seen_by(
        self, caller: Principal, agent_id: str, visitor_id: str
    ) -> Room | None:
        """One of the visitor's rooms among `livechat_rooms_seen_by`'s, or None."""
        with self.db.read() as c:
            return rooms.visitor_room_seen_by(c, agent_id, visitor_id)

    def livechat_get_visitor(self, caller: Principal, visitor_id: str) -> Visitor:
        """A visitor. NotFound."""
        return livechat.get_visitor(self.db.conn(), visitor_id)

    def get_visitor_by_token(self, token: str) -> Visitor:
        """A visitor by widget token. NotFound."""
        return livechat.get_visitor_by_token(self.db.conn(), token)

    # -- livechat.write -------------------------------------------------------------------------

    def livechat_create_room(
        self, caller: Principal, visitor_id: str, department: str | None = None, *,
        op_id: str | None = None,
    ) -> Room:
        """Open a room for a visitor and route it (room_started, then agent_assigned if an agent
        was routable; else the room waits, unserved, for a take)."""
        visitor_id = limits.ident(visitor_id, "visitor_id")
        app_id = app_of(caller)
        return self._write(
            caller, op_id, "livechat.create_room",
            {"visitor_id": visitor_id, "department": department},
            lambda tx: rooms.start(tx, visitor_id, department, app_id),
        )

    def livechat_take_room(
        self, caller: Principal, room_id: str, agent_id: str, *, op_id: str | None = None
    ) -> Room:
        """Assign a queued room to an agent (agent_assigned)."""
        room_id = limits.ident(room_id, "room_id")
        agent_id = limits.ident(agent_id, "agent_id")
        return self._write(
            caller, op_id, "livechat.take_room", {"room_id": room_id, "agent_id": agent_id},
            lambda tx: rooms.take(tx, room_id, agent_id),
        )

    def livechat_transfer_room(
        self, caller: Principal, room_id: str, department: str | None = None,
        agent_id: str | None = None, *, op_id: str | None = None, served_by: str | None = None,
    ) -> Room:
        """Move a room to an agent or a department (agent_unassigned, agent_assigned,
        room_transferred). `served_by`: the user who must serve the room when the transfer is
        written (Forbidden otherwise), for a REST caller let in only as the serving agent
        (`rest_routes.room_transfer`, `_still_served`)."""
        room_id = limits.ident(room_id, "room_id")
        if agent_id is not None:
            agent_id = limits.ident(agent_id, "agent_id")
        args: dict[str, Any] = {"room_id": room_id, "department": department,
                                "agent_id": agent_id}
        if served_by is not None:  # part of the digest: a retry under another check is not one
            args["served_by"] = served_by

        def apply(tx: Tx) -> Room:
            _still_served(tx, room_id, served_by, "transfer")
            return rooms.transfer(tx, room_id, department, agent_id)

        return self._write(caller, op_id, "livechat.transfer_room", args, apply)

    def livechat_close_room(
        self, caller: Principal, room_id: str, comment: str | None = None, *,
        op_id: str | None = None, served_by: str | None = None,
    ) -> Room:
        """Close a room; `closed_by` is the caller's user (an app's app user) (room_closed).
        `served_by`: as for `livechat_transfer_room` (`rest_routes.room_close`)."""
        room_id = limits.ident(room_id, "room_id")
        closer = _closer(caller)
        args: dict[str, Any] = {"room_id": room_id, "comment": comment}
        if served_by is not None:
            args["served_by"] = served_by

        def apply(tx: Tx) -> Room:
            _still_served(tx, room_id, served_by, "close")
            return rooms.close(tx, room_id, closer, comment)

        return self._write(caller, op_id, "livechat.close_room", args, apply)

    def livechat_set_agent_display(
        self, caller: Principal, room_id: str, name: str, avatar_url: str | None = None, *,
        op_id: str | None = None,
    ) -> Room:
        """Show an external agent's name/avatar to the visitor. Only an app whose app user
        serves the room may (Forbidden otherwise, and for every non-app principal)."""
        room_id = limits.ident(room_id, "room_id")
        app_user = caller.app_user_id if isinstance(caller, Caller) else None
        return self._write(
            caller, op_id, "livechat.set_agent_display",
            {"room_id": room_id, "name": name, "avatar_url": avatar_url},
            lambda tx: rooms.set_agent_display(tx, room_id, app_user, name, avatar_url),
        )

    # -- messages -------------------------------------------------------------------------------

    def messages_send(
        self, caller: Principal, room_id: str, text: str, *, op_id: str | None = None,
        alias: str | None = None, avatar_url: str | None = None, served_by: str | None = None,
        message_id: str | None = None,
    ) -> Message:
        """Send as the caller's user (an app's app user), through the pre-send hook. `alias` /
        `avatar_url`: Rocket.Chat's `message-impersonate` display, for a REST identity only (an
        app relays with `livechat_relay_message`, under its own rule). `served_by`: the user
        who must serve the room when the message is written (Forbidden otherwise), for a REST
        speaker allowed in only as the serving agent (`rest_routes.require_speaker`).
        `message_id`: the id the REST caller chose (Rocket.Chat's chat.sendMessage `_id`);
        InvalidArgument if a message holds it already."""
        room_id = limits.ident(room_id, "room_id")
        text = limits.message_text(text)
        display = None
        if alias is not None:
            if isinstance(caller, Caller):
                raise Forbidden("an app shows an external agent with livechat.relay_message")
            display = AgentDisplay(
                name=limits.name(alias, "alias"),
                avatar_url=None if avatar_url is None else limits.url(avatar_url, "avatar_url"))
        uid = user_of(caller)
        if uid is None:
            raise InvalidArgument(
                "the app has no app user to send as" if isinstance(caller, Caller)
                else "a message needs a sending user"
            )
        sender = messages.user_sender(self.db.conn(), uid)  # one statement: no BEGIN/COMMIT
        must = None if served_by is None else (served_by, "the agent who", "send messages")
        return self._send(caller, op_id, room_id, sender, text, display=display, must_serve=must,
                          message_id=message_id)

    def livechat_relay_message(
        self, caller: Principal, room_id: str, text: str, alias: str,
        avatar_url: str | None = None, *, op_id: str | None = None,
    ) -> Message:
        """Send as the caller's app user, shown to the visitor as an external agent. Only an
        app whose app user serves the room may (Forbidden otherwise): the same rule as
        livechat_set_agent_display, since the display speaks for that room and no other."""
        room_id = limits.ident(room_id, "room_id")
        text = limits.message_text(text)
        display = AgentDisplay(
            name=limits.name(alias, "alias"),
            avatar_url=None if avatar_url is None else limits.url(avatar_url, "avatar_url"),
        )
        app_user = caller.app_user_id if isinstance(caller, Caller) else None
        if app_user is None:
            raise Forbidden("only an app's own user may relay an external agent's messages")
        relay = (app_user, "the app whose user", "relay messages")
        with self.db.read() as c:
            sender = messages.user_sender(c, app_user)
            _require_served(rooms.get_open(c, room_id), *relay)
        # Checked again in the write (`must_serve`): a transfer may commit while the hook runs.
        return self._send(caller, op_id, room_id, sender, text, display=display,
                          must_serve=relay)

    def messages_send_as_user(
        self, caller: Principal, room_id: str, user_id: str, text: str, *,
        op_id: str | None = None,
    ) -> Message:
        """Send as a user the calling app created (its bot account); Forbidden for any other
        user, and for every non-app principal. The message records both: the user as sender,
        the app as `app_id`."""
        room_id = limits.ident(room_id, "room_id")
        user_id = limits.ident(user_id, "user_id")
        text = limits.message_text(text)
        if not isinstance(caller, Caller):
            raise Forbidden("only an app may send as a user it created")
        with self.db.read() as c:
            sender = messages.created_user_sender(c, caller.app_id, user_id)
        return self._send(caller, op_id, room_id, sender, text)

    def messages_list(
        self, caller: Principal, room_id: str, limit: int | None = None
    ) -> list[Message]:
        """The room's latest messages (default 50, at most 500), oldest first. NotFound."""
        n = limits.limit(limit, limits.DEFAULT_MESSAGES_LIMIT)
        with self.db.read() as c:
            rooms.get(c, room_id)
            return messages.list_messages(c, room_id, n)

    def messages_get(self, caller: Principal, message_id: str) -> Message:
        """One message by id, whatever its room (the REST route checks the room's access).
        NotFound."""
        with self.db.read() as c:
            return messages.get_message(c, limits.ident(message_id, "message_id"))

    def _send(
        self, p: Principal, op_id: str | None, room_id: str, sender: Sender, text: str,
        visitor_id: str | None = None, display: AgentDisplay | None = None,
        must_serve: tuple[str, str, str] | None = None, message_id: str | None = None,
    ) -> Message:
        """Send through the pre-send hook. `must_serve`: (user, who, what) when the sender
        may write only while that user serves the room; checked in the write transaction itself
        (a security boundary: the hook runs outside it, for up to its deadline, and a transfer
        may commit meanwhile; a check made before the hook alone would let the old speaker's
        words land in a room another agent now serves)."""
        action = "messages.send"
        args: dict[str, Any] = {
            "room_id": room_id, "text": text, "sender": [sender["type"], sender["id"]],
        }
        if display is not None:  # part of the digest: a retry with another display is not one
            args["display"] = display
        if op_id is not None:  # a retry answers from the ops table without re-running the hook
            limits.op_id(op_id)
            prior = ops.prior_result(self.db.conn(), op_id, action, ops.digest(action, args))
            if prior is not None:
                return prior[0]  # type: ignore[no-any-return]
        room = rooms.get_open(self.db.conn(), room_id)
        if visitor_id is not None and room["visitor_id"] != visitor_id:
            raise Forbidden(f"visitor {visitor_id!r} is not in room {room_id!r}")
        # The hook runs outside any transaction: it may take up to its deadline (the host's
        # business) and must not hold the write lock meanwhile.
        draft = messages.draft(room_id, sender, app_of(p), text, self.clock.now(), display)
        if message_id is not None:
            draft["id"] = limits.ident(message_id, "message_id")
        msg = self._run_pre_send(draft, room, p)

        def apply(tx: Tx) -> Message:
            current = rooms.get_open(tx.conn, room_id)  # it may have closed while the hook ran
            if message_id is not None and tx.conn.execute(
                    "SELECT 1 FROM messages WHERE id = ?", (msg["id"],)).fetchone():
                # A chosen id is the caller's claim on a name: one already used is refused,
                # never a second message under it, nor the first one replaced.
                raise InvalidArgument(f"a message with id {message_id!r} exists already")
            if must_serve is not None:
                _require_served(current, *must_serve)
            messages.insert(tx, msg)
            tx.emit(MESSAGE_SENT, {"message": msg, "room": current})
            return msg

        return self._write(p, op_id, action, args, apply)

    def _run_pre_send(self, msg: Message, room: Room, p: Principal) -> Message:
        hook = self._pre_send
        if hook is None:
            return msg
        # `origin` names the sending app's install so the host skips that app's own hook.
        origin = (
            {"app_id": p.app_id, "install_id": p.install_id} if isinstance(p, Caller) else None
        )
        try:
            out = hook({**msg, "room": room, "origin": origin})
        except ServerError:
            raise  # e.g. the host's own Prevented naming the app that refused
        except Exception:
            # A broken hook is the host's bug; not sending is the safe reading (fail closed).
            log.exception("pre-send hook failed; message %s not sent", msg["id"])
            raise Prevented("the pre-send hook failed; the message was not sent") from None
        if out is None:
            raise Prevented("the message was prevented by a pre-send hook")
        if out.get("prevented"):
            by = str(out.get("prevented_by") or "a pre-send hook")[:MAX_PREVENTED_BY]
            reason = str(out.get("reason") or "no reason given")[:MAX_PREVENT_REASON]
            raise Prevented(f"the message was prevented by {by}: {reason}", prevented_by=by)
        try:
            new_text = limits.message_text(out.get("text", msg["text"]))
        except InvalidArgument as e:
            raise InvalidArgument(f"the pre-send hook returned invalid text: {e.message}") from None
        # Only the text may change: sender, room and app are facts, not the hook's to rewrite.
        return Message(
            id=msg["id"], room_id=msg["room_id"], sender=msg["sender"], app_id=msg["app_id"],
            text=new_text, ts=msg["ts"], display=msg["display"],
        )

    # -- visitors and agents (non-app operations) -----------------------------------------------

    def save_visitor(
        self, token: str, name: str | None = None, email: str | None = None,
        custom_fields: Mapping[str, str] | None = None,
    ) -> Visitor:
        """Register or update the visitor with this widget token (guest_saved)."""
        if name is not None:
            name = limits.name(name)
        if email is not None:
            email = limits.email(email)
        fields = limits.string_fields(custom_fields)

        def apply(tx: Tx) -> Visitor:
            v = livechat.save_visitor(
                tx.conn, tx.now, token=token, name=name, email=email, custom_fields=fields
            )
            tx.emit(GUEST_SAVED, {"visitor": v})
            return v

        return self._write(SYSTEM, None, "livechat.save_visitor", {}, apply)

    def visitor_start_room(self, visitor_id: str, department: str | None = None) -> Room:
        """A visitor starts a conversation: a new room, routed."""
        return self.livechat_create_room(SYSTEM, visitor_id, department)

    def visitor_send_message(self, visitor_id: str, room_id: str, text: str) -> Message:
        """A visitor writes in its own room (through the pre-send hook)."""
        room_id = limits.ident(room_id, "room_id")
        text = limits.message_text(text)
        sender = messages.visitor_sender(self.db.conn(), limits.ident(visitor_id, "visitor_id"))
        return self._send(SYSTEM, None, room_id, sender, text, visitor_id=visitor_id)

    def visitor_close_room(self, visitor_id: str, room_id: str) -> Room:
        """A visitor closes its own room."""
        room_id = limits.ident(room_id, "room_id")
        closer = Closer(type="visitor", id=visitor_id, app_id=None)

        def apply(tx: Tx) -> Room:
            if rooms.get(tx.conn, room_id)["visitor_id"] != visitor_id:
                raise Forbidden(f"visitor {visitor_id!r} is not in room {room_id!r}")
            return rooms.close(tx, room_id, closer, None)

        return self._write(SYSTEM, None, "livechat.close_room", {}, apply)

    def agent_send_message(self, agent_user_id: str, room_id: str, text: str) -> Message:
        """A human agent (or any user) writes in a room."""
        return self.messages_send(Operator(agent_user_id), room_id, text)

    def agent_close_room(
        self, agent_user_id: str, room_id: str, comment: str | None = None
    ) -> Room:
        """A human agent closes a room."""
        return self.livechat_close_room(Operator(agent_user_id), room_id, comment)

