"""Which adapters and devices a run covers, from the command line: the built-in registry
(adapters/registry.py), installed entry points and user specs. Every way a selection can be
wrong is a usage error naming what is available, never a traceback.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from bn_conformance.adapters import loading
from bn_conformance.adapters.protocol import Target
from bn_conformance.adapters.registry import BY_NAME, ENTRIES


class SelectionError(ValueError):
    """A usage error: the message says what was asked and what is available."""


GPU_ALIASES = {"gpu": ("cuda", "rocm", "mps", "xpu")}


@dataclass
class Selection:
    adapters: dict = field(default_factory=dict)       # name -> adapter object (or worker proxy)
    unavailable: dict = field(default_factory=dict)    # name -> reason (not installed, opt-in, no device here)
    load_errors: dict = field(default_factory=dict)    # user spec -> why it could not be loaded
    origin: dict = field(default_factory=dict)         # name -> "built-in" | spec | "entry point NAME"
    metas: dict = field(default_factory=dict)          # name -> declared metadata (validated)
    targets: list = field(default_factory=list)
    devices: dict = field(default_factory=dict)        # device -> readable name


def is_spec(s: str) -> bool:
    return ":" in s


def _devices(requested: list[str]) -> set[str] | None:
    if not requested:
        return None
    out = set()
    for d in requested:
        if d in GPU_ALIASES:
            out |= set(GPU_ALIASES[d])
        elif d in loading.DEVICES:
            out.add(d)
        else:
            raise SelectionError(f"--device {d!r} is not a device name; known: {', '.join(loading.DEVICES)} "
                                 f"(and 'gpu' for any GPU)")
    return out


def _entries(specs: list[str], all_adapters: bool):
    """Registry entries asked for by name globs (every default one when there are none)."""
    names = [s for s in specs if not is_spec(s)]
    if not specs:
        return [e for e in ENTRIES if e.default or all_adapters], {e.name: f"opt-in: {e.why_opt_in}; select it with "
                                                                           f"--adapter {e.name} or --all-adapters"
                                                                   for e in ENTRIES if not (e.default or all_adapters)}, []
    chosen, unmatched = {}, []
    for pat in names:
        hits = [e for e in ENTRIES if fnmatch.fnmatchcase(e.name, pat)]
        if not hits:
            unmatched.append(pat)
        for e in hits:
            chosen[e.name] = e
    return list(chosen.values()), {}, unmatched


def select(specs: list[str], devices: list[str], all_adapters: bool = False, isolate: bool = False,
           timeout_s: float = 300.0, replace_builtin: bool = False) -> Selection:
    sel = Selection()
    wanted_devices = _devices(devices)
    entries, sel.unavailable, unmatched = _entries(specs, all_adapters)
    explicit = {s for s in specs if not is_spec(s) and not set(s) & set("*?[")}
    for e in entries:
        why = loading.missing(e)
        if why:
            sel.unavailable[e.name] = why
            continue
        try:
            a = loading.build(e, isolate=isolate, timeout_s=timeout_s)
        except Exception as exc:  # noqa: BLE001 -- a broken framework install is reported, not fatal
            sel.unavailable[e.name] = f"failed to load: {type(exc).__name__}: {str(exc)[:300]}"
            continue
        sel.adapters[e.name] = a
        sel.origin[e.name] = "built-in"
    # user code: specs and (with no --adapter, or an unmatched glob) installed entry points
    user_specs = [s for s in specs if is_spec(s)]
    eps = loading.entry_point_specs() if (not specs or unmatched) else {}
    for label, spec in [(s, s) for s in user_specs] + [(f"entry point {n}", v) for n, v in eps.items()]:
        try:
            found = loading.discover(spec, timeout_s)
        except loading.AdapterLoadError as exc:
            sel.load_errors[label] = str(exc)
            continue
        for a in found:
            if label.startswith("entry point") and unmatched and not any(fnmatch.fnmatchcase(a.name, p) for p in unmatched):
                a.close()
                continue
            if a.name in BY_NAME and not replace_builtin:
                sel.load_errors[label] = (f"adapter {a.name!r} from {spec} has the name of a built-in adapter; rename it, "
                                          "or pass --replace-builtin to run it in the built-in's place")
                continue
            if a.name in sel.adapters and sel.origin.get(a.name) != "built-in":
                sel.load_errors[label] = f"adapter name {a.name!r} is used twice ({sel.origin[a.name]} and {spec})"
                continue
            sel.adapters[a.name] = a
            # what selects exactly this adapter again (rerun lines): FILE.py:ATTR#name / module:ATTR#name as
            # the user wrote the target; entry-point adapters are found again by their name
            sel.origin[a.name] = label if label.startswith("entry point") else _canonical(spec, a.name)
    still = [p for p in unmatched if not any(fnmatch.fnmatchcase(n, p) for n in sel.adapters)]
    if still:
        installed = sorted(e.name for e in ENTRIES if not loading.missing(e))
        raise SelectionError(f"--adapter {', '.join(repr(p) for p in still)} matches no adapter. Installed: "
                             f"{', '.join(installed) or 'none'}. Not installed: "
                             + (", ".join(sorted(e.name for e in ENTRIES if loading.missing(e))) or "none"))
    if specs and not sel.adapters and not sel.load_errors:
        raise SelectionError("the selected adapters cannot run here: " +
                             "; ".join(f"{n}: {why}" for n, why in sel.unavailable.items()))
    # devices, validated
    metas = {}
    for name, a in list(sel.adapters.items()):
        meta = metas[name] = _meta(a, name)
        bad = loading.problems(meta)
        if bad:
            sel.load_errors[sel.origin.get(name, name)] = f"adapter {name!r}: " + "; ".join(bad)
            del sel.adapters[name]
            continue
        devs = [d for d in dict.fromkeys(meta["devices"]) if wanted_devices is None or d in wanted_devices]
        if not devs:
            here = ", ".join(meta["devices"]) or "none"
            if name in explicit and wanted_devices is None:
                raise SelectionError(f"adapter {name!r} has no device on this machine (it offers: {here})")
            sel.unavailable[name] = f"no selected device here (it offers: {here})"
            continue
        for d in devs:
            sel.targets.append(Target(name, d))
            namer = getattr(a, "device_name", None)
            if callable(namer) and d not in sel.devices:
                try:
                    sel.devices[d] = str(namer(d))
                except Exception as exc:  # noqa: BLE001 -- a readable name is optional
                    sel.devices[d] = f"{d} (device_name() raised {type(exc).__name__})"
    sel.metas = {n: m for n, m in metas.items() if n in sel.adapters}
    if wanted_devices is not None and not sel.targets and (sel.adapters or not specs):
        offered = sorted({d for n in sel.adapters for d in metas[n].get("devices") or []})
        raise SelectionError(f"no selected adapter offers device {', '.join(sorted(wanted_devices))} on this "
                             f"machine (devices here: {', '.join(offered) or 'none'})")
    return sel


def _canonical(spec: str, name: str) -> str:
    target, attr, _ = loading.split_spec(spec)
    return loading.join_spec(target, attr, name)


def _meta(a, name: str) -> dict:
    """An adapter's declared metadata (the worker's answer for proxies), never raising."""
    from bn_conformance.evaluate import adapter_version, guarded
    if hasattr(a, "meta"):
        m, fault = guarded(a.meta)
        if fault is not None:
            return {"name": name, "devices": None, "framework": None, "convention": None, "version": None,
                    "capabilities": None, "error": fault.message}
        return m
    devices, fault = guarded(a.devices)
    return {"name": getattr(a, "name", None), "framework": getattr(a, "framework", None),
            "convention": getattr(a, "convention", None), "version": adapter_version(a),
            "devices": list(devices) if isinstance(devices, (list, tuple)) else devices if fault is None else
            f"devices() raised {fault.message}",
            "capabilities": tuple(getattr(a, "capabilities", ("forward", "running_stats", "grad")))}
