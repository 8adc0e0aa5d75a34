"""Finding adapters: built-in groups, installed entry points, and user specs.

A user spec names a module or a file and an attribute: ``package.module:Name`` or
``path/to/file.py:Name``. The attribute is an adapter class (instantiated with no
arguments), an adapter instance, or a factory returning a list of adapters.
Installed packages can publish adapters under the entry-point group ``ENTRY_POINT_GROUP``
with the same kinds of attribute.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from importlib.metadata import entry_points
from pathlib import Path

from . import BUILTIN, load_group
from .protocol import Adapter

ENTRY_POINT_GROUP = "bn_conformance.adapters"
_REQUIRED = ("name", "framework", "convention", "version", "devices", "supports", "run")


class AdapterLoadError(RuntimeError):
    pass


def _check(obj, origin: str) -> Adapter:
    missing = [a for a in _REQUIRED if not hasattr(obj, a)]
    if missing:
        raise AdapterLoadError(f"{origin}: {obj!r} is not an adapter: it lacks {missing} "
                               f"(see adapters/protocol.py and adapters/template.py)")
    return obj


def _materialise(attr, origin: str) -> list[Adapter]:
    if inspect.isclass(attr):
        return [_check(attr(), origin)]
    if all(hasattr(attr, a) for a in _REQUIRED):
        return [_check(attr, origin)]
    if callable(attr):
        got = attr()
        items = got if isinstance(got, (list, tuple)) else [got]
        return [_check(a, origin) for a in items]
    raise AdapterLoadError(f"{origin}: {attr!r} is neither an adapter class, an adapter, nor a factory")


def from_spec(spec: str) -> list[Adapter]:
    """Adapters named by ``module:Attr`` or ``file.py:Attr``."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise AdapterLoadError(f"--adapter {spec!r}: expected MODULE:NAME or FILE.py:NAME")
    try:
        if target.endswith(".py"):
            path = Path(target).resolve()
            if not path.exists():
                raise AdapterLoadError(f"--adapter {spec!r}: no file {path}")
            mod_name = f"bn_user_adapter_{path.stem}"
            module_spec = importlib.util.spec_from_file_location(mod_name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[mod_name] = module
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except AdapterLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 -- report any import failure of user code clearly
        raise AdapterLoadError(f"--adapter {spec!r}: importing {target} failed: {type(exc).__name__}: {exc}") from exc
    if not hasattr(module, attr):
        raise AdapterLoadError(f"--adapter {spec!r}: {target} has no attribute {attr!r}")
    return _materialise(getattr(module, attr), spec)


def installed(groups=None) -> tuple[dict[str, Adapter], dict[str, str]]:
    """Built-in adapters (of ``groups``, default all) plus entry points;
    (adapters by name, reasons for what did not load)."""
    found, missing = {}, {}
    for group in (BUILTIN if groups is None else [g for g in BUILTIN if g in groups]):
        try:
            for a in load_group(group):
                found[a.name] = a
        except ImportError as exc:
            missing[group] = f"not installed ({type(exc).__name__}: {exc})"
        except Exception as exc:  # noqa: BLE001 -- a broken framework install is reported, not fatal
            missing[group] = f"failed to load: {type(exc).__name__}: {exc}"
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            for a in _materialise(ep.load(), f"entry point {ep.name}"):
                found[a.name] = a
        except Exception as exc:  # noqa: BLE001
            missing[f"entry point {ep.name}"] = f"{type(exc).__name__}: {exc}"
    return found, missing


def instantiate(spec: str):
    """One adapter by installed name or MODULE:NAME / FILE.py:NAME (the spec names a single
    adapter, or ``spec#name`` picks one of a factory's adapters). Used in worker processes."""
    from . import groups_for
    spec, _, pick = spec.partition("#")
    found = from_spec(spec) if ":" in spec else [installed(set(groups_for(spec)))[0][spec]]
    if pick:
        found = [a for a in found if a.name == pick]
    if len(found) != 1:
        raise AdapterLoadError(f"{spec!r}{'#' + pick if pick else ''} names {len(found)} adapters, expected one")
    return found[0]


def isolated(adapter, spec: str, timeout_s: float):
    """``adapter`` run in its own worker process, with a per-call time limit."""
    from ._worker import Proxy
    if getattr(adapter, "_isolated", False):
        return adapter
    p = Proxy(adapter.name, adapter.framework, adapter.convention, target="adapters.loading:instantiate",
              kwargs={"spec": f"{spec}#{adapter.name}"}, timeout_s=timeout_s)
    p._isolated = True
    return p
