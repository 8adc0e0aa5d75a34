"""pytest plumbing for the conformance suite.

Options (group "bn-conformance"):
  --adapter SPEC     run only these adapters: a name or glob ("torch.*"), or an external
                     adapter "package.module:Class" / "path/file.py:Class"; repeatable
  --device DEV       run only on these devices (cpu, cuda); repeatable
  --case ID          run exactly these case descriptors in every area; repeatable
  --results-dir DIR  where the results file and report go (default reports/latest)
  --no-report        write the results file but do not build the HTML report
"""
from __future__ import annotations

import fnmatch
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from adapters import groups_for, info
from adapters.loading import AdapterLoadError, from_spec, installed, isolated
from adapters.protocol import Target
from reference import presets

from . import grid
from .assertions import require
from .case import BadDescriptor, parse
from .evaluate import evaluate
from .results import Writer, merge_parts, new_run_id, run_header

settings.register_profile("ci", derandomize=True, max_examples=15, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                                 HealthCheck.filter_too_much])
settings.register_profile("thorough", max_examples=400, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                                 HealthCheck.filter_too_much])
settings.load_profile(os.environ.get("BN_HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser):
    g = parser.getgroup("bn-conformance")
    g.addoption("--adapter", action="append", default=[], help="adapter name/glob or MODULE:NAME / FILE.py:NAME")
    g.addoption("--device", action="append", default=[], help="device to run on (cpu, cuda)")
    g.addoption("--case", action="append", default=[], help="case descriptor to run (repro)")
    g.addoption("--results-dir", default=None, help="results folder (default reports/latest)")
    g.addoption("--no-report", action="store_true", help="do not build the HTML report")
    g.addoption("--all-adapters", action="store_true",
                help="also run the opt-in adapters (default = False: slow variants such as eager JAX)")
    g.addoption("--isolate", action="store_true",
                help="run every adapter in its own worker process (external --adapter specs always are)")
    g.addoption("--no-isolate", action="store_true", help="run external adapters in-process too")
    g.addoption("--case-timeout", type=float, default=300.0,
                help="seconds one isolated adapter call may take before it is killed (verdict: timeout)")


class _State:
    def __init__(self, config, load_adapters: bool = True):
        self.config = config
        self.adapters, self.unavailable = self._select(config) if load_adapters else ({}, {})
        self.cases = self._cases(config)
        self.targets = [Target(a.name, d) for a in self.adapters.values() for d in a.devices()
                        if not config.getoption("--device") or d in config.getoption("--device")]
        root = Path(str(config.rootpath))
        opt = config.getoption("--results-dir")
        self.results_dir = Path(opt) if opt else root / "reports" / "latest"
        self.cache = {}
        self.writer = None

    @staticmethod
    def _select(config):
        specs = config.getoption("--adapter")
        names = [s for s in specs if ":" not in s]
        wanted = None if not specs else {g for n in names for g in groups_for(n)}   # external specs only: none
        found, unavailable = installed(wanted)
        if not specs:
            if not config.getoption("--all-adapters"):
                for n, a in list(found.items()):
                    if not getattr(a, "default", True):
                        del found[n]
                        unavailable[n] = "opt-in (slow variant): select with --adapter or --all-adapters"
            if config.getoption("--isolate"):
                found = {n: isolated(a, n, config.getoption("--case-timeout")) for n, a in found.items()}
            return found, unavailable
        chosen = {}
        isolate_all = config.getoption("--isolate")
        isolate_external = not config.getoption("--no-isolate")
        timeout = config.getoption("--case-timeout")
        for spec in specs:
            if ":" in spec:
                target, _, attr = spec.rpartition(":")
                full = f"{Path(target).resolve()}:{attr}" if target.endswith(".py") else spec
                try:
                    for a in from_spec(full):
                        chosen[a.name] = isolated(a, full, timeout) if isolate_external else a
                except AdapterLoadError as exc:
                    raise pytest.UsageError(str(exc)) from None
            else:
                hits = {n: a for n, a in found.items() if fnmatch.fnmatchcase(n, spec)}
                if not hits:
                    why = "; ".join(f"{g}: {r}" for g, r in unavailable.items()) or "none missing"
                    raise pytest.UsageError(f"--adapter {spec!r} matches no installed adapter. Installed: "
                                            f"{sorted(found)}. Unavailable groups: {why}")
                chosen.update(hits)
        if isolate_all:
            chosen = {n: isolated(a, n, timeout) for n, a in chosen.items()}
        return chosen, unavailable

    @staticmethod
    def _cases(config):
        try:
            return [parse(c) for c in config.getoption("--case")]
        except BadDescriptor as exc:
            raise pytest.UsageError(str(exc)) from None

    def header(self, run_id):
        adapters = {}
        devices = {}
        for a in self.adapters.values():
            i = info(a)
            adapters[a.name] = {"framework": i.framework, "version": i.version, "convention": i.convention,
                                "devices": i.devices, "module": type(a).__module__}
            for d in i.devices:
                describe = getattr(a, "device_name", None)
                if describe:
                    devices.setdefault(d, describe(d))
        conventions = {n: c.as_dict() for n, c in presets().items()}
        return run_header(run_id, adapters, self.unavailable, conventions, devices)


def pytest_configure(config):
    config.addinivalue_line("markers", "area(name): the grid area a conformance test runs")
    if not str(config.invocation_params.args).count("conformance") and not any(
            "conformance" in str(p) for p in config.args):
        return
    worker = getattr(config, "workerinput", None)
    # an xdist controller runs no test: it merges the workers' results, and importing every
    # framework there would only delay the workers' start
    controller = worker is None and (getattr(config.option, "numprocesses", None) or 0) != 0
    state = _State(config, load_adapters=not controller)
    config._bn = state
    if worker is None:
        state.run_id = new_run_id()
        state.results_dir.mkdir(parents=True, exist_ok=True)
        for old in list(state.results_dir.glob("results*.jsonl")) + list(state.results_dir.glob("report.html")):
            old.unlink()
        wid = "main"
    else:
        state.run_id = worker["bn_run_id"]
        wid = worker["workerid"]
    if not controller:
        state.writer = Writer(state.results_dir, wid, state.header(state.run_id))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    state = getattr(node.config, "_bn", None)
    if state is not None:
        node.workerinput["bn_run_id"] = state.run_id


def _state(config) -> _State:
    state = getattr(config, "_bn", None)
    if state is None:
        raise pytest.UsageError("run the conformance suite as: pytest conformance/")
    return state


def pytest_generate_tests(metafunc):
    if "target" not in metafunc.fixturenames:
        return
    state = _state(metafunc.config)
    metafunc.parametrize("target", state.targets, ids=[t.id for t in state.targets], scope="function")
    if "case" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("area")
        cases = state.cases or grid.cases(marker.args[0])
        metafunc.parametrize("case", cases, ids=[c.id for c in cases])


def pytest_collection_modifyitems(config, items):
    """With pytest-xdist's --dist loadgroup, all tests of one adapter run in one worker, so
    jitted adapters compile each shape once rather than once per worker."""
    for item in items:
        target = getattr(item, "callspec", None) and item.callspec.params.get("target")
        if target is not None:
            item.add_marker(pytest.mark.xdist_group(target.adapter))


@pytest.fixture
def judge(request):
    """judge(target, case): evaluate (once per target and case), record, and assert."""
    state = _state(request.config)

    def _judge(target: Target, case, generated: bool = False):
        key = (target.id, case.id)
        res = state.cache.get(key)
        if res is None:
            res = evaluate(state.adapters[target.adapter], target.device, case, generated=generated)
            state.cache[key] = res
            state.writer.write(res.record(state.run_id))
        require(res, generated)
        return res

    return _judge


@pytest.fixture
def fingerprinter(request):
    """fingerprinter(target): measure the adapter's conventions, record them, and assert."""
    import numpy as np

    from . import deviations
    from .fingerprint import compare, fingerprint, record
    state = _state(request.config)

    def _run(target: Target):
        adapter = state.adapters[target.adapter]
        with np.errstate(all="ignore"):
            fp = fingerprint(adapter, target.device)
        bad = compare(fp, adapter.convention)
        version = adapter.version()
        known, unknown, stale = {}, [], []
        for probe in fp:
            d = deviations.find(adapter.name, version, target.device, "fingerprint", f"fingerprint.{probe}")
            if probe in bad and d:
                known[probe] = d.id
            elif probe in bad:
                unknown.append(probe)
            elif d:
                stale.append(f"{probe} (deviation {d.id})")
        state.writer.write(record(fp, bad, state.run_id, adapter, target.device, known))
        lines = [f"  {p}: measured {fp[p]['value']!r} -- {fp[p]['evidence']}" for p in unknown]
        if unknown or stale:
            pytest.fail(f"{target.id} declares convention {adapter.convention!r} but measures differently:\n"
                        + "\n".join(lines)
                        + (f"\n  known deviations that no longer reproduce (delete them): {stale}" if stale else ""),
                        pytrace=False)
        if known:
            pytest.xfail(f"{target.id}: known convention deviations {known}")

    return _run


def pytest_sessionfinish(session, exitstatus):
    state = getattr(session.config, "_bn", None)
    if state is None:
        return
    if state.writer is not None:
        state.writer.close()
    if getattr(session.config, "workerinput", None) is not None:
        return
    path = merge_parts(state.results_dir)
    state.final = path
    if path and not session.config.getoption("--no-report"):
        try:
            from reports import build_report
            state.report = build_report([path], state.results_dir / "report.html")
        except ImportError:
            state.report = None
        except Exception as exc:  # noqa: BLE001 -- a report failure must not hide the results
            state.report_error = f"{type(exc).__name__}: {exc}"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    state = getattr(config, "_bn", None)
    if state is None or getattr(config, "workerinput", None) is not None:
        return
    tr = terminalreporter
    tr.section("batch-norm conformance")
    for group, why in state.unavailable.items():
        tr.write_line(f"adapter group {group}: {why}")
    names, unavailable = sorted(state.adapters), dict(state.unavailable)
    if not names and getattr(state, "final", None):   # xdist: the workers' run headers say
        from .results import load
        for r in load(state.final):
            if r["type"] == "run":
                names = sorted(set(names) | set(r.get("adapters", {})))
                unavailable.update(r.get("unavailable", {}))
        for group, why in unavailable.items():
            tr.write_line(f"adapter group {group}: {why}")
    tr.write_line(f"adapters: {', '.join(names) or 'none'}")
    if getattr(state, "final", None):
        tr.write_line(f"results: {state.final}")
    if getattr(state, "report", None):
        tr.write_line(f"report:  {state.report}")
    if getattr(state, "report_error", None):
        tr.write_line(f"report NOT built: {state.report_error}")
