"""Installing an app from the console: upload, the disclosure, per-permission consent.

The same steps and checks as `stockade app install` (host/cli/app_cmd.py), in two requests:

1. `POST /console/install` takes the uploaded package, validates it fully (`read_package`), checks
   its signature against the trusted publishers, builds the disclosure against the home's policy,
   and keeps the package server-side under a random id bound to the operator's session; the page
   shows the disclosure (author text inert) with a box per permission, none ticked.
2. `POST /console/install/confirm` installs with exactly the ticked grants (`install_package`,
   which signs the consent and writes the audited `operator.install` record, with the console
   user as actor). An unsigned or untrusted package needs "I accept an unsigned package" ticked;
   a package from another publisher than the one the app id is bound to needs the transfer box;
   admin-class roles in the manifest refuse the install whatever is ticked (DESIGN rule 10).
"""
from __future__ import annotations

import secrets
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from host.apps.consent import guardrail_problems
from host.apps.disclosure import Disclosure, build_disclosure, load_policy_view
from host.apps.installs import InstallError, InstallRecord, InstallStore
from host.apps.lineage import Lineage, LineageError, binding_of, describe, needs_transfer
from host.apps.operations import install_package
from host.apps.package_rules import MAX_ARCHIVE_BYTES
from host.apps.packages import Package, PackageError, read_package
from host.apps.publisher import PublisherError, SignatureCheck, TrustStore, check_signature
from host.clock import SystemClock
from host.console.faults import store_busy
from host.home import Home
from host.inert import visible
from host.keys.keyring import KeyError_
from host.store import STORE_FAILURES, StoreError

# How long an uploaded package waits for its consent. Guards: memory held by abandoned uploads.
PENDING_S = 15 * 60
# Uploads waiting at once. Guards: memory (each is at most MAX_ARCHIVE_BYTES).
MAX_PENDING = 32


class Refused(Exception):
    """The upload or the consent is refused; the message says why, in one line. `status`: the
    HTTP status of the page that says it."""

    status = 400


class Changed(Refused):
    """What the consent page showed is no longer so (the app installed meanwhile, from another
    tab or by another operator; its publisher reads differently): nothing was installed, 409,
    as a settings page read before another operator's change."""

    status = 409


class Unavailable(Refused):
    """The host's store cannot be used now (another process holds it, it is unreachable): 503,
    saying so, never a 500 with its connection reset."""

    status = 503


@dataclass
class Upload:
    owner: str  # the console user who uploaded it
    pkg: Package
    sig: SignatureCheck
    disclosure: Disclosure
    bound_to: str | None  # the publisher the app id is bound to, when not this package's
    guardrails: list[str]
    at: float


class Uploads:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, Upload] = {}

    def add(self, up: Upload) -> str:
        token = secrets.token_urlsafe(24)
        with self._lock:
            now = time.monotonic()
            for k in [k for k, u in self._by_id.items() if now - u.at > PENDING_S]:
                del self._by_id[k]
            if len(self._by_id) >= MAX_PENDING:
                self._by_id.pop(next(iter(self._by_id)))
            self._by_id[token] = up
        return token

    def take(self, token: str, owner: str) -> Upload:
        with self._lock:
            up = self._by_id.get(token)
            if up is None or up.owner != owner or time.monotonic() - up.at > PENDING_S:
                raise Refused("that upload is gone (it waits 15 minutes); upload it again")
            del self._by_id[token]
        return up


def read_upload(data: bytes) -> Package:
    """An uploaded package, validated as fully as `read_package` validates a file."""
    if len(data) > MAX_ARCHIVE_BYTES:
        raise Refused(f"the package is larger than {MAX_ARCHIVE_BYTES} bytes")
    with tempfile.TemporaryDirectory(prefix="stockade-upload-") as tmp:
        path = Path(tmp) / "upload.zip"
        path.write_bytes(data)
        try:
            return read_package(path)
        except PackageError as exc:
            raise Refused(f"not a valid app package: {exc}") from None


def examine(home: Home, data: bytes, owner: str) -> Upload:
    """Validate an uploaded package and build what its consent page shows."""
    try:
        _usable_now(home)
        return _examine(home, data, owner)
    except KeyError_ as exc:
        raise Unavailable(f"{_keyring_why(exc)}: nothing was installed") from None
    except STORE_FAILURES as exc:
        raise Unavailable(f"the host's store cannot be used now ({visible(exc)}): nothing was "
                          "installed; upload it again in a moment") from None


def _usable_now(home: Home) -> None:
    """Raise when another process holds the store past `faults.STORE_WAIT_S`: said within
    that, not after the store's own 10 s wait for the lock."""
    busy = store_busy(home)
    if busy is not None:
        raise StoreError(busy.removeprefix("the host's store cannot be used now: "))


def _keyring_why(exc: BaseException) -> str:
    return (f"the host's keyring does not read ({visible(exc)}); `stockade doctor` says "
            "what is wrong with it")


def _examine(home: Home, data: bytes, owner: str) -> Upload:
    pkg = read_upload(data)
    if home.has_host_store():
        with InstallStore(home.host_store) as store:
            if store.by_app(pkg.app_id) is not None:
                raise Refused(f"app {pkg.app_id!r} is already installed; update it with "
                              "`stockade app update`")
    try:
        sig = check_signature(pkg, TrustStore(home.trust_dir))
    except PublisherError as exc:
        raise Refused(str(exc)) from None
    from host.gate.rest_routes import route_actions  # the gate's table, as the CLI passes it

    policy, _why = load_policy_view(home.policies_dir)
    disclosure = build_disclosure(pkg.manifest, pkg.content_hash, sig, policy,
                                  route_actions=route_actions)
    bound = Lineage(home.host_store).bound(pkg.app_id) if home.has_host_store() else None
    new = binding_of(sig.to_dict())
    return Upload(owner, pkg, sig, disclosure,
                  describe(bound) if bound is not None and needs_transfer(bound, new, fresh=True)
                  else None,
                  guardrail_problems(pkg.manifest), time.monotonic())


def confirm(home: Home, up: Upload, grants: list[str], *, allow_unsigned: bool,
            transfer: bool, actor: str) -> InstallRecord:
    """Install with exactly `grants` (a subset of what the package asks for)."""
    try:
        _usable_now(home)
        return _confirm(home, up, grants, allow_unsigned=allow_unsigned, transfer=transfer,
                        actor=actor)
    except KeyError_ as exc:  # read before the install's one transaction: none was made
        raise Unavailable(f"{_keyring_why(exc)}: nothing was installed") from None
    except STORE_FAILURES as exc:
        # An install is one transaction (its row, consent and id binding): it is there whole
        # or not at all, and the store that failed here cannot say which; the Apps page can.
        raise Unavailable(f"the host's store cannot be used now ({visible(exc)}): the install "
                          "is all or nothing, and the Apps page shows whether it was made; if "
                          "not, upload the package again in a moment") from None


def _confirm(home: Home, up: Upload, grants: list[str], *, allow_unsigned: bool,
             transfer: bool, actor: str) -> InstallRecord:
    if up.guardrails:
        raise Refused("this package cannot be consented to: " + "; ".join(up.guardrails))
    _not_installed_meanwhile(home, up)
    asked = up.pkg.manifest.asked
    unknown = sorted(set(grants) - asked)
    if unknown:
        raise Refused(f"not asked for by the package: {', '.join(unknown)}")
    # The signature as the trust store reads it now, not at the upload: a publisher untrusted
    # (`keys untrust`, its key leaked) during the review no longer vouches for the package.
    try:
        sig = check_signature(up.pkg, TrustStore(home.trust_dir))
    except PublisherError as exc:
        raise Refused(str(exc)) from None
    if sig.to_dict() != up.sig.to_dict():
        raise Changed(f"the package's publisher reads differently since it was reviewed (now: "
                      f"{sig.status}): upload it again to review it as it stands")
    if sig.status != "trusted" and not allow_unsigned:
        raise Refused("the package is not signed by a trusted publisher: tick \"I accept an "
                      "unsigned package\" only if you accept code nobody you trust vouches for")
    if up.bound_to is not None and not transfer:
        raise Refused(f"app id {up.pkg.app_id!r} belongs to {up.bound_to}: a different "
                      "publisher's package is a different app unless you transfer it")
    try:
        return install_package(home.ensure(), up.pkg, sig, frozenset(grants),
                               policy_revision=up.disclosure.policy_revision,
                               clock=SystemClock(), transfer=transfer, actor=actor)
    except (InstallError, LineageError) as exc:
        # Installed between the check above and the write: said as such, never as the
        # lineage's "a different app" (an unsigned package's id is bound by its first install).
        _not_installed_meanwhile(home, up)
        raise Refused(str(exc)) from None


def _not_installed_meanwhile(home: Home, up: Upload) -> None:
    """Changed when app `up` is installed now: the upload checked it was not (`examine`)."""
    if not home.has_host_store():
        return
    with InstallStore(home.host_store) as store:
        now = store.by_app(up.pkg.app_id)
    if now is not None:
        raise Changed(f"app {up.pkg.app_id!r} was installed meanwhile (version {now.version}, "
                      "from another page or by another operator): nothing was installed; see "
                      "it on the Apps page, or update it there")

