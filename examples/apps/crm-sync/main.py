"""CRM Sync: post each closed conversation's transcript to a CRM over HTTP.

On livechat.room_closed: read the visitor and the room's messages, build a JSON transcript
and POST it to the `crm_url` setting with the `api_key` setting in the X-Api-Key header
(the host makes the request; the policy limits which domain it may reach).
A delivery that fails (a non-2xx answer, a timeout, the HTTP quota) is stored as
`retry:<room id>` and its room id queued; after the next successful delivery, up to
RETRY_BATCH queued transcripts are sent again, each at most MAX_ATTEMPTS times in all.
A PermissionDenied (domain not granted) is recorded, then raised: retrying cannot fix it,
the operator must, and the host logs the handler's failure.
"""
import json

from stockade import App, NotFound, PermissionDenied, QuotaExceeded, Timeout

QUEUE = "retry-queue"
RETRY_BATCH = 5
MAX_ATTEMPTS = 5
MAX_MESSAGES = 500


def stored(ctx, key, default):
    """The value stored under `key`, or `default` when there is none.

    The host raises NotFound for a missing key (a stored None reads as missing); a None
    answer is treated the same, so the app also runs under hosts that return None.
    """
    try:
        value = ctx.store.get(key)
    except NotFound:
        return default
    return default if value is None else value


def transcript(room, visitor, messages):
    """The JSON document the CRM receives."""
    return {
        "room_id": room["id"],
        "visitor": {
            "id": visitor["id"],
            "name": visitor.get("name"),
            "email": visitor.get("email"),
            "custom_fields": visitor.get("custom_fields") or {},
        },
        "department_id": room.get("department_id"),
        "agent_id": room.get("served_by"),
        "started_at": room.get("created_at"),
        "closed_at": room.get("closed_at"),
        "closed_by": room.get("closed_by"),
        "close_comment": room.get("close_comment"),
        "messages": [
            {
                "from": m["sender"]["type"],
                "name": m["sender"].get("name") or m["sender"].get("username"),
                "text": m["text"],
                "ts": m["ts"],
            }
            for m in messages
        ],
    }


class CrmSync(App):
    def on_livechat_room_closed(self, ctx, event):
        delivered = self.deliver(ctx, event["room"])
        if delivered:
            self.retry_queued(ctx)
        return {"room": event["room"]["id"], "delivered": delivered}

    def deliver(self, ctx, room):
        """POST one room's transcript; True when the CRM accepted it."""
        room_id = room["id"]
        visitor = ctx.livechat.get_visitor(room["visitor_id"])
        messages = ctx.messages.list(room_id, limit=MAX_MESSAGES)
        body = json.dumps(transcript(room, visitor, messages), sort_keys=True)
        headers = {"Content-Type": "application/json", "X-Api-Key": ctx.settings["api_key"]}
        try:
            response = ctx.http.post(ctx.settings["crm_url"], body, headers=headers)
        except PermissionDenied as exc:
            self.failed(ctx, room_id, "permission_denied: " + exc.message, queue=False)
            raise
        except (Timeout, QuotaExceeded) as exc:
            self.failed(ctx, room_id, exc.code + ": " + exc.message)
            return False
        if 200 <= response["status"] < 300:
            ctx.store.delete("retry:" + room_id)
            return True
        self.failed(ctx, room_id, "HTTP " + str(response["status"]))
        return False

    def failed(self, ctx, room_id, error, queue=True):
        """Keep a retry record for the room (attempts counted) and queue it."""
        key = "retry:" + room_id
        record = stored(ctx, key, {"room_id": room_id, "attempts": 0})
        record["attempts"] = record["attempts"] + 1
        record["last_error"] = error
        record["gave_up"] = record["attempts"] >= MAX_ATTEMPTS or not queue
        ctx.store.put(key, record, {"kind": "room", "id": room_id})
        pending = self.queued(ctx)
        if not record["gave_up"] and room_id not in pending:
            ctx.store.put(QUEUE, [*pending, room_id])

    def queued(self, ctx):
        return stored(ctx, QUEUE, [])

    def retry_queued(self, ctx):
        """The CRM answers again: send a few queued transcripts."""
        pending = self.queued(ctx)
        if not pending:
            return
        batch, rest = pending[:RETRY_BATCH], pending[RETRY_BATCH:]
        ctx.store.put(QUEUE, rest)  # a retry that fails again re-queues itself
        for room_id in batch:
            self.deliver(ctx, ctx.livechat.get_room(room_id))
