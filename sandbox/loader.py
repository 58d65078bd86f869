"""Load an app's modules (already-received source text) into restricted module namespaces."""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sandbox.api import App
from sandbox.restricted import (
    CompileFailed,
    Facade,
    allowed_modules,
    check_app_module_names,
    compile_module,
    make_globals,
    run_module,
)

# App module names: plain identifiers (no packages, no dunder names), so a module name can never
# reach a file path or shadow a sandbox facade by a dotted trick.
_MODULE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_CLASS_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


class LoadFailed(Exception):
    """The app could not be loaded (compile error, bad entry, exception at import)."""


def module_name_problem(name: str) -> str | None:
    """Why `load_app` would refuse an app module called `name`, or None.

    The host asks this of every top-level `.py` file when it reads a package, so a package whose
    module the child can never load is refused at install, not installed to fail at every start."""
    if not _MODULE_NAME.fullmatch(name):
        return "module names are lowercase letters, digits and '_', a letter first, at most 40"
    if name in allowed_modules():
        return f"{name!r} is the name of a module the sandbox provides, which it would shadow"
    return None


def load_app(modules: dict[str, str], entry_module: str, entry_class: str) -> App:
    """Compile every module with RestrictedPython and instantiate the entry class."""
    for name in modules:
        if not _MODULE_NAME.fullmatch(name):
            raise LoadFailed(f"invalid module name {name!r}")
    if entry_module not in modules:
        raise LoadFailed(f"entry module {entry_module!r} is not in the package")
    if not _CLASS_NAME.fullmatch(entry_class):
        raise LoadFailed(f"invalid entry class name {entry_class!r}")
    namespaces: dict[str, dict[str, Any]] = {}
    loading: set[str] = set()
    # This app's modules, bound into each of its modules' builtins: a fresh table per load, so
    # two apps loaded into one interpreter (the author harness) never import each other's.
    loaders: dict[str, Callable[[], Facade]] = {}

    def make_loader(name: str) -> Callable[[], Facade]:
        def load() -> Facade:
            if name not in namespaces:
                if name in loading:
                    raise ImportError(f"circular import of app module {name!r}")
                loading.add(name)
                try:
                    code = compile_module(modules[name], f"{name}.py")
                    glb = make_globals(name, loaders)
                    run_module(code, glb)
                finally:
                    loading.discard(name)
                namespaces[name] = glb
            glb = namespaces[name]
            return Facade(name, {k: v for k, v in glb.items() if not k.startswith("_")})

        return load

    try:
        loaders.update({name: make_loader(name) for name in modules})
        check_app_module_names(loaders)
        entry = make_loader(entry_module)()
    except CompileFailed as exc:
        raise LoadFailed(f"compile failed: {exc}") from None
    cls = getattr(entry, entry_class, None)
    if cls is None:  # a misspelt `entry`: said as such, not as a class with the wrong bases
        raise LoadFailed(f"{entry_module}.py defines no top-level {entry_class!r} (app.toml's "
                         f"entry = \"{entry_module}:{entry_class}\")")
    if not (isinstance(cls, type) and issubclass(cls, App)):
        raise LoadFailed(f"{entry_module}.{entry_class} is not a subclass of stockade.App")
    return cls()
