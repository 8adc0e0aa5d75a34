"""Finding and building adapters: the built-in registry, installed entry points, user specs.

A user spec names a module or a file and an attribute: ``package.module:Name`` or
``path/to/file.py:Name``, optionally ``...:Name#adapter`` to pick one adapter of a factory.
The attribute is an adapter class (instantiated with no arguments), an adapter instance,
or a factory returning a list of adapters. Installed packages can publish adapters under the
entry-point group ``ENTRY_POINT_GROUP`` with the same kinds of attribute.

Code a user brings (specs and entry points) is imported, constructed and queried only in a
worker process (adapters/_worker.py): the suite learns each adapter's name, version,
devices, capabilities and convention over the worker protocol, with a time limit, and
validates them (``problems``) before any case runs.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import sys
from importlib import metadata
from importlib.metadata import entry_points
from pathlib import Path

from .registry import BY_NAME, ENTRIES, Entry

ENTRY_POINT_GROUP = "bn_conformance.adapters"
_REQUIRED = ("name", "framework", "convention", "version", "devices", "supports", "run")
DEVICES = ("cpu", "cuda", "rocm", "mps", "xpu", "tpu")    # device names the suite knows


class AdapterLoadError(RuntimeError):
    pass


# -- built-ins -----------------------------------------------------------------------------------

def missing(entry: Entry) -> str | None:
    """Why a built-in adapter cannot load here (its framework is not installed), without importing it."""
    absent = [m for m in entry.requires if importlib.util.find_spec(m) is None]
    if absent:
        return (f"not installed ({', '.join(absent)}): pip install 'bn-conformance[{entry.extra}]' "
                f"with constraints.txt")
    return None


def framework_version(entry: Entry) -> str:
    try:
        return metadata.version(entry.framework)
    except metadata.PackageNotFoundError:
        return "unknown"


def build(entry: Entry, isolate: bool = False, timeout_s: float | None = None):
    """The adapter of a registry entry: constructed here, or in a worker process when the
    entry needs its own environment (``worker_env``) or ``isolate`` is asked for."""
    from ._worker import Proxy
    module, _, attr = entry.target.partition(":")
    kwargs = dict(entry.kwargs)
    if entry.worker_env or isolate:
        local = _construct(entry)           # answers supports() without a worker; imports no framework
        meta = {"name": entry.name, "framework": entry.framework, "convention": local.convention,
                "capabilities": tuple(getattr(local, "capabilities", ("forward", "running_stats", "grad"))),
                "default": entry.default, "family": entry.family}
        if entry.worker_env:               # the child fixes the framework's global state: never import it here
            meta |= {"version": framework_version(entry), "devices": list(local.devices())}
        if hasattr(local, "device_env"):   # the device, too, is fixed at import: one worker per device
            return PerDevice(entry, local, meta, timeout_s)
        return Proxy(entry.name, "bn_conformance.adapters.loading:instantiate", {"name": entry.name},
                     env=dict(entry.worker_env), local=local, timeout_s=timeout_s, meta=meta)
    return _construct(entry)


class PerDevice:
    """An adapter whose framework fixes its device when it is imported (Keras 3 places every
    tensor on its backend's default device: keras/src/backend/torch/core.py DEFAULT_DEVICE from
    KERAS_TORCH_DEVICE or CUDA; JAX and TensorFlow pick a GPU when one is visible): one worker
    per device, each started with the environment that pins it (``device_env``), so a "cpu"
    result never comes from a GPU. Looks like a worker proxy to the suite."""

    _isolated = True

    def __init__(self, entry: Entry, local, meta: dict, timeout_s: float | None):
        self.name, self._entry, self._local, self._meta, self._timeout = entry.name, entry, local, meta, timeout_s
        self._workers: dict = {}
        self._last = None

    def meta(self) -> dict:
        return self._meta

    def __getattr__(self, key):
        if key.startswith("_"):
            raise AttributeError(key)
        if key in ("framework", "convention", "capabilities", "default", "family"):
            return self._meta.get(key)
        raise AttributeError(key)

    def version(self) -> str:
        return self._meta["version"]

    def devices(self) -> list[str]:
        return self._meta["devices"]

    def device_name(self, device: str) -> str:
        return device

    def supports(self, problem, device: str):
        return self._local.supports(problem, device)

    def worker(self, device: str):
        from ._worker import Proxy
        if device not in self._workers:
            env = dict(self._entry.worker_env) | self._local.device_env(device)
            self._workers[device] = Proxy(f"{self.name}@{device}", "bn_conformance.adapters.loading:instantiate",
                                          {"name": self.name}, env=env, local=self._local,
                                          timeout_s=self._timeout, meta=self._meta)
        return self._workers[device]

    def run(self, problem, device: str, max_bytes: int | None = None):
        self._last = self.worker(device)
        return self._last.run(problem, device, max_bytes=max_bytes)

    @property
    def last_output(self) -> str:
        return self._last.last_output if self._last is not None else ""

    @property
    def restarts(self) -> int:
        return sum(w.restarts for w in self._workers.values())

    def close(self) -> None:
        for w in self._workers.values():
            w.close()

    def kill(self) -> None:
        for w in self._workers.values():
            w.kill()


def _construct(entry: Entry):
    module, _, attr = entry.target.partition(":")
    cls = getattr(importlib.import_module(f"bn_conformance.adapters.{module}"), attr)
    obj = cls(**dict(entry.kwargs))
    obj.name = entry.name
    obj.default = entry.default
    if not getattr(obj, "family", None):
        obj.family = entry.family
    return obj


def instantiate(name: str | None = None, spec: str | None = None):
    """One adapter, built in this process: a built-in by name, or one adapter of a user spec
    (``spec`` may end in ``#name``). Used in worker processes."""
    if name is not None:
        return _construct(BY_NAME[name])
    target, attr, pick = split_spec(spec)
    found = from_spec(join_spec(target, attr))
    if pick:
        found = [a for a in found if getattr(a, "name", None) == pick]
    if len(found) != 1:
        raise AdapterLoadError(f"{spec!r} names {len(found)} adapters, expected one")
    return found[0]


# -- user code (runs in the worker) --------------------------------------------------------------

def _check(obj, origin: str):
    absent = [a for a in _REQUIRED if not hasattr(obj, a)]
    if absent:
        raise AdapterLoadError(f"{origin}: {obj!r} is not an adapter: it lacks {absent} "
                               f"(see adapters/protocol.py and adapters/template.py)")
    return obj


def _materialise(attr, origin: str) -> list:
    if inspect.isclass(attr):
        return [_check(attr(), origin)]
    if all(hasattr(attr, a) for a in _REQUIRED):
        return [_check(attr, origin)]
    if callable(attr):
        got = attr()
        items = got if isinstance(got, (list, tuple)) else [got]
        return [_check(a, origin) for a in items]
    raise AdapterLoadError(f"{origin}: {attr!r} is neither an adapter class, an adapter, nor a factory")


_MODULE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_ATTR_PICK = re.compile(r"([A-Za-z_]\w*)(?:#(.*))?", re.S)


def split_spec(spec: str) -> tuple[str, str, str]:
    """(target, attribute, pick) of ``target:Attr[#pick]``; raises AdapterLoadError if malformed.
    The target is the shortest prefix that is a file ending in ".py" or a module name and is
    followed by ":Attr": a path may hold ":" or "#" (a Windows drive letter, a folder "a#b"),
    and the adapter name after "#" may hold anything."""
    if isinstance(spec, str):
        for i, ch in enumerate(spec):
            if ch != ":":
                continue
            target, rest = spec[:i], spec[i + 1:]
            m = _ATTR_PICK.fullmatch(rest)
            if m and target and (target.endswith(".py") or _MODULE.fullmatch(target)):
                return target, m.group(1), m.group(2) or ""
    raise AdapterLoadError(f"--adapter {str(spec)[:300]!r}: expected MODULE:NAME or FILE.py:NAME (optionally #ADAPTER)")


def join_spec(target: str, attr: str, pick: str = "") -> str:
    """The spec ``split_spec`` reads back as (target, attr, pick)."""
    return f"{target}:{attr}" + (f"#{pick}" if pick else "")


def from_spec(spec: str) -> list:
    """Adapters named by ``module:Attr`` or ``file.py:Attr``: imports and runs user code, so
    the suite calls this only inside a worker process."""
    target, attr, _ = split_spec(spec)
    try:
        if target.endswith(".py"):
            path = Path(target).resolve()
            if not path.is_file():
                raise AdapterLoadError(f"--adapter {spec!r}: no file {path}")
            mod_name = f"bn_user_adapter_{abs(hash(str(path)))}"
            module_spec = importlib.util.spec_from_file_location(mod_name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[mod_name] = module
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except AdapterLoadError:
        raise
    except BaseException as exc:  # noqa: BLE001 -- report any import failure of user code clearly
        raise AdapterLoadError(f"--adapter {spec!r}: importing {target} failed: {type(exc).__name__}: {exc}") from None
    if not hasattr(module, attr):
        raise AdapterLoadError(f"--adapter {spec!r}: {target} has no attribute {attr!r}")
    return _materialise(getattr(module, attr), spec)


def describe_spec(spec: str) -> list[dict]:
    """Worker side of ``discover``: the metadata of every adapter a spec yields."""
    from ._worker import _meta
    return [_meta(a) for a in from_spec(spec)]


class _Describer:
    """A worker's adapter that only describes a spec (``discover``)."""

    def __init__(self, spec: str):
        self.spec = spec

    def describe(self) -> list[dict]:
        return describe_spec(self.spec)


def discover(spec: str, timeout_s: float) -> list:
    """Proxies for the adapters of a user spec, learned in a worker process (never imported
    here). Raises AdapterLoadError with the worker's reason."""
    from ._worker import Proxy, WorkerError
    target, attr, pick = split_spec(spec)
    if target.endswith(".py"):
        if not Path(target).is_file():
            raise AdapterLoadError(f"--adapter {spec!r}: no file {Path(target).resolve()}")
        target = str(Path(target).resolve())
    full = join_spec(target, attr)
    probe = Proxy(f"discover {spec}", "bn_conformance.adapters.loading:_Describer", {"spec": full},
                  timeout_s=timeout_s, start_timeout_s=timeout_s)
    try:
        metas = probe._call("describe")
    except Exception as exc:  # noqa: BLE001 -- whatever the worker did, the spec did not load
        kind = "" if isinstance(exc, WorkerError) else f"{type(exc).__name__}: "
        raise AdapterLoadError(f"--adapter {spec!r}: the adapter could not be loaded in its worker: "
                               f"{kind}{exc}") from None
    finally:
        probe.close()
    if not isinstance(metas, list) or not all(isinstance(m, dict) for m in metas):
        raise AdapterLoadError(f"--adapter {spec!r}: the worker described {type(metas).__name__}, "
                               "not a list of adapters")
    if pick:
        metas = [m for m in metas if m.get("name") == pick]
        if not metas:
            raise AdapterLoadError(f"--adapter {spec!r}: no adapter named {pick!r} there")
    out = []
    for m in metas:
        bad = problems(m)
        if bad:
            raise AdapterLoadError(f"--adapter {spec!r}: adapter {str(m.get('name'))[:80]!r}: " + "; ".join(bad))
        out.append(Proxy(m["name"], "bn_conformance.adapters.loading:instantiate",
                         {"spec": join_spec(target, attr, m["name"])}, timeout_s=timeout_s, meta=m))
    return out


def problems(meta: dict) -> list[str]:
    """What is wrong with an adapter's declared metadata (empty: nothing)."""
    from bn_conformance.reference import presets
    from bn_conformance.vocab import CAPABILITIES, OPT_IN_CAPABILITIES
    out = []
    name = meta.get("name")
    if not _text(name):
        out.append(f"name must be a printable string of at most 200 characters, got {_show(name)}")
    elif set(name) & set(_NAME_RESERVED) or name != name.strip():
        out.append(f"name {name!r} must not hold any of {_NAME_RESERVED!r} nor begin or end with a space "
                   "(they select adapters on the command line: --adapter NAME, FILE.py:ATTR#NAME)")
    for key in ("framework", "convention", "version"):
        if not _text(meta.get(key)):
            out.append(f"{key} must be a non-empty printable string of at most 200 characters (no line breaks), "
                       f"got {_show(meta.get(key))}")
    if _text(meta.get("convention")) and meta["convention"] not in presets():
        out.append(f"convention {meta['convention']!r} is not a preset in reference/conventions.toml "
                   f"(known: {', '.join(sorted(presets()))})")
    devs = meta.get("devices")
    if not isinstance(devs, list) or not all(isinstance(d, str) for d in devs):
        out.append(f"devices() must return a list of device names, got {str(devs)[:80]!r}")
    elif set(devs) - set(DEVICES):
        out.append(f"devices() returned unknown device name(s) {sorted(set(devs) - set(DEVICES))}; known: {DEVICES}")
    caps = meta.get("capabilities")
    if not isinstance(caps, (list, tuple)) or not all(isinstance(c, str) for c in caps) \
            or set(caps) - set(CAPABILITIES + OPT_IN_CAPABILITIES) or "forward" not in caps:
        out.append(f"capabilities must be a subset of {CAPABILITIES + OPT_IN_CAPABILITIES} including 'forward', "
                   f"got {_show(caps)}")
    return out


_NAME_RESERVED = ":*?[]"


def _text(v) -> bool:
    """A declared text value: a non-empty printable str (no line breaks) of at most 200 characters."""
    return type(v) is str and 0 < len(v) <= 200 and v.isprintable()


def _show(v) -> str:
    try:
        return repr(str(v)[:80])
    except Exception:  # noqa: BLE001
        return f"<{type(v).__name__}>"


def entry_point_specs() -> dict[str, str]:
    """Installed entry points of ``ENTRY_POINT_GROUP``: {entry point name: 'module:attr'}."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


__all__ = ["AdapterLoadError", "DEVICES", "ENTRIES", "ENTRY_POINT_GROUP", "build", "discover", "entry_point_specs",
           "framework_version", "from_spec", "instantiate", "join_spec", "missing", "problems",
           "split_spec"]
