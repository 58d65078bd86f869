"""The app-author test harness: run an app's handlers in-process, without the host.

Use it from pytest::

    from pathlib import Path
    from sandbox.harness import AppHarness

    APP_DIR = Path(__file__).resolve().parent.parent      # the folder holding app.toml

    def test_greets_the_visitor():
        h = AppHarness.from_dir(APP_DIR, settings={"greeting": "Welcome"})
        started = h.start_room(h.add_visitor(name="Ann")["id"])   # a visitor starts a chat
        h.fire("livechat.room_started", started)                  # ... and the app reacts
        assert h.calls_to("messages.send") == [{"room_id": started["room"]["id"],
                                                "text": "Welcome, Ann!"}]

What it does, and how it matches the real host:

* `from_dir` reads `app.toml` and the folder's top-level `*.py` modules and compiles them with
  the same RestrictedPython loader the confined child uses (`sandbox.loader.load_app`), so a
  construct the sandbox refuses fails here, at load time, with the same `LoadFailed` message.
* Every bridge call (`ctx.users.create(...)`, `ctx.http.post(...)`, ...) crosses a fake gate:
  it is recorded in `calls`, refused with `PermissionDenied` naming the missing permission when
  the install was not granted it (grants default to what `app.toml` asks for; pass `grants=` to
  test what your app does when the operator withholds one), and then served by a small
  in-memory chat server that behaves like the embedded one: unique case-insensitive usernames
  (`Conflict`), unknown ids (`NotFound`), agents, routing, take / transfer / close, messages,
  the persistence store, and the events those operations emit (`emitted`).
* Arguments and results cross as plain JSON data, as on the wire: your app never gets a
  reference into the fake server's state.
* Failures you cannot easily provoke are injected: `fail_next("users.create",
  QuotaExceeded("..."))` makes the next `users.create` raise it; `set_quota(action, n)` allows
  `n` successful calls and then raises `QuotaExceeded`.
* Outbound HTTP and server REST are programmable: set `http_responder` / `rest_responder`
  (a request the host would not send, such as a `Content-Length` header or a non-ASCII value,
  is refused first, `policies.httprules`; `rest.call` is decided as the gate decides it).
* The operator's policy files, when you ask: `h.use_policy("policies/")` loads them as the
  host does and decides every call with the host's own engine and quotas
  (`sandbox.harness_policy`), so a test fails where the host would refuse; an event the policy
  keeps from the app (it does not permit a read the event's data amounts to) is not delivered.

What it does not do: audit, confinement and deadlines are the host's, not the harness's; without
`use_policy` the permission check, the roles app.toml declares, the engine's refusals that hold
whatever the policy (argument shapes, a role amounting to an action not granted) and the
admin-class role guardrail are modelled; a mapped REST route's bridge action is decided, not
performed on the fake server. Run your app under `stockade` for those. Time is a counter
(`now`), advanced one second per server write, so tests are deterministic.
"""
from __future__ import annotations

import json
import os
import tomllib
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from policies.engine import unconditional_refusal
from policies.events import strip
from policies.grants import grant_refusal
from policies.httprules import MAX_RESPONSE_BYTES, RequestRefused, app_headers, checked_request
from policies.quota import REFUNDABLE_ERRORS, REFUSAL_BUDGET, REFUSAL_WINDOW_S, admit
from policies.tomlkeys import MAX_KEY_DOTS, deepest_key
from policies.types import Request
from policies.verdicts import verdict_problem
from policies.vocabulary import ACTIONS, ADMIN_CLASS_ROLES, EVENTS, PERMISSIONS
from sandbox import errors, frames
from sandbox.api import LIFECYCLE_HOOKS, App, Context, handler_name
from sandbox.harness_manifest import Manifest as _Manifest
from sandbox.harness_manifest import unchanged_diff
from sandbox.harness_policy import INSTALL_ID, PolicyCheck, seats_in_use, target_facts, withheld
from sandbox.harness_rest import decide_rest, route_refusal
from sandbox.harness_server import (
    MANIFEST_NAME,
    FakeServer,
    HarnessError,
    plain_copy,
)
from sandbox.harness_world import HarnessWorld
from sandbox.loader import load_app
from sandbox.restricted import CappedPrint, flush_prints, reset_print_budget
from sandbox.wire import FrameError, encode
from sandbox.wirecaps import MAX_RESULT_BYTES, check_json_value, result_too_large

__all__ = ["AppHarness", "FakeServer", "HarnessError", "HttpResponder", "RestResponder"]

_T = TypeVar("_T")
# (method, url, headers, body) -> (status, body) or (status, body, headers)
HttpResponder = Callable[[str, str, dict[str, str], "str | None"], tuple[Any, ...]]
# (method, route, body) -> the JSON result
RestResponder = Callable[[str, str, "dict[str, Any] | None"], Any]

# ---------------------------------------------------------------------------------------------
# The harness: manifest + loader + fake gate + helpers for tests.
# ---------------------------------------------------------------------------------------------


class AppHarness(HarnessWorld):
    """Load an app from its folder and drive it like the host would.

    Attributes you will use in tests:

    * `app` — the loaded app instance; `ctx` — a context for your test to call the bridges
      as the app would (handlers receive their own, whose calls are refused with
      InvalidArgument once the handler returned, as the host's child refuses them);
    * `calls` — every bridge call attempted, as `(action, args)` in order (denied ones too);
      `calls_to(action)` lists the args of one action;
    * `errors` — `(action, code)` for each call that raised (denials, injected failures,
      server errors);
    * `emitted` — `(event, payload)` for each event the fake server emitted (whether caused by
      your app or by a helper such as `start_room`); `deliver()` hands the ones your app
      subscribes to back to it, as the host would;
    * `http_requests` — each outbound request as `{"method", "url", "headers", "body"}`;
    * `server` — the `FakeServer` (users, rooms, visitors, messages, store);
    * `app_user` — the app's own user (`app.<id>`, type `app`), created at install by the host;
    * `logs` — what the app printed.
    """

    # The operator's policy, applied by the fake gate (`use_policy`); None: not modelled.
    policy: PolicyCheck | None = None

    def __init__(
        self,
        manifest: dict[str, Any],
        modules: dict[str, str],
        *,
        grants: Iterable[str] | None = None,
        settings: Mapping[str, Any] | None = None,
        where: Path | None = None,
    ) -> None:
        self.manifest = _Manifest(manifest, where or Path(MANIFEST_NAME))
        self.app_id = self.manifest.app_id
        asked = set(self.manifest.permissions)
        chosen = asked if grants is None else set(grants)
        for g in chosen:
            if g not in PERMISSIONS:
                raise HarnessError(f"unknown permission {g!r}; known: {sorted(PERMISSIONS)}")
            if g not in asked:
                raise HarnessError(
                    f"grant {g!r} is not asked for in app.toml; the host never grants more than "
                    "the manifest asks (add a [[permission]] entry with a reason)")
        self.grants: frozenset[str] = frozenset(chosen)
        self.settings = self._settings(settings or {})
        self.now = 1_700_000_000.0
        self.server = FakeServer(self.app_id, self._tick, str(manifest.get("name", "")))
        self.app_user: dict[str, Any] = self.server.app_user
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.errors: list[tuple[str, str]] = []
        self.http_requests: list[dict[str, Any]] = []
        self.http_responder: HttpResponder | None = None
        self.http_domains: set[str] | None = None  # None: any host (policy is not modelled)
        self.rest_responder: RestResponder | None = None
        self.logs: list[str] = []
        self._failures: dict[str, deque[errors.StockadeError]] = {}
        self._quotas: dict[str, list[int]] = {}  # action -> [used, limit]
        self._delivered = 0
        # Handlers running now (a handler may fire another); the app's calls need one, as the
        # child refuses a call made after its event ended (sandbox/runtime.py `_Channel.call`).
        self._handling = 0
        self._refusals: list[float] = []  # times of refusals within the budget (DESIGN rule 13)
        self._admitted = False  # whether the call being decided passed to its admission
        # Why the host refuses every call of the hook running now (disable, uninstall).
        self._refusing: str | None = None
        self.app: App = load_app(modules, self.manifest.entry_module, self.manifest.entry_class)
        self._contexts()

    @classmethod
    def from_dir(
        cls,
        path: str | Path,
        grants: Iterable[str] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> AppHarness:
        """Read `path/app.toml` and `path/*.py` and load the app through the sandbox loader.

        `grants`: the permissions the operator granted (default: all the manifest asks for).
        `settings`: values for the manifest's settings (defaults fill the rest).
        Raises `sandbox.loader.LoadFailed` when RestrictedPython refuses a module.
        """
        folder = Path(path)
        try:
            text = (folder / MANIFEST_NAME).read_text(encoding="utf-8")
            deep = deepest_key(text, MAX_KEY_DOTS)  # as the host refuses it (its cost, there)
            if deep is not None:
                raise HarnessError(f"{folder / MANIFEST_NAME} line {deep[0]}: a dotted key or "
                                   f"table header nests deeper than {MAX_KEY_DOTS} levels")
            raw = tomllib.loads(text)
        except FileNotFoundError:
            raise HarnessError(f"no {MANIFEST_NAME} in {folder}") from None
        except tomllib.TOMLDecodeError as exc:
            raise HarnessError(f"{folder / MANIFEST_NAME} is not valid TOML: {exc}") from None
        modules = {p.stem: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.py"))}
        return cls(raw, modules, grants=grants, settings=settings, where=folder / MANIFEST_NAME)

    def _settings(self, given: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, spec in self.manifest.settings.items():
            if "default" in spec:
                out[key] = spec["default"]
        for key, value in given.items():
            out[key] = self.manifest.setting_value(key, value)
        missing = [k for k, s in self.manifest.settings.items() if s.get("required")
                   and out.get(k) in (None, "")]
        if missing:
            raise HarnessError(f"required setting(s) {missing} have no value; pass settings=")
        return out

    def _contexts(self) -> None:
        """`ctx` for the test's own calls; handlers get one whose calls need a running
        handler, as the confined child's do."""
        self.ctx = Context(self, self.app_id, self.settings, self.app_user["id"])
        self._app_ctx = Context(_HandlerTransport(self), self.app_id, self.settings,
                                self.app_user["id"])

    def _tick(self) -> float:
        self.now += 1.0
        return self.now

    # -- the fake gate (the Transport the bridges call) -------------------------------------

    def call(self, action: str, args: dict[str, Any]) -> Any:
        """The bridges' transport: check like the gate, then serve from the fake server."""
        self.calls.append((action, plain_copy(args) if _is_json(args) else dict(args)))
        try:
            result = self._gate(action, args)
        except errors.StockadeError as exc:
            self.errors.append((action, exc.code))
            if not self._admitted:  # a refusal before admission is charged to the budget too
                self._charge_refusal()
            raise
        return plain_copy(result)

    def _call_from_app(self, action: str, args: dict[str, Any]) -> Any:
        """A call from the app's code: refused, as the child refuses it, outside a handler."""
        if not self._handling:
            self.calls.append((action, plain_copy(args) if _is_json(args) else dict(args)))
            self.errors.append((action, errors.InvalidArgument.code))
            raise errors.outside_handler(action)
        return self.call(action, args)

    def _gate(self, action: str, args: dict[str, Any]) -> Any:
        spec = ACTIONS.get(action)
        if spec is None:
            raise errors.PermissionDenied(f"unknown action {action!r}")
        try:
            check_json_value(args)
        except ValueError as exc:
            raise errors.InvalidArgument(f"{action}: arguments are not plain data: {exc}") from None
        try:  # the child's own encoding of the call: one over a frame is never sent
            encode(frames.encode(frames.Call(id=1, action=action, args=dict(args))))
        except FrameError as exc:
            raise errors.InvalidArgument(f"{action}: arguments too large: {exc}") from None
        if self._refusing is not None:  # the install is disabled or gone (docs/EVENTS.md)
            raise errors.PermissionDenied(self._refusing)
        self._admitted = False
        reserved: list[str] = []
        # The gate's order: the grant (and the roles the manifest declared), the facts it looks
        # up (an unknown target user is NotFound there), then the engine's decision.
        problem = grant_refusal(self.app_id, self.grants, self.grants,
                                self.manifest.declared_roles, spec, args)
        if problem:
            raise errors.PermissionDenied(problem)
        facts = target_facts(self.server, self.app_user["id"], action, args)
        if self.policy is None:
            # The host always decides with a policy; what it refuses whatever the rules say
            # (arguments' shape, a role amounting to an action not granted) is refused here too.
            refused = unconditional_refusal(self.grants, Request(
                self.app_id, INSTALL_ID, action, dict(args), facts, self.now))
            if refused is not None:
                raise errors.PermissionDenied(f"{refused.message} [{refused.code}]")
            roles = [args["role"]] if "role" in args else list(args.get("roles") or [])
            admin = [r for r in roles if str(r).casefold() in ADMIN_CLASS_ROLES]
            if admin:
                raise errors.PermissionDenied(
                    f"guardrail: apps may never grant admin-class roles ({', '.join(admin)})")
            if action == "rest.call":
                route_refusal(args)  # routes no app may reach, whatever the rules
        elif action == "rest.call":
            try:
                reserved = decide_rest(self, args)  # as the gate's REST bridge decides it
            finally:
                self._admitted = False  # a users.get_by_username on the way admitted itself
        else:
            reserved = self.policy.check(
                self.app_id, self.grants, action, args,
                self.policy.facts(self.server, self.app_user["id"], action, args),
                self.now, lambda: seats_in_use(self.server))
        self._admitted = True
        queued = self._failures.get(action)
        quota = self._quotas.get(action)
        if not queued and quota is not None and quota[0] >= quota[1]:
            raise errors.QuotaExceeded(
                f"quota for {action} is full ({quota[1]} per window, set by the harness)")
        at = self.now
        try:
            if queued:
                raise queued.popleft()
            result = self._serve(action, args)
        except errors.StockadeError as exc:
            # Refused after admission: the host gives the units back for a refundable code,
            # while the refusal budget (which this refusal is charged to) has room.
            if exc.code in REFUNDABLE_ERRORS and self._charge_refusal() \
                    and self.policy is not None:
                self.policy.refund(reserved, at)
            raise
        if quota is not None:
            quota[0] += 1
        return result

    def _charge_refusal(self) -> bool:
        """Charge one refusal to the install's budget; False when it is full."""
        if not admit(self._refusals, REFUSAL_BUDGET, REFUSAL_WINDOW_S, self.now):
            return False
        self._refusals.append(self.now)
        return True

    def _serve(self, action: str, args: dict[str, Any]) -> Any:
        a = plain_copy(args)
        if action == "http.request":
            return self._http(**a)
        if action == "rest.call":
            if self.rest_responder is None:
                raise HarnessError("the app called rest.call: set harness.rest_responder = "
                                   "lambda method, route, body: {'status': 200, 'body': {...}}")
            answer = self.rest_responder(a["method"], a["route"], a.get("body"))
            if not (isinstance(answer, dict) and set(answer) == {"status", "body"}
                    and type(answer["status"]) is int):  # what the host's REST bridge answers
                raise HarnessError(f"rest_responder answered {repr(answer)[:80]}: the host "
                                   "answers rest.call {'status': <int>, 'body': <JSON>}")
            return answer
        method: Callable[..., Any] = getattr(self.server, action.replace(".", "_"))
        return method(**a)

    def _http(self, method: str, url: str, headers: dict[str, str] | None = None,
              body: str | None = None) -> dict[str, Any]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise errors.InvalidArgument("http.request needs an http(s) URL")
        host = (parts.hostname or "").lower()
        if self.http_domains is not None and host not in self.http_domains:
            raise errors.PermissionDenied(f"policy: domains: host {host!r} not listed")
        try:  # after the decision, before anything is sent, as the host (`policies.httprules`)
            method, sent_headers, _ = checked_request(method, headers, body)
        except RequestRefused as exc:
            raise errors.InvalidArgument(str(exc)) from None
        self.http_requests.append({"method": method, "url": url,
                                   "headers": dict(sent_headers), "body": body})
        if self.http_responder is None:
            raise HarnessError("the app made an HTTP request: set harness.http_responder = "
                               "lambda method, url, headers, body: (200, '{}')")
        answer = self.http_responder(method, url, dict(sent_headers), body)
        text = str(answer[1])
        if len(text.encode()) > MAX_RESPONSE_BYTES:  # the host's words and cap
            raise errors.InvalidArgument(f"response larger than {MAX_RESPONSE_BYTES} bytes")
        shaped = app_headers((str(k), str(v)) for k, v in dict(answer[2]).items()) \
            if len(answer) > 2 else {}
        return {"status": int(answer[0]), "headers": shaped, "body": text}

    # -- controlling the fake gate ------------------------------------------------------------

    def fail_next(self, action: str, error: errors.StockadeError | type[errors.StockadeError]
                  ) -> None:
        """Make the next call of `action` raise `error` (after the permission check, as a real
        quota or server failure would). Queue several by calling it several times."""
        if action not in ACTIONS:
            raise HarnessError(f"unknown action {action!r}")
        exc = error(f"{action} failed (injected by the harness)") if isinstance(error, type) \
            else error
        self._failures.setdefault(action, deque()).append(exc)

    def use_policy(self, *paths: str | os.PathLike[str]) -> AppHarness:
        """Apply the operator's real policy files (files or folders, as `stockade policy add`
        takes them) to every bridge call from now on; returns the harness for chaining.
        HarnessError when the host would refuse the files. `policy.dns[host]` sets what a host
        name resolves to (default: one public address)."""
        self.policy = PolicyCheck.load(*paths)
        return self

    def set_quota(self, action: str, limit: int) -> None:
        """Allow `limit` more successful calls of `action`, then raise QuotaExceeded."""
        if action not in ACTIONS:
            raise HarnessError(f"unknown action {action!r}")
        self._quotas[action] = [0, limit]

    def calls_to(self, action: str) -> list[dict[str, Any]]:
        """The args of every attempted call of `action`, in order."""
        return [args for name, args in self.calls if name == action]

    def actions(self) -> list[str]:
        """The action names of every attempted call, in order."""
        return [name for name, _ in self.calls]

    # -- events and lifecycle ---------------------------------------------------------------

    def fire(self, event: str, payload: Mapping[str, Any] | None = None) -> Any:
        """Deliver `event` to the app's handler and return what it returned.

        Refuses (HarnessError) what the host would never deliver: an event not listed in
        app.toml's `events`, or one whose needed permissions were not granted. Exceptions from
        the handler propagate to your test unchanged.
        """
        spec = EVENTS.get(event)
        if spec is None:
            raise HarnessError(f"unknown event {event!r}; known: {sorted(EVENTS)}")
        if event not in self.manifest.events:
            raise HarnessError(f"app.toml does not list {event!r} in `events`: "
                               "the host would never deliver it")
        keys = [k for k, _ in spec.payload]
        unknown = [k for k in (payload or {}) if k not in keys]
        if unknown:  # a handler reading it passes here and raises KeyError in the host
            raise HarnessError(f"{event!r} payloads have no key {repr(unknown[0])[:60]} (the "
                               f"host sends {', '.join(keys)}; see docs/EVENTS.md)")
        missing = [p for p in spec.needs if p not in self.grants]
        if missing:
            raise HarnessError(f"{event!r} needs {missing}, not granted: the host would not "
                               "deliver it")
        why = self._policy_keeps(event)
        if why is not None:
            raise HarnessError(f"the host would not deliver {event!r} under this policy: {why}")
        hidden = withheld(self.policy, self.app_id, self.grants, event)  # None, as the host
        result = self._run(handler_name(event), strip(dict(payload or {}), hidden), required=True)
        problem = verdict_problem(result) if spec.pre else None
        if problem is not None:  # the host notes it in the app's log and ignores it
            raise HarnessError(problem)
        return result

    def _run(self, name: str, payload: Mapping[str, Any], *, required: bool) -> Any:
        method = getattr(self.app, name, None)
        if method is None:
            if required:
                raise HarnessError(f"the app class has no handler {name}(self, ctx, event)")
            return None
        check_json_value(dict(payload))
        previous = CappedPrint.sink
        CappedPrint.sink = lambda text, dropped: self.logs.append(text)
        reset_print_budget()
        self._handling += 1
        try:
            result = method(self._app_ctx, plain_copy(dict(payload)))
        finally:
            self._handling -= 1
            flush_prints()
            CappedPrint.sink = previous
        try:
            check_json_value(result)
            size = len(frames.encode_value(result))  # the child's encoder: the child's size
        except frames.EncodeError as exc:
            raise HarnessError(f"{name} returned data that is not plain JSON: {exc}") from None
        if size > MAX_RESULT_BYTES:
            raise HarnessError(f"{name}: {result_too_large(size)} (the host fails the event)")
        return result

    def deliver(self, limit: int = 100) -> list[tuple[str, Any]]:
        """Fire, in order, every emitted event not yet delivered that the app subscribes to
        (including events its handlers cause meanwhile). Returns `(event, result)` pairs."""
        out: list[tuple[str, Any]] = []
        while self._delivered < len(self.server.emitted):
            if len(out) >= limit:
                raise HarnessError(f"more than {limit} events delivered: an event loop?")
            name, payload = self.server.emitted[self._delivered]
            self._delivered += 1
            if name in self.manifest.events and all(p in self.grants for p in EVENTS[name].needs) \
                    and self._policy_keeps(name) is None:
                out.append((name, self.fire(name, payload)))
        return out

    def _policy_keeps(self, event: str) -> str | None:
        """Why the loaded policy (`use_policy`) keeps `event` from the app, as the host would."""
        return None if self.policy is None else self.policy.event_refused(
            self.app_id, self.grants, event)

    @property
    def emitted(self) -> list[tuple[str, dict[str, Any]]]:
        return self.server.emitted

    def skip_emitted(self) -> None:
        """Mark every event emitted so far as delivered (e.g. after test set-up)."""
        self._delivered = len(self.server.emitted)

    def lifecycle(self, hook: str, event: Mapping[str, Any] | None = None) -> Any:
        """Call `on_<hook>` if the app defines it (hooks are optional), with
        `{"hook": hook, **event}` as the host does."""
        if hook not in LIFECYCLE_HOOKS:
            raise HarnessError(f"unknown lifecycle hook {hook!r}; known: {LIFECYCLE_HOOKS}")
        return self._run(f"on_{hook}", {"hook": hook, **(event or {})}, required=False)

    def install(self) -> Any:
        return self.lifecycle("install")

    def enable(self) -> Any:
        return self.lifecycle("enable")

    def disable(self, reason: str | None = None) -> Any:
        """Call `on_disable` (with `reason` when given); the host refuses its bridge calls:
        the install is no longer enabled."""
        return self._refused_hook("disable", {"reason": reason} if reason else {},
                                  f"app {self.app_id!r} is disabled")

    def update(self, version: str | None = None, diff: Mapping[str, Any] | None = None) -> Any:
        """Call `on_update` with `version` (default: app.toml's) and the permission `diff` the
        host computed (default: an update that kept every grant and changed nothing else)."""
        new = str(version or self.manifest.raw.get("version", "0.0.0"))
        return self.lifecycle("update", {"version": new,
                                         "diff": dict(diff) if diff is not None
                                         else unchanged_diff(new, self.grants)})

    def uninstall(self, users: str = "keep") -> Any:
        """Call `on_uninstall` with `users` ("keep" or "deactivate", the operator's choice);
        the host refuses its bridge calls (the install is gone). Then drop the app's stored
        data, and with "deactivate" deactivate the users it created, as the host does."""
        if users not in ("keep", "deactivate"):
            raise HarnessError("users must be 'keep' or 'deactivate'")
        result = self._refused_hook("uninstall", {"users": users},
                                    f"app {self.app_id!r} is no longer installed")
        self.server.store.clear()
        if users == "deactivate":
            for u in self.server.users.values():
                if u.get("created_by_app") == self.app_id:
                    u["active"] = False
        return result

    def _refused_hook(self, hook: str, event: Mapping[str, Any], why: str) -> Any:
        self._refusing = why
        try:
            return self.lifecycle(hook, event)
        finally:
            self._refusing = None

    def change_settings(self, **values: Any) -> Any:
        """Change settings (checked against app.toml) and call `on_settings_changed` with
        `{"hook": "settings_changed", "keys": [names]}`, as the host does (names only)."""
        self.settings = self._settings({**self.settings, **values})
        self._contexts()
        return self.lifecycle("settings_changed", {"keys": sorted(values)})


class _HandlerTransport:
    """The transport of the context handlers receive (see `AppHarness._call_from_app`)."""

    __slots__ = ("_harness",)

    def __init__(self, harness: AppHarness) -> None:
        self._harness = harness

    def call(self, action: str, args: dict[str, Any]) -> Any:
        return self._harness._call_from_app(action, args)


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
