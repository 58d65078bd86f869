"""`stockade app`: package, sign, install (disclosure + consent), and the app lifecycle.

Every command takes `--json`: then stdout holds exactly one JSON document and everything for
humans (disclosure tables, prompts, progress) goes to stderr. Exit codes: 0 ok, 1 a negative
answer (declined, an update that waits for consent, tampering found), 2 bad input, 3
confirmation required (no TTY and no --grant, or an unsigned package without --allow-unsigned).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from host.apps import lifecycle_seams
from host.apps.appdiff import diff_manifests, render_diff
from host.apps.consent import (
    ConsentDeclined,
    ConsentError,
    ConsentRequired,
    guardrail_problems,
    is_interactive,
    resolve_grants,
    verify_install,
)
from host.apps.disclosure import Disclosure, build_disclosure, load_policy_view, render_disclosure
from host.apps.installs import (
    InstallChanged,
    InstallError,
    InstallGone,
    InstallRecord,
    InstallStore,
)
from host.apps.lineage import Lineage, LineageError, binding_of
from host.apps.manifest import Manifest
from host.apps.operations import (
    app_user_blocked,
    consented_terms,
    install_package,
    submit_update,
    uninstall_app,
)
from host.apps.packages import (
    Package,
    PackageError,
    build_zip,
    package_folder,
    read_package,
    write_atomic,
)
from host.apps.publisher import (
    PublisherError,
    SignatureCheck,
    TrustStore,
    check_signature,
    load_private_key,
    sign_package,
)
from host.cli import (
    app_data_cmd,  # noqa: F401  (registers `app logs`, `settings`, `tokens`)
    app_enable_cmd,  # noqa: F401  (registers `app enable` and `app disable`)
    ask,
)
from host.cli.app_common import (
    TRANSFER_HINT,
    AllowUnsigned,
    AppRef,
    GrantOpt,
    JsonFlag,
    RestAsOpt,
    TransferOpt,
    app_app,
    check_lineage,
    existing_store,
    fail_quoting,
    operator_name,
    print_quoting,
    print_running,
    resolve,
    rest_identity,
)
from host.cli.output import (
    EXIT_CONFIRM,
    EXIT_NEGATIVE,
    EXIT_USAGE,
    emit_json,
    err_console,
    fail,
)
from host.clock import SystemClock
from host.home import Home
from host.inert import MAX_BLOCK, host, line, visible
from host.keys.keyring import Keyring
from host.ledger.operator import open_keyring
from host.supervise.status import is_fresh, read_status


def _confirm(question: str, default: bool) -> bool:
    # On stderr: prompts are for humans and must never pollute --json stdout. Not
    # typer.confirm: a Ctrl-C could be lost at its prompt (host.cli.ask).
    return ask.confirm(question, default)


def _now() -> float:
    return SystemClock().now()


def _read(path: Path) -> Package:
    try:
        return read_package(path)
    except PackageError as exc:  # it quotes the package's own text: never begins a row
        fail_quoting(str(exc), "fix the package and try again; nothing was installed or "
                     "changed")


def _signature(home: Home, pkg: Package) -> SignatureCheck:
    try:
        return check_signature(pkg, TrustStore(home.trust_dir))
    except PublisherError as exc:
        fail(str(exc), "nothing was installed or changed", EXIT_NEGATIVE)


def _require_signed(sig: SignatureCheck, allow_unsigned: bool) -> None:
    if sig.status != "trusted" and not allow_unsigned:
        what = "unsigned" if sig.status == "unsigned" else f"signed by an unknown key {sig.kid}"
        fail(f"the package is {what}",
             "trust its publisher (`stockade keys trust KEY.pub --name NAME`) or pass "
             "--allow-unsigned if you accept code nobody you trust vouches for",
             EXIT_CONFIRM)


def _open(home: Home) -> tuple[InstallStore, Keyring]:
    home.ensure()
    return InstallStore(home.host_store), open_keyring(home)


def _disclose(home: Home, manifest: Manifest, content_hash: str, sig: SignatureCheck,
              rec: InstallRecord | None = None, title: str = "Install",
              rest_as: str | None = None) -> Disclosure:
    from host.gate.rest_routes import route_actions

    policy, why = load_policy_view(home.policies_dir)
    # A count that cannot be taken is said so, never shown as none (`app_users_counted`).
    users, unknown = (None, "") if rec is None else lifecycle_seams.app_users_counted(home, rec)
    d = build_disclosure(manifest, content_hash, sig, policy, app_users=users,
                         app_users_unknown=unknown, rest_as=rest_as, route_actions=route_actions)
    render_disclosure(d, err_console, title=title)
    if why:  # it quotes the policy loader's findings, which quote the files: in its column
        print_quoting("policy:", why, "yellow")
    return d


def _refuse_guardrails(manifest: Manifest) -> None:
    """Refuse at consent what no consent may grant (admin-class roles), naming it."""
    problems = guardrail_problems(manifest)
    if problems:
        for p in problems:  # each quotes a role name the manifest declares
            print_quoting("refused:", p)
        fail(f"{manifest.id} {manifest.version} cannot be consented to: "
             f"{len(problems)} guardrail violation(s)",
             "the publisher must remove admin-class roles from the manifest", EXIT_NEGATIVE)


def _grants(asked: frozenset[str], flags: list[str] | None, *,
            ask_about: frozenset[str] | None = None,
            already: frozenset[str] = frozenset()) -> frozenset[str]:
    try:
        return resolve_grants(asked, flags or [], interactive=is_interactive(),
                              confirm=_confirm, ask_about=ask_about, already=already)
    except ConsentError as exc:
        fail(str(exc), "name only permissions the package asks for")
    except ConsentRequired as exc:
        fail(str(exc), "", EXIT_CONFIRM)
    except ConsentDeclined as exc:
        fail(str(exc), "", EXIT_NEGATIVE)


def _confirm_widening(widens: bool) -> None:
    """An update that widens power without asking for a new permission (roles, events,
    secrets, a downgrade) still needs a yes: no grant question would otherwise be put."""
    if not widens:
        return
    if not is_interactive():
        fail("this update widens what the app may do (see the diff above)",
             "approve it by naming the grants it keeps with --grant", EXIT_CONFIRM)
    if not _confirm("Approve the wider powers shown above?", False):
        fail("not updated: you declined", "", EXIT_NEGATIVE)


def _policy_revision(home: Home) -> str | None:
    policy, _ = load_policy_view(home.policies_dir)
    return None if policy is None else policy.revision


# ---- package / sign / new ----------------------------------------------------------------------

@app_app.command("new")
def new(
    name: Annotated[str, typer.Argument(help="App id for the new app, e.g. agent-sync.")],
    dir_: Annotated[Path | None, typer.Option("--dir", help="Where to create it.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Scaffold a working app: manifest, module and a test using the app-author harness."""
    from host.apps.scaffold import ScaffoldError, scaffold

    target = dir_ if dir_ is not None else Path.cwd() / name
    try:
        files = scaffold(name, target)
    except ScaffoldError as exc:
        fail(str(exc), "choose another name or an empty folder")
    err_console.print(f"created {target} ({len(files) - 1} files) and the operator rule it needs, "
                      f"{files[-1].name}", highlight=False)
    err_console.print(f"test:    python -m pytest {target} (pytest comes with Stockade's [test] "
                      f"extra: pip install -e '.[test]' in its checkout)\n"
                      f"package: stockade app package {target}\n"
                      f"policy:  stockade policy add {files[-1]}", highlight=False, markup=False)
    if json_out:
        emit_json({"dir": str(target), "files": [str(f) for f in files]})


@app_app.command("package")
def package(
    src: Annotated[Path, typer.Argument(help="The app folder.")],
    out: Annotated[Path | None, typer.Option("-o", "--out", help="Zip to write.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Write a deterministic zip whose manifest records the content hash."""
    from host.apps.handlers import EVENT_HANDLERS, check_handlers, handler_for, suggestion

    try:
        pkg, data = package_folder(src)
    except PackageError as exc:
        fail(str(exc), "fix the folder and package again")
    handlers = check_handlers(pkg)
    for name in handlers.undeclared:
        err_console.print(line(host("warning:", "yellow"), f" {name} handles "
                               f"{EVENT_HANDLERS[name]}, which app.toml's `events` does not "
                               "list: it is never called"))
    _, entry_class = pkg.manifest.entry_parts()
    for event in handlers.unhandled:
        err_console.print(line(host("warning:", "yellow"), f" app.toml lists {event}, but "
                               f"{entry_class} has no {handler_for(event)}(self, ctx, event): "
                               "the host delivers it and nothing handles it"))
    if handlers.unknown:
        for name in handlers.unknown:
            err_console.print(line(host("error:", "bold red"),
                                   f" {name} is no event handler: {suggestion(name)}"))
        fail(f"{len(handlers.unknown)} handler(s) would never be called",
             "rename them to on_<event> (dots and dashes become underscores); nothing written")
    target = out or Path.cwd() / f"{pkg.app_id}-{pkg.manifest.version}.zip"
    try:
        write_atomic(target, data)
    except OSError as exc:
        fail(f"cannot write {target}: {exc.strerror}", "choose another -o path")
    # The path may be a name the package's author chose (signed in place): inert (rule 12).
    err_console.print(line(f"wrote {target} ({len(data)} bytes), content hash "
                           f"{pkg.content_hash}"))
    if json_out:
        emit_json({"path": str(target), "app_id": pkg.app_id, "version": pkg.manifest.version,
                   "content_hash": pkg.content_hash})


@app_app.command("sign")
def sign(
    pkg_path: Annotated[Path, typer.Argument(help="A packaged app (.zip).")],
    key: Annotated[Path, typer.Option("--key", help="Publisher private key file.")],
    out: Annotated[Path | None, typer.Option("-o", "--out", help="Default: in place.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Add the publisher's Ed25519 signature over the content hash (a SIGNATURE member)."""
    if pkg_path.is_dir():
        fail(f"{pkg_path} is a folder", "package it first: stockade app package DIR")
    pkg = _read(pkg_path)
    try:
        priv = load_private_key(key)
    except PublisherError as exc:
        fail(str(exc), "pass the private key written by `stockade keys generate`")
    signed = Package(manifest=pkg.manifest, files=pkg.files, content_hash=pkg.content_hash,
                     signature=sign_package(pkg, priv), source=pkg.source)
    target = out or pkg_path
    try:
        write_atomic(target, build_zip(signed))
    except OSError as exc:  # the operator's path: said so, never "unexpected ... report it"
        fail(f"cannot write {target}: {exc.strerror}", "choose another -o path")
    err_console.print(line(f"signed {target} ({pkg.content_hash})"))  # an author's file name
    if json_out:
        emit_json({"path": str(target), "content_hash": pkg.content_hash})


# ---- install -----------------------------------------------------------------------------------


@app_app.command("install")
def install(
    ctx: typer.Context,
    pkg_path: Annotated[Path, typer.Argument(help="A packaged app (.zip) or an app folder.")],
    grant: GrantOpt = None,
    allow_unsigned: AllowUnsigned = False,
    transfer: TransferOpt = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Show the disclosure and checks; install nothing.")] = False,
    rest_as: RestAsOpt = None,
    json_out: JsonFlag = False,
) -> None:
    """Show what the app can do, ask for consent, and install it."""
    home: Home = ctx.obj
    pkg = _read(pkg_path)  # nothing touches HOME before the package is fully validated
    sig = _signature(home, pkg)
    if home.has_host_store():
        with InstallStore(home.host_store) as probe:
            if probe.by_app(pkg.app_id) is not None:
                fail(f"app {pkg.app_id!r} is already installed",
                     f"use `stockade app update {pkg.app_id} {pkg_path}`")
    if home.has_server_data():
        # Said before the operator is asked to consent (the install checks it again).
        blocked = app_user_blocked(home, SystemClock(), pkg.app_id)
        if blocked is not None:
            fail(blocked)
    identity = rest_identity(home, None, rest_as)
    disclosure = _disclose(home, pkg.manifest, pkg.content_hash, sig, rest_as=identity)
    _refuse_guardrails(pkg.manifest)
    if dry_run:
        err_console.print("dry run: nothing installed", highlight=False)
        if json_out:
            emit_json({"status": "dry-run", "installed": False,
                       "disclosure": disclosure.to_dict()})
        return
    try:
        _require_signed(sig, allow_unsigned)
        check_lineage(home, pkg.app_id, sig, transfer)
        grants = _grants(pkg.manifest.asked, grant)
    except typer.Exit as stop:
        # A script that runs `install --json` reviews what it stopped on from stdout.
        if json_out:
            emit_json({"status": "consent-required" if stop.exit_code == EXIT_CONFIRM
                       else "refused", "installed": False,
                       "disclosure": disclosure.to_dict()})
        raise
    try:
        rec = install_package(home.ensure(), pkg, sig, grants,
                              policy_revision=disclosure.policy_revision, clock=SystemClock(),
                              transfer=transfer, actor=operator_name(), rest_as=identity)
    except InstallError as exc:
        fail(str(exc))
    except LineageError as exc:
        # Another operator's install of it landed since the look above: said so, as the look
        # does (exit 2), not as "another app posing as the installed one".
        with InstallStore(home.host_store) as probe:
            if probe.by_app(pkg.app_id) is not None:
                fail(f"app {pkg.app_id!r} was installed meanwhile (by another operator): "
                     "nothing changed by this install",
                     f"see `stockade app list`; `stockade app update {pkg.app_id} {pkg_path}` "
                     "updates it")
        fail(str(exc), TRANSFER_HINT, EXIT_NEGATIVE)
    denied = sorted(pkg.manifest.asked - grants)
    err_console.print(line(host("installed", "green"),
                           f" {rec.app_id} {rec.version} as {rec.install_id}; granted: "
                           f"{', '.join(sorted(grants)) or 'nothing'}"
                      + (f"; not granted (PermissionDenied): {', '.join(denied)}" if denied
                         else "")))
    if json_out:
        emit_json({"status": "installed", "installed": True, "install": rec.to_public_dict(),
                   "disclosure": disclosure.to_dict()})


# ---- list / info / enable / disable ----------------------------------------------------------

def _checked(store: InstallStore, keyring: Keyring, rec: InstallRecord) -> dict[str, Any]:
    check = verify_install(rec, store, keyring)
    current = store.get(rec.install_id) or rec
    d = current.to_public_dict()
    d["missing_settings"] = current.missing_settings()
    d["consent_ok"] = check.ok
    d["consent_problem"] = check.problem
    return d


@app_app.command("list")
def list_apps(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """Installed apps (consent re-verified; a tampered install is disabled)."""
    home: Home = ctx.obj
    rows: list[dict[str, Any]] = []
    if home.has_host_store():  # read-only: a mistyped --home is never created
        store, keyring = _open(home)
        with store:
            rows = [_checked(store, keyring, r) for r in store.list()]
    live = read_status(home.host_store)
    now = _now()
    for r in rows:
        st = live.get(r["install_id"])
        # Only a serving host's figures: a stopped host's last row says nothing about now.
        r["running"] = st if st is not None and is_fresh(st, now) else None
    if json_out:
        emit_json(rows)
        return
    if not rows:
        err_console.print("no apps installed")
    for r in rows:
        state = "enabled" if r["enabled"] else f"disabled ({r['disabled_reason'] or 'operator'})"
        if r["enabled"] and r["crash_stop"]:  # kept in the record: shown with no host serving
            state = "enabled, stopped for crash-looping"
        pend = f", update {r['pending_update']['version']} pending" if r["pending_update"] else ""
        need = (f"  needs settings: {', '.join(r['missing_settings'])}"
                if r["missing_settings"] else "")
        err_console.print(line(f"{r['app_id']} {r['version']}  {state}{pend}  grants: "
                               f"{', '.join(r['grants']) or '-'}{need}"))
        print_running(r)


# ---- update / consent -------------------------------------------------------------------------

@app_app.command("update")
def update(
    ctx: typer.Context,
    ref: AppRef,
    pkg_path: Annotated[Path, typer.Argument(help="The new package.")],
    allow_unsigned: AllowUnsigned = False,
    json_out: JsonFlag = False,
) -> None:
    """Update an app. Less access applies at once (and replaces an update waiting for
    consent, said and audited); more access waits for `app consent`."""
    home: Home = ctx.obj
    pkg = _read(pkg_path)
    sig = _signature(home, pkg)
    existing_store(home, ref).close()
    store, _keyring = _open(home)
    with store:
        rec = resolve(store, ref)
        if pkg.app_id != rec.app_id:
            fail(f"the package is app {pkg.app_id!r}, not {rec.app_id!r}",
                 "install it as a separate app instead")
        if pkg.content_hash == rec.package_hash:
            err_console.print(line(f"{rec.app_id} is already at this package ({rec.version})"))
            if json_out:
                emit_json({"status": "unchanged", "install": rec.to_public_dict()})
            return
        # The REST identity an update carries is the one the verified consent names (as
        # `submit_update` keeps it): the screen says which, never "the app's own user" by default.
        _held, identity = consented_terms(home, store, rec)
        disclosure = _disclose(home, pkg.manifest, pkg.content_hash, sig, rec, title="Update",
                               rest_as=identity)
        _require_signed(sig, allow_unsigned)
        render_diff(diff_manifests(rec.manifest, pkg.manifest, old_publisher=rec.publisher,
                                   new_publisher=sig.to_dict()), disclosure, err_console)
        _refuse_guardrails(pkg.manifest)
        if Lineage(home.host_store).bound(rec.app_id) not in (None, binding_of(sig.to_dict())):
            err_console.print(line(
                host("this package comes from another publisher than the one the app id "
                     "is bound to", "bold red"),
                f": approving it needs `stockade app consent {rec.app_id} "
                "--transfer-publisher`"))
        try:
            diff = submit_update(home, store, rec, pkg, sig,
                                 policy_revision=disclosure.policy_revision,
                                 actor=operator_name())
        except InstallChanged as exc:  # another operator's change landed after our read
            fail(str(exc), "run it again: it will compare with the install as it is now",
                 EXIT_NEGATIVE)
        if diff.needs_consent:
            rec = store.get(rec.install_id) or rec
            err_console.print(line(
                host(f"update to {pkg.manifest.version} is PENDING", "yellow"),
                f": it widens what the app may do. {rec.app_id} {rec.version} keeps running. "
                f"Review and approve with `stockade app consent {rec.app_id}`"))
            if json_out:
                emit_json({"status": "pending", "diff": diff.to_dict(),
                           "install": rec.to_public_dict(),
                           "disclosure": disclosure.to_dict()})
            raise typer.Exit(EXIT_NEGATIVE)
        dropped = rec.pending.version if rec.pending is not None else None
        rec = store.get(rec.install_id) or rec
    err_console.print(line(host("updated", "green"), f" {rec.app_id} to {rec.version}; grants: "
                           f"{', '.join(sorted(rec.grants)) or 'nothing'}"))
    if dropped is not None:
        err_console.print(line(host("dropped", "yellow"), f" the update to {dropped} that was "
                               "waiting for consent: this one replaces it"))
    if json_out:
        emit_json({"status": "applied", "diff": diff.to_dict(), "install": rec.to_public_dict(),
                   "dropped_pending": dropped})


# ---- uninstall / logs / settings ----------------------------------------------------------------

@app_app.command("uninstall")
def uninstall(
    ctx: typer.Context,
    ref: AppRef,
    users: Annotated[str | None, typer.Option(
        "--users", help="What to do with users the app created: deactivate or keep.")] = None,
    agents: Annotated[str | None, typer.Option(
        "--agents", help="What to do with the app's livechat agents (its users, its app user): "
                         "remove or keep (kept agents are still routed rooms).")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be deleted; "
                                                             "change nothing.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Remove an app, its stored data and package; every token it holds stops working.

    Says what it deletes first, and asks (or needs --yes).
    """
    home: Home = ctx.obj
    if users not in (None, "deactivate", "keep"):
        fail(f"--users {users!r} is not deactivate or keep", "pass --users deactivate|keep")
    if agents not in (None, "remove", "keep"):
        fail(f"--agents {agents!r} is not remove or keep", "pass --agents remove|keep")
    store = existing_store(home, ref)
    with store:
        rec = resolve(store, ref)
        # A count that cannot be taken is said so, never shown as none (`app_users_counted`).
        count, why = lifecycle_seams.app_users_counted(home, rec)
        _say_what_uninstall_deletes(home, rec, count, why)
        if dry_run:
            err_console.print("dry run: nothing changed", highlight=False)
            if json_out:
                emit_json({"app_id": rec.app_id, "dry_run": True,
                           "stored_items": lifecycle_seams.count_app_data(home, rec)})
            return
        if why.startswith("the chat server cannot") and (users, agents) != ("keep", "keep"):
            fail(f"{why}: nothing changed", "fix the connection (`stockade rocketchat check`), "
                 "or pass --users keep --agents keep to uninstall without asking it")
        if not yes:
            if not is_interactive():
                fail(f"uninstalling {rec.app_id} deletes the data above",
                     "pass --yes to confirm (nothing changed)", EXIT_CONFIRM)
            if not _confirm(f"Uninstall {rec.app_id} and delete this?", False):
                fail("nothing changed: you declined", "", EXIT_NEGATIVE)
        if users is None:
            if count:
                if not is_interactive():
                    fail(f"{rec.app_id} created {count} user(s): choose what happens to them",
                         "pass --users deactivate or --users keep", EXIT_CONFIRM)
                users = "deactivate" if _confirm(
                    f"Deactivate the {count} user(s) {rec.app_id} created?", True) else "keep"
            else:
                users = "keep"
        n_agents = lifecycle_seams.app_agents_counted(home, rec) or 0
        if agents is None:
            # No routable agent is left behind unless the operator says so (issue 24): a kept
            # bot that nobody answers would still be routed new conversations.
            if n_agents and users == "keep" and not is_interactive():
                fail(f"{rec.app_id} has {n_agents} livechat agent(s) that would still be routed "
                     "rooms", "pass --agents remove or --agents keep", EXIT_CONFIRM)
            agents = "keep" if n_agents and users == "keep" and not _confirm(
                f"Stop routing rooms to the {n_agents} agent(s) of {rec.app_id}?", True
            ) else "remove"
        try:
            deactivated, data = uninstall_app(home, store, rec, users=users, agents=agents,
                                              actor=operator_name())
        except InstallGone as exc:  # another operator's uninstall landed after our read
            fail(str(exc), "see `stockade app list`")  # exit 2, as for an app not found
        except lifecycle_seams.SERVER_UNASKABLE as exc:  # its agents' removal needs the server
            fail(f"the chat server cannot be asked: {exc}; the app is still installed",
                 "fix the connection, or pass --users keep --agents keep (asks it nothing)")
        if users == "deactivate" and deactivated is None:
            err_console.print(host("no chat server is wired to this CLI: the app's users were "
                                   "kept; deactivate them on the server", "yellow"))
    err_console.print(line(f"uninstalled {rec.app_id}; users: {users}; agents: {agents}; "
                           f"data: {data}"))
    if agents == "keep" and n_agents and users == "keep":
        err_console.print(line(f"warning: {n_agents} agent(s) of {rec.app_id} are still livechat "
                               "agents: rooms will still be routed to them"), style="yellow")
    if json_out:
        emit_json({"app_id": rec.app_id, "install_id": rec.install_id, "users": users,
                   "users_deactivated": deactivated, "agents": agents,
                   "agents_routable": n_agents if agents == "keep" and users == "keep" else 0,
                   "data": data})


def _say_what_uninstall_deletes(home: Home, rec: InstallRecord, users: int | None,
                                why: str) -> None:
    agents = lifecycle_seams.app_agents_counted(home, rec)
    stored = lifecycle_seams.count_app_data(home, rec)
    log = home.logs_dir / f"{rec.install_id}.log"
    lines = [f"uninstall {rec.app_id} {rec.version} deletes:",
             "  - its install record and consent (every token it holds stops working)",
             f"  - {stored} stored item(s) in its private storage",
             f"  - its package{' and the pending update' if rec.pending else ''} "
             f"({rec.package_path.parent})"]
    if log.exists():
        lines.append(f"  - its log ({log})")
    if users is None:
        lines.append(f"  cannot tell how many users it created ({why}): they are kept "
                     "unless --users deactivate")
    elif users:
        lines.append(f"  users it created ({users}): deactivated or kept, as --users says")
    if agents:
        lines.append(f"  its livechat agents ({agents}): removed or kept, as --agents says")
    lines.append("  the audit log keeps every record of it")
    for text_line in lines:
        err_console.print(Text(visible(text_line, limit=MAX_BLOCK)))


def register(root: typer.Typer) -> None:
    """Mount this group's commands on the root CLI."""
    root.add_typer(app_app, name="app")


__all__ = ["EXIT_USAGE", "register"]
