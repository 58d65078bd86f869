"""The console's routes (see the package docstring for what it is and what it may import)."""
from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio.to_thread
from jinja2 import Environment, FileSystemLoader
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Receive, Scope, Send

from host.apps import lifecycle_seams, switches
from host.apps.consent import verify_install
from host.apps.installs import InstallChanged, InstallGone, InstallRecord, InstallStore
from host.apps.operations import uninstall_app
from host.apps.package_rules import MAX_ARCHIVE_BYTES
from host.clock import SystemClock
from host.console import approws, auditview, faults, pages, updates
from host.console import install as install_flow
from host.console import settings as app_settings
from host.console.approws import app_row as _app_row  # (tests/security reads it here)
from host.console.install import Uploads
from host.console.operators import Operators, ServerOperators
from host.console.origins import host_names, same_origin
from host.console.sessions import Session, Sessions
from host.console.signin import MAX_FORM_BYTES, SignIn, csrf_ok, declared_length, refused
from host.home import Home
from host.inert import MAX_ONE_LINE, visible
from host.ledger.audit import AuditLog
from host.ledger.operator import audited, open_keyring, operator_actor
from host.server.embedded import EmbeddedServer
from host.server.gone import client_gone
from host.server.resthosts import HostAllowlist
from host.supervise.status import is_fresh, read_status

HERE = Path(__file__).parent
# Every page: no script at all, styles and images from this origin only, no framing, forms post
# only here. Guards: injected markup doing anything, clickjacking, a form posting elsewhere.
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
# An upload's whole body: the package cap and room for the form's few small fields and its
# multipart framing. Guards: the host's disk, since the form parser spools a file part to a
# temporary file with no cap of its own; a body declared longer is refused before it is read.
MAX_UPLOAD_BYTES = MAX_ARCHIVE_BYTES + 64 * 1024


def _security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


class _HostCheck:
    """Answers only the Host names the console is served as. Guards: DNS rebinding, where a page
    of another site, its name re-pointed at 127.0.0.1, would otherwise be "same-origin" with it.
    The REST API's rules (`host.server.resthosts`): `localhost`, any IP address (a page can
    rebind a name, never an address: `serve --host 127.0.0.2` printed a console URL this
    refused), and the names given (the origins' of a reverse proxy)."""

    def __init__(self, app: ASGIApp, names: Sequence[str] = ()) -> None:
        self.app, self.allowed = app, HostAllowlist(names)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            given = [v for k, v in scope["headers"] if k == b"host"]
            if len(given) > 1 or not self.allowed.allows(
                    given[0].decode("latin-1") if given else None):
                await PlainTextResponse("Invalid host header", 400)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _Headers(BaseHTTPMiddleware):
    async def dispatch(self, request: Request,
                       call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        return _security_headers(await call_next(request))


def template_environment() -> Environment:
    """The pages' Jinja2 environment with its filters (tests render a template through it)."""
    # Autoescaping on for every template: author text can never become markup.
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True)
    # A one-line field in a list or a heading (a name, an audit cell): cut, so one value cannot
    # push the page about; the record's own page and the CLI's --json have it whole.
    env.filters["inert"] = lambda v: visible(v, limit=MAX_ONE_LINE)
    # What an operator consents on (the disclosure, the update's diff): never cut, so no role,
    # limit or reason is hidden from the one who grants it. Bounded by the manifest's and the
    # policy loader's own size caps, which every such value comes from.
    env.filters["whole"] = lambda v: visible(v, limit=sys.maxsize)
    # A record's time as the Since filter takes it (a valid record's is a finite epoch second).
    env.filters["utc"] = lambda ts: datetime.fromtimestamp(float(ts), UTC).strftime(
        "%Y-%m-%d %H:%M:%S")
    return env


def create_console(home: Home, server: EmbeddedServer | Operators,
                   enforced: Callable[[], str | None] = lambda: None,
                   hosts: Sequence[str] = (),
                   origins: Sequence[str] = ()) -> Starlette:
    """The console as a starlette app, to be mounted at `/console`. `server`: the embedded
    server, or the `Operators` of a Rocket.Chat workspace (`host.console.operators`) whose
    admins sign in; `enforced` says which policy revision the serving host decides with right
    now (None: no host runs apps); `hosts` are host names it answers besides `localhost` and
    any address (`_HostCheck`); `origins`
    (`origins.parse_origin` forms) are those a reverse proxy serves it as: their names are
    answered too, a page of theirs may post, and an https one's cookie is sent `Secure`."""
    operators: Operators = ServerOperators(server) if isinstance(server, EmbeddedServer) \
        else server
    sessions = Sessions()
    chain = auditview.AuditView()  # the audit page's verdict, kept between requests
    # Seals what a settings page says of a value it never shows (`settings.seal`); a page read
    # before this process started has a seal no longer valid: its secret is typed again.
    seal_key = secrets.token_bytes(32)
    templates = Jinja2Templates(env=template_environment())
    threads = faults.console_threads()  # every blocking step's threads (`CONSOLE_THREADS`)

    def page(request: Request, name: str, status: int = 200, **ctx: Any) -> Response:
        resp: Response = templates.TemplateResponse(request, name, ctx, status_code=status)
        return resp

    door = SignIn(operators, sessions, origins, threads, page)  # who the request is (`signin`)
    form, signed_in = door.form, door.signed_in

    async def index(request: Request, s: Session) -> Response:
        return RedirectResponse("/console/apps", status_code=303)

    def apps(request: Request, s: Session, dropped: tuple[str, str] | None = None
             ) -> Response:
        store = InstallStore(home.host_store)
        try:
            installs = store.list()
        finally:
            store.close()
        # Only a serving host's rows, as `app list` shows them: a host killed without its
        # clean stop leaves its last rows, which said "running" for good.
        now = time.time()
        status = {k: v for k, v in read_status(home.host_store).items() if is_fresh(v, now)}
        refusals = approws.refusals_last_hour(home)
        rows = [_app_row(rec, status.get(rec.install_id), refusals.get(rec.install_id, 0))
                for rec in installs]
        return page(request, "apps.html", s=s, rows=rows, dropped=dropped)

    def switch(on: bool) -> Callable[[Request, Session, dict[str, str]], Response]:
        def run(request: Request, s: Session, _form: dict[str, str]) -> Response:
            store = InstallStore(home.host_store)
            try:
                rec = store.get(request.path_params["install_id"])
                if rec is None:
                    return Response("no such install", status_code=404, media_type="text/plain")
                if on:
                    # As `app enable`: an install whose signed consent does not verify (its
                    # row was changed behind the host's back) is never switched on.
                    check = verify_install(rec, store, open_keyring(home), disable=False)
                    if not check.ok:
                        return Response(f"{rec.app_id}: {check.problem}; re-confirm its "
                                        f"permissions with `stockade app consent {rec.app_id}`",
                                        status_code=409, media_type="text/plain")
                # The CLI's own operation and audit record; the actor names the console user.
                try:
                    with audited(home.host_store, "enable" if on else "disable",
                                 app_id=rec.app_id, install_id=rec.install_id,
                                 version=rec.version,
                                 actor=f"console:{s.username} ({operator_actor()})") as act:
                        seq = switches.switch(
                            store, open_keyring(home), rec, on, clock=SystemClock(),
                            reason=None if on else f"disabled by {s.username} in the console")
                        if seq is not None:  # the signed switch's number (`switches.py`)
                            act.note(consent_seq=seq)
                except (switches.SwitchRefused, InstallChanged) as exc:
                    return Response(f"{rec.app_id}: {exc}", status_code=409,
                                    media_type="text/plain")
            finally:
                store.close()
            return RedirectResponse("/console/apps", status_code=303)
        return run

    def audit(request: Request, s: Session) -> Response:
        q = {k: request.query_params.get(k, "")[:64] for k in ("app", "code", "rule", "since")}
        since = auditview.parse_since(q["since"])
        if q["since"] and since is None:
            return page(request, "audit.html", 400, s=s, verdict=None, entries=[], filters=q,
                        error="since: a date and time (2026-12-03T09:00) or epoch seconds")
        before = auditview.parse_before(request.query_params.get("before", ""))
        if before == 0:
            return page(request, "audit.html", 400, s=s, verdict=None, entries=[], filters=q,
                        error="before: a record number (the Older link gives it)")
        def read() -> tuple[auditview.Verdict, auditview.Search]:
            log = AuditLog(home.host_store, SystemClock())
            try:
                return chain.verdict(log), auditview.search(
                    log, app=q["app"], code=q["code"], rule=q["rule"], since=since,
                    before=before)
            finally:
                log.close()

        verdict, found = read()
        return page(request, "audit.html", s=s, verdict=verdict.result,
                    full_walk_at=verdict.full_walk_at, entries=found.entries, found=found,
                    filters=q, slack_min=int(auditview.SINCE_SLACK_S // 60), before=before,
                    older=None if found.complete or found.by_time or found.oldest_seq is None
                    else "/console/audit?" + urlencode({**q, "before": found.oldest_seq}))

    def record(request: Request, s: Session) -> Response:
        seq = int(request.path_params["seq"])
        entry = None
        if seq <= auditview.MAX_SEQ:
            log = AuditLog(home.host_store, SystemClock())
            try:
                entry = log.show(seq)
            finally:
                log.close()
        if entry is None:
            return Response("no such record", status_code=404, media_type="text/plain")
        return page(request, "record.html", s=s, e=entry,
                    fields=sorted((k, str(v)) for k, v in entry.body.items()))

    def installs() -> list[InstallRecord]:
        store = InstallStore(home.host_store)
        try:
            return store.list()
        finally:
            store.close()

    async def quota_page(request: Request, s: Session) -> Response:
        # Off the event loop: a store another process holds is waited on (then said so).
        return page(request, "quotas.html", s=s, chart_w=pages.CHART_W, chart_h=pages.CHART_H,
                    **await anyio.to_thread.run_sync(pages.quota_context, home, operators.seats,
                                                     limiter=threads))

    async def policy_page(request: Request, s: Session) -> Response:
        # Off the event loop: in `serve`'s front `enforced` asks the host over the link (up to
        # ENFORCED_WAIT_S), and the store may be held by another process.
        return page(request, "policy.html", s=s,
                    **await anyio.to_thread.run_sync(pages.policy_context, home, enforced,
                                                     limiter=threads))

    uploads = Uploads()

    async def install_page(request: Request, s: Session) -> Response:
        return page(request, "install.html", s=s)

    async def package_form(request: Request, s: Session
                           ) -> tuple[dict[str, str], bytes | None] | Response:
        """An upload form's fields and package bytes (None for no file), or the refusal (not
        same-origin, without the session's CSRF token, or longer than an upload may be)."""
        if not same_origin(request, origins):
            return refused()
        declared = declared_length(request)
        if declared is None or declared > MAX_UPLOAD_BYTES:
            return Response(f"refused: an upload is at most {MAX_ARCHIVE_BYTES} bytes of package "
                            "(a browser says how long it is)", status_code=413,
                            media_type="text/plain")
        form = await request.form(max_files=1, max_fields=6, max_part_size=MAX_ARCHIVE_BYTES)
        if not csrf_ok(form.get("csrf"), s):
            return refused()
        file = form.get("package")
        data = await file.read(MAX_ARCHIVE_BYTES + 1) if isinstance(file, UploadFile) else None
        return {k: v for k, v in form.items() if isinstance(v, str)}, data

    async def upload(request: Request, s: Session) -> Response:
        got = await package_form(request, s)
        if isinstance(got, Response):
            return got
        _fields, data = got
        if data is None:
            return page(request, "install.html", 400, s=s, error="choose a package file")
        try:  # off the event loop: a large package or a slow signature check stalls no one
            up = await anyio.to_thread.run_sync(install_flow.examine, home, data, s.username,
                                                limiter=threads)
        except install_flow.Refused as exc:
            return page(request, "install.html", exc.status, s=s, error=str(exc))
        return page(request, "consent.html", s=s, up=up, d=up.disclosure.to_dict(),
                    token=uploads.add(up))

    async def consent(request: Request, s: Session) -> Response:
        if not same_origin(request, origins):
            return refused()
        declared = declared_length(request)  # as `form_of`: a confirm form is small too
        if declared is None or declared > MAX_FORM_BYTES:
            return refused()
        form = await request.form(max_files=0, max_fields=64)
        if not csrf_ok(form.get("csrf"), s):
            return refused()
        try:
            up = uploads.take(str(form.get("upload", "")), s.username)
            rec = await anyio.to_thread.run_sync(lambda: install_flow.confirm(  # off the loop
                home, up, [str(g) for g in form.getlist("grant")],
                allow_unsigned=form.get("allow_unsigned") == "yes",
                transfer=form.get("transfer") == "yes",
                actor=f"console:{s.username} ({operator_actor()})"), limiter=threads)
        except install_flow.Refused as exc:  # 409: the page's premise changed meanwhile
            return page(request, "install.html", exc.status, s=s, error=str(exc))
        return RedirectResponse(f"/console/apps#app-{rec.app_id}", status_code=303)

    def updates_page(request: Request, s: Session) -> Response:
        return page(request, "updates.html", s=s, pending=updates.queue(home),
                    installs=installs())

    def uninstall_page(request: Request, s: Session) -> Response:
        with InstallStore(home.host_store) as store:
            rec = store.get(request.path_params["install_id"])
        if rec is None:
            return Response("no such install", status_code=404, media_type="text/plain")
        users, why = lifecycle_seams.app_users_counted(home, rec)  # None: cannot tell, never 0
        return page(request, "uninstall.html", s=s, rec=rec, users=users, why=why,
                    agents=lifecycle_seams.app_agents_counted(home, rec),
                    stored=lifecycle_seams.count_app_data(home, rec))

    def uninstall(request: Request, s: Session, form: dict[str, str]) -> Response:
        users, agents = form.get("users"), form.get("agents")
        if users not in ("deactivate", "keep") or agents not in ("remove", "keep") or \
                form.get("confirm") != "yes":
            return Response("say what happens to its users and agents, and confirm",
                            status_code=400, media_type="text/plain")
        with InstallStore(home.host_store) as store:
            rec = store.get(request.path_params["install_id"])
            if rec is None:
                return Response("no such install", status_code=404, media_type="text/plain")
            try:
                uninstall_app(home, store, rec, users=users, agents=agents,
                              actor=f"console:{s.username} ({operator_actor()})")
            except lifecycle_seams.SERVER_UNASKABLE as exc:  # was a 500 naming nothing
                return Response(f"the chat server cannot be asked: {exc}; the app is still "
                                "installed (keep both to uninstall without asking it)",
                                status_code=503, media_type="text/plain")
            except InstallGone as exc:  # another operator's uninstall landed first (was a 500)
                return Response(str(exc), status_code=404, media_type="text/plain")
        return RedirectResponse("/console/apps", status_code=303)

    def settings_page(request: Request, s: Session) -> Response:
        with InstallStore(home.host_store) as store:
            rec = store.get(request.path_params["install_id"])
        if rec is None:
            return Response("no such install", status_code=404, media_type="text/plain")
        # Only the manifest's own key names (or "nothing"): a link anyone can craft must not
        # put words of its own in the console's green banner.
        asked = request.query_params.get("saved", "")[:2000].split(",")
        keys = {spec.key for spec in rec.manifest.setting}
        saved = ", ".join(k for k in asked if k in keys) or (
            "nothing" if asked == ["nothing"] else "")
        return page(request, "settings.html", s=s, rec=rec,
                    rows=app_settings.rows(rec, key=seal_key),
                    saved=saved)

    def settings_save(request: Request, s: Session, form: dict[str, str]) -> Response:
        iid = request.path_params["install_id"]
        try:
            changed = app_settings.save(home, iid, form, key=seal_key,
                                        actor=f"console:{s.username} ({operator_actor()})")
        except install_flow.Refused as exc:
            with InstallStore(home.host_store) as store:
                rec = store.get(iid)
            if rec is None:
                return Response("no such install", status_code=404, media_type="text/plain")
            changed_meanwhile = isinstance(exc, app_settings.Changed)  # shown as they stand
            return page(request, "settings.html", 409 if changed_meanwhile else 400, s=s,
                        rec=rec, rows=app_settings.rows(rec, None if changed_meanwhile
                                                        else form, key=seal_key),
                        error=str(exc))
        return RedirectResponse(f"/console/apps/{iid}/settings?saved="
                                f"{','.join(changed) or 'nothing'}", status_code=303)

    def update_upload(request: Request, s: Session,
                      got: tuple[dict[str, str], bytes | None]) -> Response:
        form, data = got
        try:
            if data is None:
                raise install_flow.Refused("choose a package file")
            done = updates.submit(home, form.get("install_id", ""), data,
                                  allow_unsigned=form.get("allow_unsigned") == "yes",
                                  actor=f"console:{s.username} ({operator_actor()})")
        except install_flow.Refused as exc:
            status = 409 if isinstance(exc, updates.Changed) else 400
            return page(request, "updates.html", status, s=s, pending=updates.queue(home),
                        installs=installs(), error=str(exc))
        if done.dropped is not None:  # said on the page itself: a redirect's query is forgeable
            return apps(request, s, dropped=(done.app_id, done.dropped))
        return RedirectResponse("/console/updates" if done.waits else "/console/apps",
                                status_code=303)

    def review_page(request: Request, s: Session) -> Response:
        try:
            r = updates.review(home, request.path_params["install_id"])
        except install_flow.Refused as exc:
            return page(request, "updates.html", 409 if isinstance(exc, updates.Changed)
                        else 400, s=s, pending=updates.queue(home), installs=installs(),
                        error=str(exc))
        return page(request, "review.html", s=s, r=r, d=r.disclosure.to_dict(),
                    diff=updates.diff_rows(r.diff.to_dict()),
                    widening=updates.needs_widening_yes(r),
                    publisher=updates.shown_publisher(r.sig),
                    keeps=lifecycle_seams.transfer_keeps(home, r.rec, r.pkg.manifest)
                    if r.diff.publisher_changed else "")

    async def form_and_grants(request: Request, s: Session
                              ) -> tuple[dict[str, str], list[str]] | Response:
        """An approval's form (`form`) and the grants it ticks (a field given many times)."""
        got = await form(request, s)
        if isinstance(got, Response):
            return got
        return got, [str(g) for g in (await request.form()).getlist("grant")]

    def decide_update(approve: bool
                      ) -> Callable[[Request, Session, tuple[dict[str, str], list[str]]],
                                    Response]:
        def run(request: Request, s: Session,
                got: tuple[dict[str, str], list[str]]) -> Response:
            form, ticked = got
            actor = f"console:{s.username} ({operator_actor()})"
            try:
                if approve:
                    r = updates.review(home, request.path_params["install_id"])
                    updates.check_reviewed(r, form.get("package", ""))
                    updates.check_publisher(r, form.get("publisher", ""),
                                            allow_unsigned=form.get("allow_unsigned") == "yes")
                    updates.approve(home, r, ticked, transfer=form.get("transfer") == "yes",
                                    actor=actor, widening=form.get("widening") == "yes")
                else:  # by the recorded hash: a package that no longer reads is rejected too
                    rec = updates.pending_of(home, request.path_params["install_id"])
                    updates.check_rejected(rec, form.get("package", ""))
                    updates.reject(home, rec, actor=actor)
            except install_flow.Refused as exc:
                status = 409 if isinstance(exc, updates.Changed) else 400
                return page(request, "updates.html", status, s=s, pending=updates.queue(home),
                            installs=installs(), error=str(exc))
            return RedirectResponse("/console/updates", status_code=303)
        return run

    # A held store or an unread keyring: a 503; the store work on a worker thread (`faults`).
    def g(work: Callable[[Request, Session], Response]
          ) -> Callable[[Request, Session], Awaitable[Response]]:
        return faults.guarded_page(home, threads, work)

    def gc(read: Callable[[Request, Session], Awaitable[faults.F | Response]],
           work: Callable[[Request, Session, faults.F], Response]
           ) -> Callable[[Request, Session], Awaitable[Response]]:
        return faults.guarded(home, threads, read, work)

    routes = [
        Route("/login", door.login_page, methods=["GET"]),
        Route("/login", door.login, methods=["POST"]),
        Route("/logout", door.logout, methods=["POST"]),
        Route("/", signed_in(index), methods=["GET"]),
        Route("/apps", signed_in(g(apps)), methods=["GET"]),
        Route("/apps/{install_id}/enable", signed_in(gc(form, switch(True))), methods=["POST"]),
        Route("/apps/{install_id}/disable", signed_in(gc(form, switch(False))), methods=["POST"]),
        Route("/apps/{install_id}/settings", signed_in(g(settings_page)), methods=["GET"]),
        Route("/apps/{install_id}/uninstall", signed_in(g(uninstall_page)), methods=["GET"]),
        Route("/apps/{install_id}/uninstall", signed_in(gc(form, uninstall)), methods=["POST"]),
        Route("/apps/{install_id}/settings", signed_in(gc(form, settings_save)), methods=["POST"]),
        Route("/audit", signed_in(g(audit)), methods=["GET"]),
        Route("/audit/{seq:int}", signed_in(g(record)), methods=["GET"]),
        Route("/quotas", signed_in(quota_page), methods=["GET"]),
        Route("/updates", signed_in(g(updates_page)), methods=["GET"]),
        Route("/updates", signed_in(gc(package_form, update_upload)), methods=["POST"]),
        Route("/updates/{install_id}", signed_in(g(review_page)), methods=["GET"]),
        Route("/updates/{install_id}/approve", signed_in(gc(form_and_grants, decide_update(True))),
              methods=["POST"]),
        Route("/updates/{install_id}/reject", signed_in(gc(form_and_grants, decide_update(False))),
              methods=["POST"]),
        Route("/install", signed_in(install_page), methods=["GET"]),
        Route("/install", signed_in(upload), methods=["POST"]),
        Route("/install/confirm", signed_in(consent), methods=["POST"]),
        Route("/policy", signed_in(policy_page), methods=["GET"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    # The headers outermost: the Host refusal (DNS rebinding) is a console answer too.
    return Starlette(routes=routes, middleware=[
        Middleware(_Headers),
        Middleware(_HostCheck, names=[*hosts, *host_names(origins)])],
        exception_handlers={ClientDisconnect: client_gone})

