"""Compiling and running app source with RestrictedPython, with strict guards.

This is one wall, not the wall (DESIGN rule 5): everything here runs inside a child the OS has
already confined. What this layer guarantees on its own:

* names and attributes starting with `_` are refused at compile time and at run time, as are
  the frame/code/generator inspection attributes and `format`/`format_map`/`mro` (the
  format-string lookup escape);
* an attribute lookup never yields a module, frame, code object or traceback;
* writes go only to containers and to instances of classes the app itself defined (no
  pass-through write guard);
* `import` reaches only an allow-list, and returns small facades with allow-listed attributes,
  never a real module object;
* no `open`, `eval`, `exec`, `compile`, `type`, `vars`, `globals`, `getattr` without the guard,
  `__import__` or any other builtin outside a curated list.
"""
from __future__ import annotations

import ast
import base64
import collections
import datetime
import functools
import hashlib
import itertools
import json
import math
import operator
import random
import re
import string
import time
import types
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from RestrictedPython.compile import compile_restricted_exec
from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence
from RestrictedPython.transformer import INSPECT_ATTRIBUTES, RestrictingNodeTransformer

# Attribute names refused whatever the object, on top of every name starting with "_".
# `format`/`format_map` reach attributes by name from a format string; `mro` walks the type
# hierarchy; the rest are the frame/code/generator internals RestrictedPython also lists.
DENIED_ATTRIBUTES: frozenset[str] = frozenset(INSPECT_ATTRIBUTES) | {
    "format", "format_map", "mro", "func_globals", "func_code", "f_lasti", "f_lineno",
    "tb_lasti", "tb_lineno", "co_consts", "co_names", "gi_running", "cr_running",
}

# Values an attribute lookup may never hand back: each is a door to the interpreter's state.
_FORBIDDEN_VALUE_TYPES: tuple[type, ...] = (
    types.ModuleType, types.FrameType, types.CodeType, types.TracebackType,
)

# Caps on print() output kept in the child before it is flushed to the host as a log frame;
# they bound the child's memory under an output flood (the host caps what it keeps again, per
# event: `host.supervise.logcap`, the same 1 MiB).
PRINT_FLUSH_BYTES = 32 * 1024
PRINT_TOTAL_CAP = 1 << 20


class SandboxViolation(Exception):
    """App code tried something the restricted layer refuses."""


# Classes the app's own code defined: the only classes (and instances) it may write to.
_app_classes: weakref.WeakSet[type] = weakref.WeakSet()
# Classes of the app-facing API an app may subclass but never write to (App): a write onto one
# would reach every app that shares it (in the author harness, several apps share a process).
_app_bases: weakref.WeakSet[type] = weakref.WeakSet()


def _is_app_object(obj: object) -> bool:
    cls = obj if isinstance(obj, type) else type(obj)
    return cls in _app_classes


def guarded_getattr(obj: Any, name: str, *default: Any) -> Any:
    """The only attribute read app code can do."""
    # Exactly str, not a subclass: a subclass could override startswith/__eq__/__hash__ and
    # pass the checks below while getattr() uses its real characters.
    if type(name) is not str:
        raise SandboxViolation("attribute names must be plain strings")
    if name.startswith("_") or name in DENIED_ATTRIBUTES:
        raise SandboxViolation(f"attribute {name!r} is not accessible in the sandbox")
    if isinstance(obj, _FORBIDDEN_VALUE_TYPES):
        raise SandboxViolation("this object is not accessible in the sandbox")
    try:
        value = getattr(obj, name)
    except AttributeError:
        if default:
            return default[0]
        raise
    if isinstance(value, _FORBIDDEN_VALUE_TYPES):
        raise SandboxViolation(f"attribute {name!r} is not accessible in the sandbox")
    return value


# Containers app code may write items into: they only ever hold the app's own data (no host
# object exists in the child, and the interpreter's own dicts are behind "_" names).
_WRITABLE_CONTAINERS = (dict, list, set, bytearray, collections.deque)


def guarded_write(obj: Any) -> Any:
    """Allow attribute/item writes on containers and on the app's own objects only."""
    if isinstance(obj, _WRITABLE_CONTAINERS):
        return obj
    if _is_app_object(obj):
        return obj
    raise SandboxViolation(f"cannot modify an object of type {type(obj).__name__!r}")


def guarded_setattr(obj: Any, name: str, value: Any) -> None:
    if type(name) is not str or name.startswith("_"):
        raise SandboxViolation("attribute names starting with '_' cannot be set")
    setattr(guarded_write(obj), name, value)


def guarded_delattr(obj: Any, name: str) -> None:
    if type(name) is not str or name.startswith("_"):
        raise SandboxViolation("attribute names starting with '_' cannot be deleted")
    delattr(guarded_write(obj), name)


def _getitem(obj: Any, key: Any) -> Any:
    value = obj[key]
    if isinstance(value, _FORBIDDEN_VALUE_TYPES):
        raise SandboxViolation("this object is not accessible in the sandbox")
    return value


def _apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return func(*args, **kwargs)


_INPLACE: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
    "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow,
    "<<=": operator.ilshift, ">>=": operator.irshift, "&=": operator.iand,
    "|=": operator.ior, "^=": operator.ixor, "@=": operator.imatmul,
}


def _inplacevar(op: str, x: Any, y: Any) -> Any:
    fn = _INPLACE.get(op)
    if fn is None:
        raise SandboxViolation(f"operator {op!r} is not allowed")
    return fn(x, y)


class _ClassMaker:
    """Stands in for the metaclass of every class the app defines; records app classes."""

    def __call__(self, name: str, bases: tuple[type, ...], ns: dict[str, Any]) -> type:
        for base in bases:
            if not isinstance(base, type):
                raise SandboxViolation("class bases must be classes")
            if type(base) is not type and base not in _app_classes and base not in _app_bases:
                # a base with a custom metaclass would run that metaclass's code on our behalf
                raise SandboxViolation(f"cannot subclass {base.__name__!r} in the sandbox")
        cls = type(name, bases, ns)
        _app_classes.add(cls)
        return cls


def register_app_base(cls: type) -> None:
    """Mark a class of the app-facing API as subclassable by apps (e.g. App); it stays
    read-only to them (attribute writes and deletes on it are refused)."""
    _app_bases.add(cls)


class CappedPrint:
    """RestrictedPython's print target: buffers output, flushes through `sink`, caps the total."""

    sink: Callable[[str, bool], None] | None = None

    def __init__(self, _getattr_: Any = None) -> None:
        self._parts: list[str] = []
        self._size = 0

    def write(self, text: str) -> None:
        state = _print_state
        if state["total"] >= PRINT_TOTAL_CAP:
            state["dropped"] = True
            return
        room = PRINT_TOTAL_CAP - state["total"]
        if len(text) > room:
            text = text[:room]
            state["dropped"] = True
        state["total"] += len(text)
        self._parts.append(text)
        self._size += len(text)
        if self._size >= PRINT_FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._parts and CappedPrint.sink is not None:
            CappedPrint.sink("".join(self._parts), bool(_print_state["dropped"]))
        self._parts.clear()
        self._size = 0

    def _call_print(self, *objects: Any, **kwargs: Any) -> None:
        sep = kwargs.get("sep", " ")
        end = kwargs.get("end", "\n")
        if not isinstance(sep, str) or not isinstance(end, str):
            raise TypeError("sep and end must be strings")
        self.write(sep.join(str(o) for o in objects) + end)
        _open_printers.add(self)

    def __call__(self) -> str:
        return "".join(self._parts)


_print_state: dict[str, Any] = {"total": 0, "dropped": False}
# Printers with unflushed output. Strong references: a module's printer is garbage once its
# code finishes, and its output must still reach the host.
_open_printers: set[CappedPrint] = set()


def flush_prints() -> None:
    if not _open_printers:
        return  # the usual case: the handler printed nothing (no list built per event)
    for printer in list(_open_printers):
        printer.flush()
    _open_printers.clear()


def reset_print_budget() -> None:
    _print_state["total"] = 0
    _print_state["dropped"] = False


class Facade:
    """A module stand-in holding only allow-listed attributes (never a real module)."""

    __slots__ = ("_attrs", "_name")

    def __init__(self, name: str, attrs: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_attrs", dict(attrs))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._attrs[name]
        except KeyError:
            raise AttributeError(f"module {self._name!r} has no attribute {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise SandboxViolation("modules are read-only in the sandbox")

    def __dir__(self) -> Iterable[str]:
        return sorted(self._attrs)

    def __repr__(self) -> str:
        return f"<sandbox module {self._name!r}>"


def _pick(mod: Any, names: Iterable[str]) -> dict[str, Any]:
    return {n: getattr(mod, n) for n in names}


def _vetted_modules() -> dict[str, Facade]:
    """The pure standard modules an app may import, each reduced to what apps need."""
    return {
        "math": Facade("math", _pick(math, [
            n for n in dir(math) if not n.startswith("_")])),
        "json": Facade("json", {"dumps": json.dumps, "loads": json.loads}),
        "re": Facade("re", _pick(re, [
            "compile", "match", "fullmatch", "search", "sub", "subn", "split", "findall",
            "escape", "IGNORECASE", "MULTILINE", "DOTALL", "ASCII", "VERBOSE", "I", "M", "S",
            "X", "A", "error"])),
        "datetime": Facade("datetime", _pick(datetime, [
            "date", "datetime", "time", "timedelta", "timezone", "MINYEAR", "MAXYEAR"])),
        "time": Facade("time", _pick(time, ["time", "monotonic", "sleep", "gmtime",
                                            "strftime"])),
        "string": Facade("string", _pick(string, [
            "ascii_letters", "ascii_lowercase", "ascii_uppercase", "digits", "hexdigits",
            "octdigits", "punctuation", "whitespace", "printable", "capwords"])),
        "itertools": Facade("itertools", _pick(itertools, [
            n for n in dir(itertools) if not n.startswith("_")])),
        "functools": Facade("functools", _pick(functools, ["reduce", "partial",
                                                           "cmp_to_key"])),
        "collections": Facade("collections", _pick(collections, [
            "OrderedDict", "defaultdict", "Counter", "deque"])),
        "hashlib": Facade("hashlib", _pick(hashlib, ["sha256", "sha1", "md5", "sha512",
                                                     "blake2b"])),
        "base64": Facade("base64", _pick(base64, [
            "b64encode", "b64decode", "urlsafe_b64encode", "urlsafe_b64decode"])),
        "random": Facade("random", _pick(random, [
            "random", "randint", "choice", "shuffle", "sample", "uniform"])),
        "uuid": Facade("uuid", {"uuid4": uuid.uuid4}),
    }


_MODULES: dict[str, Facade] = _vetted_modules()


def register_module(name: str, facade: Facade) -> None:
    """Add a facade to the import allow-list (the app-facing API registers `stockade`)."""
    _MODULES[name] = facade


# The app's own modules, by name -> loader returning its facade (set by sandbox.loader).
# The app modules an import with no loaders of its own may reach. Empty in a child (each app's
# modules are bound into its own builtins by `make_globals`, never shared): in the author
# harness several apps share one interpreter, and a process-wide table let one app's
# `import helper` at event time run whichever app was loaded last.
_app_modules: dict[str, Callable[[], Facade]] = {}

AppModules = Mapping[str, Callable[[], Facade]]


def set_app_modules(loaders: AppModules) -> None:
    check_app_module_names(loaders)
    _app_modules.clear()
    _app_modules.update(loaders)


def check_app_module_names(loaders: AppModules) -> None:
    clash = set(loaders) & set(_MODULES)
    if clash:
        raise CompileFailed(f"app module names shadow sandbox modules: {sorted(clash)}")


def allowed_modules() -> frozenset[str]:
    return frozenset(_MODULES)


# Modules that C code in the standard library imports lazily through the *current frame's*
# `__import__` (e.g. datetime.strptime imports `_strptime`). App source can never spell these
# names (a leading "_" is refused at compile time), so only such C callers receive them; the
# runtime pre-imports them before confinement.
_C_LAZY_IMPORTS = frozenset({"_strptime"})


def guarded_import(
    name: str,
    globals: Any = None,
    locals: Any = None,
    fromlist: Any = (),
    level: int = 0,
    *,
    app_modules: AppModules | None = None,
) -> Facade:
    if level != 0:
        raise ImportError("relative imports are not allowed in the sandbox")
    if type(name) is not str:
        raise ImportError("module name must be a plain string")
    if name in _C_LAZY_IMPORTS and type(fromlist) is list and not fromlist:
        # CPython's C-level PyImport_Import passes an empty *list*; app source cannot: a plain
        # `import _x` is refused at compile time and `from _x import y` passes a tuple.
        import sys

        return sys.modules[name]  # type: ignore[return-value]
    if name.startswith("_"):
        raise ImportError(f"import of {name[:60]!r} is not allowed")
    facade = _MODULES.get(name)
    own = _app_modules if app_modules is None else app_modules
    if facade is None and name in own:
        facade = own[name]()
    if facade is None:
        allowed = ", ".join(sorted(_MODULES))
        raise ImportError(f"import of {name!r} is not allowed; allowed modules: {allowed}")
    return facade


def _guarded_iter(obj: Any) -> Any:
    return iter(obj)


_BUILTIN_NAMES = (
    "abs", "all", "any", "ascii", "bin", "bool", "bytes", "callable", "chr", "complex",
    "dict", "divmod", "enumerate", "filter", "float", "frozenset", "hash", "hex", "id",
    "int", "isinstance", "issubclass", "iter", "len", "list", "map", "max", "min", "next",
    "object", "oct", "ord", "pow", "range", "repr", "reversed", "round", "set", "slice",
    "sorted", "str", "sum", "super", "tuple", "zip", "True", "False", "None",
    "NotImplemented", "Ellipsis",
)
_EXCEPTION_NAMES = (
    "Exception", "ArithmeticError", "AssertionError", "AttributeError", "EOFError",
    "IndexError", "KeyError", "LookupError", "MemoryError", "NameError",
    "NotImplementedError", "OverflowError", "RecursionError", "RuntimeError",
    "StopIteration", "TypeError", "UnicodeError", "ValueError", "ZeroDivisionError",
    "ImportError", "PermissionError", "TimeoutError",
)


def make_builtins(app_modules: AppModules | None = None) -> dict[str, Any]:
    """Curated builtins; `app_modules`: the app's own modules its imports reach (one app's)."""
    import builtins as _b

    def app_import(name: str, globals: Any = None, locals: Any = None,
                   fromlist: Any = (), level: int = 0) -> Facade:
        return guarded_import(name, globals, locals, fromlist, level, app_modules=app_modules)

    table: dict[str, Any] = {n: getattr(_b, n) for n in _BUILTIN_NAMES + _EXCEPTION_NAMES}
    table.update(
        getattr=guarded_getattr,
        setattr=guarded_setattr,
        delattr=guarded_delattr,
        hasattr=lambda obj, name: _hasattr(obj, name),
        __import__=guarded_import if app_modules is None else app_import,
        __build_class__=_b.__build_class__,
        SandboxViolation=SandboxViolation,
    )
    return table


def _hasattr(obj: Any, name: str) -> bool:
    try:
        guarded_getattr(obj, name)
    except (AttributeError, SandboxViolation):
        return False
    return True


def make_globals(module_name: str, app_modules: AppModules | None = None) -> dict[str, Any]:
    """Fresh globals for one app module: curated builtins plus RestrictedPython's hooks, and
    imports bound to `app_modules` (the loading app's own, never another's)."""
    return {
        "__builtins__": make_builtins(app_modules),
        "__name__": module_name,
        "__metaclass__": _ClassMaker(),
        "_getattr_": guarded_getattr,
        "_getitem_": _getitem,
        "_getiter_": _guarded_iter,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_write_": guarded_write,
        "_print_": CappedPrint,
        "_apply_": _apply,
        "_inplacevar_": _inplacevar,
    }


class _Transformer(RestrictingNodeTransformer):
    """RestrictedPython's checks, and `match` refused here whatever its version says.

    Guards: a class pattern reads attributes with the real getattr and a mapping pattern reads
    items with the real get, past `_getattr_`, `_getitem_` and every name guard (`case
    object(gi_frame=object(f_back=...))` walks frames to real modules; no "_" needed).
    RestrictedPython 9 refuses the statement only because it has no checks for it yet; a
    release that let it through (the pin is a lower bound) would hand an app the interpreter.
    """

    def visit_Match(self, node: ast.Match) -> None:
        self.error(node, "match statements are not allowed in an app (a pattern reads "
                         "attributes and items past the sandbox's guards)")


class CompileFailed(Exception):
    """RestrictedPython refused the source (syntax or a restricted construct)."""


# Caps on the source handed to the compiler: they bound the compiler's own recursion and memory
# (a deeply nested expression can crash CPython's compiler, which is the app's failure anyway).
MAX_SOURCE_BYTES = 512 * 1024


def compile_module(source: str, filename: str) -> types.CodeType:
    if len(source) > MAX_SOURCE_BYTES:
        raise CompileFailed(f"{filename}: source larger than {MAX_SOURCE_BYTES} bytes")
    try:
        result = compile_restricted_exec(source, filename=filename, policy=_Transformer)
    except SyntaxError as exc:
        # The compiler's own, after the parse RestrictedPython reports in `errors` (`return`
        # outside a function, `break` outside a loop, a starred assignment): a refusal naming
        # the file like any other, never an exception the load reports as the app's error.
        raise CompileFailed(f"{filename}: Line {exc.lineno}: SyntaxError: {exc.msg}"[:1000]) \
            from None
    except Exception as exc:  # noqa: BLE001 - any failure to compile is a refusal, no code
        # RecursionError, MemoryError, ValueError (a NUL byte), OverflowError, and
        # RestrictedPython's transformer failing on source it only half refused (`x = r[await
        # a]`: AttributeError, the Subscript left without its slice).
        raise CompileFailed(f"{filename}: {type(exc).__name__}: {exc}"[:1000]) from None
    if result.errors:
        # Its errors say "Line N" only: named with the file, or a line of an app's other module
        # (helpers.py) read as one of the module app.toml names.
        raise CompileFailed(f"{filename}: " + "; ".join(result.errors)[:2000])
    if result.code is None:
        raise CompileFailed(f"{filename}: no code produced")
    return result.code


def run_module(code: types.CodeType, glb: dict[str, Any]) -> None:
    exec(code, glb)  # noqa: S102 - restricted code object, in the confined child
