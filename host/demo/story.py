"""The demo's acts for issue 24's story: agents the host and the apps set up at enable, the proxy
agent whose name the visitor sees on every relayed message, the bot that speaks as its own
account, and an uninstall that leaves no routable agent behind unless the operator says so.

`StoryActs` is a base of `host.demo.scenario.Demo`: the acts use its narration and its host.
"""
from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from typing import Any

import httpx
from rich.console import Console

from host.apps.installs import InstallStore
from host.clock import SystemClock
from host.demo.crm import DemoCrm
from host.demo.narrate import Narrator
from host.demo.remote import RemoteRig
from host.home import Home
from host.ledger.audit import open_readonly
from host.runtime import Host
from host.server.embedded import EmbeddedServer
from host.server.listen import serving
from host.server.principals import SYSTEM

PROXY_AGENT = "Dana (Acme Support)"
BOT_USERNAME = "chatbot-assistant"
# The CLI the operator runs, in this Python (a fresh checkout may have no `stockade` on PATH).
CLI = [sys.executable, "-c", "from host.cli.entry import main; main()"]


class StoryActs(Narrator):
    out: Console
    home: Home
    host: Host | None
    crm: DemoCrm
    humans: dict[str, str]
    uninstalled: dict[str, dict[str, Any]]
    rig: RemoteRig | None  # a stand-in Rocket.Chat workspace (demo --server rocketchat)
    world: Any  # what the narrator acts on: the embedded server, or the workspace over REST

    def _settle(self) -> None:
        assert self.host is not None
        if self.rig is not None:
            self.rig.settle(self.host.wait_idle)
        else:
            self.host.wait_idle(15)

    def _visitor(self, label: str, name: str,
                 fields: dict[str, str] | None = None) -> dict[str, Any]:
        """A website visitor registering (the widget token is per visitor, not a secret)."""
        assert self.host is not None
        return dict(self.world.save_visitor(f"visitor-{label}-widget", name,
                                            custom_fields=fields))

    # ---- before the host starts -----------------------------------------------------------

    def operator_setup(self) -> None:
        """What the operator does on the chat server before the apps start: two human agents in
        Support, and empty departments the apps are told about by name (never by id)."""
        server = self.world if self.rig is not None else \
            EmbeddedServer(self.home.server_store, SystemClock())
        try:
            for name in ("alice", "bob"):
                user = server.users_create(SYSTEM, name, name.title(), "user")
                server.livechat_add_agent(SYSTEM, user["id"])
                server.set_agent_status(user["id"], "available")
                self.humans[name] = user["id"]
            server.add_department("Support", list(self.humans.values()))
            for dep in ("External", "Salesforce", "Bot"):
                server.add_department(dep)
        finally:
            if isinstance(server, EmbeddedServer):
                server.close()
        self.say("the operator's chat server: human agents alice and bob in Support; empty "
                 "departments External, Salesforce and Bot")

    # ---- at enable --------------------------------------------------------------------------

    def agents_at_enable(self) -> None:
        """The proxy's app user made an agent by the host (its manifest said so, the operator
        consented); the chatbot's own bot account created and placed by the app itself."""
        assert self.host is not None
        server = self.world
        self.act("At enable: agents made by the host and by the apps")
        proxy = self._install_user("proxy-agent")
        salesforce = server.livechat_get_department(SYSTEM, "Salesforce")
        self.say("proxy-agent's manifest: \"my app user is a livechat agent in Salesforce\" "
                 "(shown at install on livechat.agents); the host did it at enable")
        self.check("proxy-agent's app user is an available agent in Salesforce, done by the "
                   "host (audited as app_user_agent)",
                   salesforce["agents"] == [proxy] and self._lifecycle("proxy-agent",
                                                                       "app_user_agent"))
        bot = self._user(BOT_USERNAME)
        bot_dep = server.livechat_get_department(SYSTEM, "Bot")
        self.say("chatbot-handover at install: created its bot account, made it an available "
                 "agent, found the department named Bot and put the bot into it")
        self.check("chatbot-handover put the bot account it created into Bot (found by name)",
                   bot is not None and bot["created_by_app"] == "chatbot-handover"
                   and bot_dep["agents"] == [bot["id"]],
                   f"department {bot_dep['id'][:8]}… by name, no id pasted")

    def _install_user(self, app_id: str) -> str:
        rec = InstallStore(self.home.host_store).by_app(app_id)
        assert rec is not None and rec.app_user_id is not None
        return rec.app_user_id

    def _user(self, username: str) -> dict[str, Any] | None:
        assert self.host is not None
        try:
            return dict(self.world.users_get_by_username(SYSTEM, username))
        except Exception:  # noqa: BLE001 - NotFound: not created
            return None

    def _audit(self) -> list[dict[str, Any]]:
        conn = open_readonly(self.home.host_store, SystemClock()).store.conn()
        return [json.loads(b) for (b,) in conn.execute("SELECT body FROM audit ORDER BY seq")]

    def _lifecycle(self, app_id: str, event: str) -> bool:
        return any(r.get("kind") == "lifecycle" and r.get("app_id") == app_id
                   and r.get("event") == event for r in self._audit())

    # ---- the proxy agent, in the visitor's own view -------------------------------------------

    def proxy_story(self) -> None:
        assert self.host is not None
        server = self.world
        self.say("proxy-agent: a Salesforce-style live-agent bridge; routing gives the app "
                 "user the room, the external agent answers over HTTP")
        v = self._visitor("proxy", "Visitor P", {"externalAgentName": PROXY_AGENT})
        token = str(v["token"])  # the widget's per-visitor token (not a secret)
        with contextlib.ExitStack() as stack:
            # the widget's REST endpoints over real HTTP on loopback: the embedded server's,
            # served from a thread for this step, or the stand-in workspace's own
            base = self.rig.url if self.rig is not None else \
                stack.enter_context(serving(server))[0]
            web = stack.enter_context(httpx.Client(base_url=base, timeout=10, trust_env=False))
            rid = web.get("/api/v1/livechat/room", params={
                "token": token, "department": "Salesforce"}).json()["room"]["_id"]
            self._settle()
            for text in ("Where is my order #1234?", "Thanks!"):
                web.post("/api/v1/livechat/message", json={"token": token, "rid": rid,
                                                           "msg": text})
                self._settle()
            history = web.get(f"/api/v1/livechat/messages.history/{rid}",
                              params={"token": token}).json()["messages"]
        proxy = self._install_user("proxy-agent")
        relayed = [m for m in history if m["u"]["_id"] == proxy]
        room = server.livechat_get_room(SYSTEM, rid)
        shown: dict[str, Any] = dict(room.get("agent_display") or {})
        self.check("routing gave the Salesforce room to proxy-agent's app user; the room shows "
                   "the external agent, no user created",
                   room["served_by"] == proxy and shown.get("name") == PROXY_AGENT,
                   str(shown.get("name")))
        self.check("the visitor's view (widget REST): EVERY relayed message shows the external "
                   "agent's name",
                   len(relayed) >= 5 and all(m.get("alias") == PROXY_AGENT for m in relayed),
                   f"{len(relayed)} relayed, {len(self.crm.chats)} forwarded to the live-agent "
                   "API")
        staff = [m for m in server.messages_list(SYSTEM, rid) if m["display"] is not None]
        self.check("staff and the audit still see the real sender (the app user)",
                   bool(staff) and all(m["sender"]["id"] == proxy
                                       and m["app_id"] == "proxy-agent" for m in staff))

    # ---- the bot that speaks for itself ------------------------------------------------------

    def chatbot_story(self) -> str:
        """The bot answers as its own account, then hands over; returns the room id."""
        assert self.host is not None
        server = self.world
        self.say("chatbot-handover: its bot account answers, then hands over to a human")
        v = self._visitor("bot", "Visitor B")
        bot_room = server.visitor_start_room(v["id"], "Bot")
        self._settle()
        server.visitor_send_message(v["id"], bot_room["id"], "What are your opening hours?")
        self._settle()
        server.visitor_send_message(v["id"], bot_room["id"], "Can I talk to a human please?")
        self._settle()
        bot = self._user(BOT_USERNAME)
        bot_id = bot["id"] if bot else None
        served = server.livechat_get_room(SYSTEM, bot_room["id"])["served_by"]
        msgs = server.messages_list(SYSTEM, bot_room["id"])
        said = [m for m in msgs if m["sender"]["type"] != "visitor"]
        self.check("the bot answered and handed the visitor to a human in Support",
                   served in self.humans.values() and len(said) >= 3,
                   f"{len(msgs)} messages")
        self.check("the bot answered as its own bot account, not as the app user",
                   bool(said) and all(m["sender"]["id"] == bot_id
                                      and m["app_id"] == "chatbot-handover" for m in said),
                   f"sender {BOT_USERNAME}")
        both = [r for r in self._audit() if r.get("action") == "messages.send_as_user"
                and r.get("kind") == "decision"]
        self.check("audited with both identities: the app and the user it spoke as",
                   bool(both) and all(r.get("app_id") == "chatbot-handover"
                                      and r.get("actor") == f"user {bot_id}" for r in both),
                   f"{len(both)} records")
        return str(bot_room["id"])

    # ---- uninstall ----------------------------------------------------------------------------

    def uninstall_story(self) -> None:
        """The operator removes the chatbot but keeps its bot account (for the history): the
        CLI will not leave it routable without an answer."""
        assert self.host is not None
        self.act("Uninstall: no routable agent left behind unless the operator says so")
        runner = next(r for r in self.host.runners.values() if r.app_id == "chatbot-handover")
        stats = {"state": "uninstalled", "events": runner.events_done,
                 "errors": runner.events_failed, "restarts": runner.restarts}
        base = [*CLI, "--home", str(self.home.root), "app", "uninstall", "chatbot-handover",
                "--users", "keep", "--yes"]
        self.say("$ stockade app uninstall chatbot-handover --users keep --yes")
        asked = subprocess.run(base, capture_output=True, text=True, timeout=60,
                               stdin=subprocess.DEVNULL)
        for text in _last_lines(asked.stderr, 2):
            self.say(f"  {text}", "yellow")
        kept = InstallStore(self.home.host_store).by_app("chatbot-handover") is not None
        self.check("with --users keep the CLI asks what happens to the bot's agent "
                   "(--agents remove|keep); nothing changed until answered",
                   asked.returncode == 3 and "--agents" in asked.stderr and kept)
        self.say("  (--agents keep would warn: rooms will still be routed to them)", "dim")
        self.say("$ stockade app uninstall chatbot-handover --users keep --agents remove --yes")
        done = subprocess.run([*base, "--agents", "remove"], capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)
        for text in _last_lines(done.stderr, 1):
            self.say(f"  {text}")
        self.host.sync_installs()  # what the host's watcher does when the store changes
        self.uninstalled["chatbot-handover"] = stats
        server = self.world
        v = self._visitor("after", "Visitor A")
        room = server.visitor_start_room(v["id"], "Bot")
        # Its events told here, before the summary (from a workspace, its webhook comes later:
        # its line came after "everything behaved", and the summary's count raced it).
        self._settle()
        bot = self._user(BOT_USERNAME)
        self.check("the kept bot account is no agent: a new Bot conversation waits in the "
                   "queue, not routed to a bot nobody answers",
                   done.returncode == 0 and bot is not None and bot["active"]
                   and room["served_by"] is None
                   and server.livechat_get_department(SYSTEM, "Bot")["agents"] == [],
                   "bot account kept, active, not routed")


def _last_lines(text: str, n: int) -> list[str]:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-n:]
