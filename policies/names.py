"""Canonical forms of role names, hosts and REST routes, so look-alikes cannot slip past a list.

A role or host is compared only in its canonical form. Anything that is not already canonical
in a *request* is refused rather than normalised and passed on: the server must never see a
spelling the engine did not decide on.
"""
from __future__ import annotations

import re
import unicodedata

from policies.routes import API_PREFIX, below_prefix
from policies.vocabulary import ADMIN_CLASS_ROLES

# Canonical role name. Guards: ASCII only after NFKC + casefold, so Cyrillic "а", full-width
# letters, zero-width characters and case variants can never equal or dodge a listed role.
ROLE_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

# Canonical DNS host name (already lower case, no trailing dot). Guards: IDN look-alikes must be
# written as punycode; no userinfo, spaces or other URL confusion characters can be part of it.
_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
HOST_RE = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")

# A REST route: absolute, plain ASCII path segments. Guards: no "..", "//", "%", "?", "#" tricks
# that a server might resolve to a route the allow list does not name.
ROUTE_RE = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def normalize_role(name: str) -> str | None:
    """NFKC + casefold; None when the result is not a canonical ASCII role name."""
    norm = unicodedata.normalize("NFKC", name).casefold()
    if not norm.isascii() or ROLE_RE.fullmatch(norm) is None:
        return None
    return norm


def is_admin_class(norm_role: str) -> bool:
    """True for the built-in admin-class roles (DESIGN rule 10); input must be normalised."""
    return norm_role in ADMIN_CLASS_ROLES


# User types that are no person: a bot user, an app's own user.
NOT_A_PERSON = frozenset({"bot", "app"})


def person_not_made_by(user_type: str, created_by: str | None, app_id: str) -> bool:
    """Whether a user of `user_type`, made by the app `created_by` names (None: by none), is a
    person app `app_id` did not create: one no app may give a role that impersonates (both
    servers, `host.server.impersonation`, and the author harness decide with this)."""
    return user_type not in NOT_A_PERSON and created_by != app_id


def impersonation_refused(role: str) -> str:
    """Why an app may not give `role`, which lets its holder post under another name, to a
    person it did not create: the words both servers and the author harness refuse it with."""
    return (f"the role {role!r} lets its holder post under another name (message-impersonate): "
            "an app gives it only to bot users and users it created, never to another person")


def normalize_route(method: str, route: str) -> str | None:
    """"METHOD /api/v1/<route below the prefix>", or None if either part is not plain.

    The server's REST dispatcher reads a route below its /api/v1/ prefix whether the prefix is
    given or not (`host.server.rest.normalize_route`, `policies.routes.below_prefix`), so both
    spellings are one route here too. Guards: a forbid of `GET /api/v1/rooms.get` that the
    app dodged by calling `/rooms.get`, the same route, under a permit listing both."""
    m = method.upper()
    if m not in HTTP_METHODS or ROUTE_RE.fullmatch(route) is None:
        return None
    if any(seg in (".", "..") for seg in route.split("/")):
        return None
    return f"{m} {API_PREFIX}{below_prefix(route)}"


def parse_route_entry(entry: str) -> str | None:
    """Canonical form of a `rest_routes` list entry "GET /api/v1/users.info" (None if invalid)."""
    parts = entry.split()
    if len(parts) != 2:
        return None
    return normalize_route(parts[0], parts[1])


# Ports a `domains` entry that names none reaches in a permit: the web's own. Guards: a rule
# written for one web API reaching every other service on that host (a database, an admin
# console on :8080); any other port is named ("host:8443"), or all of them ("host:*").
WEB_PORTS = frozenset({80, 443})
_PORT_RE = re.compile(r"^[1-9][0-9]{0,4}$")


def normalize_host_pattern(entry: str) -> str | None:
    """A host name, or "*.suffix" (any sub-domain, not the suffix itself); no port."""
    e = entry.strip().lower().rstrip(".")
    if e.startswith("*."):
        rest = e[2:]
        return e if HOST_RE.fullmatch(rest) and "." in rest else None
    return e if HOST_RE.fullmatch(e) else None


def normalize_domain_pattern(entry: str) -> str | None:
    """A `domains` entry: a host pattern, optionally ":port" or ":*" (every port)."""
    name, sep, port = entry.strip().partition(":")
    host = normalize_host_pattern(name)
    if host is None:
        return None
    if not sep:
        return host
    if port == "*":
        return f"{host}:*"
    if _PORT_RE.fullmatch(port) is None or int(port) > 65535:
        return None
    return f"{host}:{int(port)}"


def host_matches(host: str, pattern: str) -> bool:
    """Does canonical `host` match a canonical host pattern (no port)? Label boundaries only."""
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def endpoint_matches(host: str, port: int, pattern: str, *, portless_is_any: bool) -> bool:
    """Does host:port match a canonical `domains` entry? An entry with no port means the web
    ports (WEB_PORTS) in a permit, and every port in a forbid (`portless_is_any`): a forbid
    only ever gets broader."""
    name, sep, want = pattern.partition(":")
    if not host_matches(host, name):
        return False
    if not sep:
        return portless_is_any or port in WEB_PORTS
    return want == "*" or port == int(want)
