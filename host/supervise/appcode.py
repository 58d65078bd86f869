"""The code a child loads at start: the stored package's modules, checked on every start against
the package hash the operator consented to.

The consent signs the package's content hash (`host.apps.consent`), and the install record
carries it; the package itself is a file in the home (`packages/<hash>/package.zip`). Reading
that file and loading whatever it holds would let anyone who can replace it run code the
operator never saw, with the grants given to other code. So each start hashes what it read and
refuses a mismatch: the install is disabled as tampered, as a record that fails its consent
check is.

Parsing and validating a zip costs ~0.4 ms, a tenth of a cold start, and a package never
changes once stored. The parsed modules are therefore kept by the SHA-256 of the zip's bytes:
a start still reads and hashes the file, so a replaced file is a different key and is parsed
and checked afresh, never served from the cache.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from host.apps.installs import InstallRecord
from host.apps.loadfit import modules_of
from host.apps.package_sources import read_zip_bytes
from host.apps.packages import Package, package_from_zip, read_package

# Distinct packages whose parsed modules are kept. Bounds host memory (a package's sources are
# at most a few hundred KiB) while covering every install of a large workspace.
CACHE_MAX = 256


class PackageTampered(Exception):
    """The stored package does not hash to the one the operator consented to."""


def _modules(pkg: Package) -> dict[str, str]:
    """The package's top-level Python modules, by module name: what a start sends, and what
    the package checks measured (`loadfit.modules_of`)."""
    return modules_of(pkg.files)


class AppCode:
    """Modules of stored packages, kept per zip digest (see the module docstring)."""

    def __init__(self, limit: int = CACHE_MAX) -> None:
        self.limit = limit
        self._cache: OrderedDict[str, tuple[str, dict[str, str]]] = OrderedDict()
        self._lock = threading.Lock()

    def modules(self, rec: InstallRecord) -> dict[str, str]:
        """The modules of `rec`'s package; raises PackageTampered (or PackageError for an
        unreadable one) when the package is not the consented one."""
        path = rec.package_path
        if path.is_dir():  # an author's folder (never what an install stores): no cache
            pkg = read_package(path)
            content_hash, modules = pkg.content_hash, _modules(pkg)
        else:
            raw = read_zip_bytes(path)
            key = hashlib.sha256(raw).hexdigest()
            with self._lock:
                hit = self._cache.get(key)
                if hit is not None:
                    self._cache.move_to_end(key)
            if hit is None:
                pkg = package_from_zip(raw, str(path))
                hit = (pkg.content_hash, _modules(pkg))
                with self._lock:
                    self._cache[key] = hit
                    while len(self._cache) > self.limit:
                        self._cache.popitem(last=False)
            content_hash, modules = hit
        if content_hash != rec.package_hash:
            raise PackageTampered(
                f"{rec.app_id}: its stored package ({path}) is not the one consented to "
                f"(content hash {content_hash[:16]}…, consented {rec.package_hash[:16]}…)")
        return dict(modules)
