"""The demo scenario: what Stockade exists for, end to end, on the embedded server.

Acts: the operator's chat server; install the four example apps (each disclosure names every
permission and its risk; consent as an operator gives it); at enable, agents made by the host
(the proxy's app user, as its manifest declares) and by an app (the chatbot's own bot account,
put into a department found by name); visitors start conversations and the apps do their work
(agents found or created by custom field; the proxy relaying an external agent's replies under
that agent's name in the visitor's own view; the bot answering as its own account and handing
over; transcripts reaching the CRM); the refusals, each with its audited reason; an uninstall
that asks what happens to the app's agents; then `audit verify` and a summary.

Every act records checks; the demo exits 0 only when every check held.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.console import Console
from rich.text import Text

from host.apps.consent import ConsentError, guardrail_problems
from host.apps.disclosure import Disclosure, render_disclosure
from host.apps.installs import InstallRecord, InstallStore
from host.apps.operations import disclose, install_package
from host.apps.packages import Package, package_folder, package_from_files
from host.apps.publisher import TrustStore, check_signature, public_key_line, sign_package
from host.clock import SystemClock
from host.demo.crm import CrmEndpoint, DemoCrm
from host.demo.narrate import DemoResult, short
from host.demo.remote import RemoteRig, RemoteWorld
from host.demo.story import StoryActs
from host.home import Home, ensure_policies
from host.inert import host, wrapping_table
from host.ledger.audit import open_readonly
from host.runtime import Host, HostConfig
from host.server.principals import SYSTEM
from host.server.remote.server import RemoteServer
from host.supervise.sandbox_exec import run_snippet

APPS = ("agent-sync", "proxy-agent", "chatbot-handover", "crm-sync")
CRM_API_KEY = "demo-crm-key-not-a-real-secret"  # a demo value; the CRM is a local stand-in
CRM_HOST = "crm.localtest"
LIVE_AGENT_HOST = "liveagent.localtest"  # the external agent system (the same local stand-in)
EXFIL_URL = "http://exfil.example.net/collect"  # a domain the policy never lists

# Sandbox attempts the demo shows refused (each prints ESCAPED only if it got through).
ESCAPES = {
    "import os": "import os\nprint('ESCAPED')\n",
    "open a file": "x = open('/etc/passwd').read()\nprint('ESCAPED')\n",
    "walk the type hierarchy": "print(().__class__.__bases__[0].__subclasses__())\n",
    "format-string lookup": "print('{0.__class__}'.format(1))\nprint('ESCAPED')\n",
    "burn CPU forever": "while True:\n    pass\n",
}


def examples_dir() -> Path:
    """examples/ of this checkout (the demo runs from a source install)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "examples" / "apps" / "agent-sync" / "app.toml").exists():
            return parent / "examples"
    raise FileNotFoundError("examples/apps not found: run the demo from a source checkout "
                            "(pip install -e .)")


class Demo(StoryActs):
    def __init__(self, console: Console, *, keep: bool = False,
                 degraded: bool = False, server: str = "embedded",
                 crm: CrmEndpoint | None = None) -> None:
        """`crm`: where the apps' settings point for the CRM and live-agent API, when not the
        demo's own in-process `DemoCrm` (the benches run a counting one in its own process)."""
        self.out = console
        self.keep = keep
        self.degraded = degraded
        self.result = DemoResult()
        self.examples = examples_dir()  # before anything is made: a missing one leaves nothing
        self.installs: dict[str, InstallRecord] = {}
        self.disclosures: dict[str, Disclosure] = {}
        self.crm = DemoCrm(CRM_API_KEY)  # the story's, started by `run`
        # Each server event told as it happens (the story); the benches turn it off: rendering
        # a line per event would be measured as the host's own work.
        self.narrate_events = True
        self.pin_apps = False  # HostConfig.pin_apps (the load bench measures both)
        self.pin_bursts = True  # HostConfig.pin_bursts (likewise)
        self.host_core = True  # HostConfig.host_core (likewise)
        self.endpoint: CrmEndpoint = crm if crm is not None else self.crm
        self.host: Host | None = None
        self.humans: dict[str, str] = {}
        self.uninstalled: dict[str, dict[str, Any]] = {}
        # The counts of runners the host replaced (a changed setting restarts an app with a new
        # runner, counting from zero): added to their successors' in the summary.
        self.replaced: dict[str, dict[str, int]] = {}
        self.remote: RemoteServer | None = None
        self.world: Any = None
        self.root = Path(tempfile.mkdtemp(prefix="stockade-demo-"))
        try:
            self.home = Home(self.root / "home").ensure()
            # What the narrator acts on: the embedded server, or a stand-in Rocket.Chat
            # workspace in its own process, over REST and webhooks only (`host/demo/remote.py`).
            self.rig: RemoteRig | None = RemoteRig(self.root, self.home) \
                if server == "rocketchat" else None
        except BaseException:
            # No caller holds a Demo whose construction failed: none could remove its folder.
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    # ---- the run ------------------------------------------------------------------------------

    def run(self) -> DemoResult:
        t0 = time.monotonic()
        try:
            self.crm.start()
            self.setup_home()
            if self.rig is not None:
                self.remote = self.rig.start()
                self.world = RemoteWorld(self.remote)
                self.say(f"stand-in Rocket.Chat workspace in its own process: {self.rig.url} "
                         "(reached over its REST API and omnichannel webhooks only)")
            self.operator_setup()
            self.install_apps()
            self.start_host()
            self.agents_at_enable()
            self.conversations()
            self.refusals()
            self.uninstall_story()
            self.finish(time.monotonic() - t0)
        finally:
            if self.host is not None:
                self.host.stop()
            if self.rig is not None:
                self.rig.stop()
            self.crm.stop()
            if not self.keep:
                shutil.rmtree(self.root, ignore_errors=True)
            else:  # the operator asked for it to look at: say where it is, at the end
                # (and in `--json`'s summary: a script reads stdout, not the narration)
                self.result.summary["kept_home"] = str(self.home.root)
                self.say(f"kept the demo's home: {self.home.root} (`stockade --home "
                         f"{self.home.root} ...` reads it; `rm -r {self.root}` removes it)")
        return self.result

    def setup_home(self) -> None:
        self.act("A fresh host")
        ensure_policies(self.home)
        shutil.copy(self.examples / "policies" / "demo.toml", self.home.policies_dir)
        self.say(f"home: {self.home.root} ("
                 + ("temporary, kept afterwards: --keep" if self.keep else "temporary")
                 + "); policies: shipped default + demo.toml")
        self.say(f"demo CRM and live-agent API listening on 127.0.0.1:{self.endpoint.port} "
                 f"(apps reach them as http://{CRM_HOST}:{self.endpoint.port} and "
                 f"http://{LIVE_AGENT_HOST}:{self.endpoint.port})")
        key = Ed25519PrivateKey.generate()
        raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
        TrustStore(self.home.trust_dir).add("demo-publisher", public_key_line(raw))
        self.publisher_key = key
        self.say("the operator trusts one publisher key: demo-publisher")

    def _signed(self, folder: Path) -> Package:
        pkg, _zip = package_folder(folder)
        return package_from_files(dict(pkg.files), sign_package(pkg, self.publisher_key))

    def install_apps(self) -> None:
        self.act("Installing four apps: disclosure, then consent")
        settings: dict[str, dict[str, Any]] = {
            "agent-sync": {"default_agent_username": "alice"},
            "proxy-agent": {
                "live_agent_url": f"http://{LIVE_AGENT_HOST}:{self.endpoint.port}/chat"},
            "crm-sync": {"crm_url": f"http://{CRM_HOST}:{self.endpoint.port}/transcripts",
                         "api_key": CRM_API_KEY},
        }
        for app_id in APPS:
            pkg = self._signed(self.examples / "apps" / app_id)
            sig = check_signature(pkg, TrustStore(self.home.trust_dir))
            disclosure, _why = disclose(self.home, pkg, sig)
            self.disclosures[app_id] = disclosure
            # Each disclosure names every permission and its risk: the operator decides on
            # it (the proxy's app-user agent and the bot's send-as-own-users among them).
            render_disclosure(disclosure, self.out, title="Install")
            grants = pkg.manifest.asked  # the operator consents to everything asked, by name
            rec = install_package(self.home, pkg, sig, grants,
                                  policy_revision=disclosure.policy_revision,
                                  settings=settings.get(app_id))
            self.installs[app_id] = rec
            self.say(f"installed {app_id} {rec.version}: granted "
                     f"{', '.join(sorted(grants))}")
        self.compare_disclosures("agent-sync", "proxy-agent")
        self.check("four apps installed with signed consent records",
                   len(self.installs) == 4 and all(
                       d.signature.status == "trusted" for d in self.disclosures.values()))

    def compare_disclosures(self, a: str, b: str) -> None:
        da, db = self.disclosures[a], self.disclosures[b]
        names = sorted({p.name for p in da.permissions} | {p.name for p in db.permissions})
        risk_a = {p.name: p.risk for p in da.permissions}
        risk_b = {p.name: p.risk for p in db.permissions}
        rows: list[tuple[str | Text, ...]] = [(n, risk_a.get(n, "—"), risk_b.get(n, "—"))
                                              for n in names]
        rows.append((host("dangerous combinations", "bold"), str(len(da.dangers)),
                     str(len(db.dangers))))
        self.out.print(wrapping_table(f"The same integration, two ways: {a} vs {b}",
                                      ("permission", a, b), rows, self.out.width))
        self.check(f"{b} needs no user creation and no roles",
                   not {"users.create", "roles.assign"} & set(risk_b),
                   f"{len(risk_b)} permissions vs {len(risk_a)}")

    def start_host(self) -> None:
        self.act("Starting the host: each app in its own confined child")
        config = HostConfig(degraded=self.degraded, pin_apps=self.pin_apps,
                            pin_bursts=self.pin_bursts, host_core=self.host_core,
                            resolver_overrides={CRM_HOST: "127.0.0.1",
                                                LIVE_AGENT_HOST: "127.0.0.1"})
        self.host = Host(self.home, config=config, server=self.remote).start()
        if self.narrate_events:
            self.host.server.subscribe(self._on_event)
        if self.rig is not None:
            self.rig.start_receiver()
        else:
            self.world = self.host.server
        layers = next(iter(self.host.runners.values()))
        for runner in self.host.runners.values():
            runner.ensure_started()
        child = layers.child
        applied = [k for k, v in (child.layers.model_dump().items() if child and child.layers
                                  else []) if v is True]
        self.say(f"children started; confinement layers applied: {', '.join(applied)}")
        self.check("every app child confined before its code was compiled",
                   all(r.child is not None and r.child.layers is not None
                       and r.child.layers.seccomp and r.child.layers.landlock
                       for r in self.host.runners.values()))

    def conversations(self) -> None:
        assert self.host is not None
        server = self.world
        self.act("Visitors start conversations")
        self.say("agent-sync: an external router picked the agent (custom field externalAgentId)")
        rooms: dict[str, str] = {}
        for i, ext in enumerate(("100", "101", "100", "102", "103")):
            v = self._visitor(f"ext-{i}", f"Visitor {i + 1}", {"externalAgentId": f"ext{ext}"})
            room = server.visitor_start_room(v["id"], "External")
            rooms[f"ext{i}"] = room["id"]
            self.say(f"  visitor {v['name']} starts a conversation for external agent ext{ext}")
            self._settle()
        created = [u for u in (self._user(f"ext-ext{n}") for n in ("100", "101", "102", "103"))
                   if u is not None]
        self.check("agents found or created by custom field externalId (3 created, 1 reused)",
                   len(created) == 3 and all(u["created_by_app"] == "agent-sync" for u in created),
                   ", ".join(u["username"] for u in created))
        self.check("created agents are livechat agents with the bot role",
                   all({"bot", "livechat-agent"} <= set(u["roles"]) for u in created))
        served = server.livechat_get_room(SYSTEM, rooms["ext0"])["served_by"]
        self.check("the room went to the agent the external router chose",
                   served is not None and served == (created[0]["id"] if created else None))
        fallback = server.livechat_get_room(SYSTEM, rooms["ext4"])["served_by"]
        self.check("4th new agent inside the window: QuotaExceeded, room handed to the fallback",
                   fallback == self.humans["alice"], "agent-sync quota: 3 per 10 min")
        self.show_audit("quota_exceeded")

        self.proxy_story()
        bot_room = self.chatbot_story()

        self.say("crm-sync: closed conversations go to the CRM")
        server.agent_close_room(self.humans["alice"], bot_room, "resolved")
        server.agent_close_room(self.humans["alice"], rooms["ext4"], "resolved")
        self._settle()
        self.check("transcripts arrived at the CRM endpoint (over the http permission)",
                   len(self.crm.received) == 2, f"{len(self.crm.received)} received")

    def show_audit(self, code: str) -> None:
        log = open_readonly(self.home.host_store, SystemClock())
        conn = log.store.conn()
        for (body,) in conn.execute("SELECT body FROM audit ORDER BY seq DESC LIMIT 200"):
            rec = json.loads(body)
            if rec.get("code") == code:
                self.say(f"    audited: {rec.get('app_id')} {rec.get('action')} → {code}: "
                         f"{short(str(rec.get('message')), 160)}", "yellow")
                return

    def refusals(self) -> None:
        assert self.host is not None
        self.act("Refusals: what the gate and consent exist for")
        # 1. an update of agent-sync asking to assign admin, refused at consent
        update_dir = self.root / "agent-sync-1.1.0"
        shutil.copytree(self.examples / "apps" / "agent-sync", update_dir,
                        ignore=shutil.ignore_patterns("tests", "__pycache__"))
        manifest = (update_dir / "app.toml").read_text().replace(
            'version = "1.0.0"', 'version = "1.1.0"').replace(
            'name = "roles.assign"', 'name = "roles.assign"\nroles = ["bot", "admin"]')
        (update_dir / "app.toml").write_text(manifest)
        pkg = self._signed(update_dir)
        problems = guardrail_problems(pkg.manifest)
        for p in problems:
            self.say(f"  refused at consent: {p}", "bold red")
        self.host.ledger.append(_consent_refusal(pkg, problems))
        try:
            install_package(self.home, pkg, check_signature(pkg, TrustStore(
                self.home.trust_dir)), pkg.manifest.asked, policy_revision=None)
            refused = False
        except ConsentError:
            refused = True
        rec = InstallStore(self.home.host_store).by_app("agent-sync")
        self.check("agent-sync 1.1.0 asking to assign 'admin' refused at consent; 1.0.0 runs on",
                   refused and bool(problems) and rec is not None and rec.version == "1.0.0")

        # 2. crm-sync pointed at a domain it was not granted
        store = InstallStore(self.home.host_store)
        crm = store.by_app("crm-sync")
        assert crm is not None
        store.set_settings(crm.install_id, {**dict(crm.settings), "crm_url": EXFIL_URL},
                           ["crm_url"])
        self.say(f"  crm-sync's crm_url is changed to {EXFIL_URL} (a compromised setting)")
        before = self.host.runners.get(crm.install_id)
        self.host.sync_installs()  # what the host's watcher does when the store changes
        if before is not None and self.host.runners.get(crm.install_id) is not before:
            self.replaced["crm-sync"] = carried_counts(before, self.replaced.get("crm-sync"))
        server = self.world
        v = self._visitor("late", "Visitor L")
        room = server.visitor_start_room(v["id"], "Support")
        server.agent_close_room(room["served_by"] or self.humans["bob"], room["id"], "done")
        self._settle()
        denied = self._audited("crm-sync", "http.request", "policy_denied")
        self.show_audit("policy_denied")
        self.check("crm-sync refused a domain the policy does not list (audited)",
                   denied and len(self.crm.received) == 2)

        # 3. an app attempting what its sandbox forbids
        outcomes = []
        for label, src in ESCAPES.items():
            captured: list[str] = []
            res = run_snippet(src, timeout=1.0, write=captured.append, degraded=self.degraded)
            escaped = "ESCAPED" in "".join(captured)
            outcomes.append(not escaped and res.exit_code in (1, 3))
            self.say(f"  sandbox: {label} → exit {res.exit_code}: "
                     f"{short(res.message, 160)}", "yellow")
        self.check("sandbox refused every escape attempt", all(outcomes),
                   f"{sum(outcomes)}/{len(outcomes)}")

    def _audited(self, app_id: str, action: str, code: str) -> bool:
        log = open_readonly(self.home.host_store, SystemClock())
        for (body,) in log.store.conn().execute("SELECT body FROM audit"):
            rec = json.loads(body)
            if (rec.get("app_id"), rec.get("action"), rec.get("code")) == (app_id, action, code):
                return True
        return False

    def finish(self, elapsed: float) -> None:
        assert self.host is not None
        self.act("Audit and summary")
        self.host.ledger.checkpoint()
        verdict = open_readonly(self.home.host_store, SystemClock()).verify()
        self.check("stockade audit verify: the hash chain is intact", verdict.ok,
                   f"{verdict.records} records")
        rec = InstallStore(self.home.host_store).by_app("agent-sync")
        assert rec is not None
        quota = self.host.ledger.quota_state(
            f"install:{rec.install_id}:users.create#agent-sync-user-creation", 3, 600)
        apps: dict[str, dict[str, Any]] = {}
        rows: list[tuple[str | Text, ...]] = []
        for r in self.host.runners.values():
            earlier = self.replaced.get(r.app_id, {})
            apps[r.app_id] = {"state": r.state,
                              **{k: n + earlier.get(k, 0) for k, n in runner_counts(r).items()}}
        apps.update(self.uninstalled)  # their runners are gone; the numbers were kept
        for app_id, a in sorted(apps.items()):
            rows.append((app_id, str(a["state"]), str(a["events"]), str(a["errors"]),
                         str(a["restarts"])))
        self.out.print(wrapping_table("Summary", ("app", "state", "events handled",
                                                  "handler errors", "restarts"), rows,
                                      self.out.width))
        stats = dict(self.host.gate.stats)
        users = self.host.server.users_count_active_app_created()
        self.say(f"bridge calls allowed {stats['allowed']}, denied {stats['denied']}; "
                 f"users created by apps {users}; agent-sync creation quota "
                 f"{quota.used}/{quota.limit} per {quota.window_s:.0f}s; "
                 f"events {sum(self.host.event_counts.values())}; {elapsed:.1f}s")
        self.result.summary = {
            "apps": apps, "events": dict(self.host.event_counts),
            "bridge_calls": stats, "users_created": users,
            "quota": {"key": "agent-sync users.create", "used": quota.used,
                      "limit": quota.limit, "window_s": quota.window_s},
            "crm_transcripts": len(self.crm.received), "live_agent_requests": len(self.crm.chats),
            "audit_records": verdict.records,
            "seconds": round(elapsed, 2),
        }
        ok = self.result.ok
        self.out.rule(host("everything behaved", "bold green") if ok
                      else host("something did not", "bold red"))


def runner_counts(runner: Any) -> dict[str, int]:
    """What the summary shows of a runner: events handled, handler errors, restarts."""
    return {"events": runner.events_done, "errors": runner.events_failed,
            "restarts": runner.restarts}


def carried_counts(replaced: Any, earlier: dict[str, int] | None) -> dict[str, int]:
    """A replaced runner's counts (with those it carried itself), its replacement counted as a
    restart: the app was stopped and started again."""
    counts = runner_counts(replaced)
    counts["restarts"] += 1
    return {k: n + (earlier or {}).get(k, 0) for k, n in counts.items()}


def _consent_refusal(pkg: Package, problems: list[str]) -> Any:
    from host.ledger.audit import AuditRecord

    return AuditRecord(kind="consent", app_id=pkg.app_id, version=pkg.manifest.version,
                       allowed=False, code="guardrail", actor="operator",
                       detail="; ".join(problems)[:500])


def run_demo(console: Console, *, keep: bool = False, degraded: bool = False,
             server: str = "embedded") -> DemoResult:
    return Demo(console, keep=keep, degraded=degraded, server=server).run()

