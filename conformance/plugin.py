"""The pytest plugin of the conformance suite, registered through the ``pytest11`` entry
point, so its options, markers, fixtures and hooks work from an installed package
(``pytest --pyargs bn_conformance``, ``bn-conformance``) as from the checkout
(``pytest conformance/``).

It does nothing until a test that takes a ``target`` is collected: other test suites in the
same environment see only its options. Options (group "bn-conformance"):

  --adapter SPEC     adapters to run: a name or glob ("torch.*"), or a user adapter
                     "package.module:Class" / "path/file.py:Class[#name]"; repeatable
  --all-adapters     also the opt-in adapters (slow variants)
  --device DEV       devices to run on (cpu, cuda, ...; "gpu" for any GPU); repeatable
  --case ID          run exactly these case descriptors, each once per adapter and device, in
                     the area module that owns it; repeatable
  --results-root DIR where runs go (default ./reports: runs/<run id>/, latest)
  --results-dir DIR  this run's folder exactly (must not hold another run's results)
  --update-latest    let a partial run move ``latest``
  --no-report        write the results but not the HTML report
  --isolate          every adapter in its own worker process (user adapters always are)
  --case-timeout S   seconds one isolated adapter call may take (verdict: timeout)
  --replace-builtin  let a user adapter take the name of a built-in one

Markers (``pytest --markers``; select with ``-m``): area_<area>, dtype_<dtype>,
framework_<framework>, family_<family> on every conformance test.
"""
from __future__ import annotations

import functools
import time
from collections import Counter
from pathlib import Path

import pytest

from . import grid, tiers
from .case import BadDescriptor, parse

KEY = pytest.StashKey["Run"]()
AREA_MODULES = tuple(grid.AREAS) + ("fingerprint", "hypothesis", "selected", "loading")


# -- options and markers --------------------------------------------------------------------------

def pytest_addoption(parser):
    g = parser.getgroup("bn-conformance", "batch-norm conformance suite")
    g.addoption("--adapter", action="append", default=[], metavar="SPEC",
                help="adapter name or glob ('torch.*'), or MODULE:NAME / FILE.py:NAME[#adapter]; repeatable")
    g.addoption("--all-adapters", action="store_true", help="also run the opt-in adapters (slow variants)")
    g.addoption("--device", action="append", default=[], metavar="DEV",
                help="device to run on (cpu, cuda, rocm, mps, xpu, tpu; gpu = any GPU); repeatable")
    g.addoption("--case", action="append", default=[], metavar="ID",
                help="case descriptor to run, once per adapter and device; repeatable")
    g.addoption("--results-root", default=None, metavar="DIR",
                help="where runs are written: DIR/runs/<run id>/ and DIR/latest (default ./reports)")
    g.addoption("--results-dir", default=None, metavar="DIR",
                help="write this run into DIR exactly (an empty or new folder)")
    g.addoption("--update-latest", action="store_true", help="let a partial run move the latest pointer")
    g.addoption("--no-report", action="store_true", help="do not build the HTML report")
    g.addoption("--isolate", action="store_true", help="run every adapter in its own worker process")
    g.addoption("--case-timeout", type=float, default=300.0, metavar="S",
                help="seconds one isolated adapter call may take before it is killed (verdict: timeout)")
    g.addoption("--replace-builtin", action="store_true",
                help="let a user adapter with a built-in adapter's name run in its place")
    g.addoption("--tier", choices=tiers.TIERS, default="default",
                help="how much of the grid to run: quick (a first look), default (every axis value and every "
                     "known finding and planted bug), pairwise (every pair of axis values, for a broad look "
                     "after an upgrade), full (every case the grid defines); see conformance/tiers.py")


def _markers(config) -> None:
    from bn_conformance.adapters.registry import ENTRIES
    from bn_conformance.vocab import DTYPES
    add = config.addinivalue_line
    add("markers", "area(name): the grid area a conformance test runs (parametrises its cases)")
    for a in AREA_MODULES:
        add("markers", f"area_{a}: conformance tests of the {a} area")
    for d in DTYPES:
        add("markers", f"dtype_{d}: conformance cases with {d} inputs")
    for fw in sorted({_ident(e.framework) for e in ENTRIES}):
        add("markers", f"framework_{fw}: conformance tests of adapters of {fw}")
    for fam in sorted({e.family for e in ENTRIES}):
        add("markers", f"family_{fam}: conformance tests of adapters of the {fam} backend family")
    if not config.pluginmanager.hasplugin("xdist"):
        add("markers", "xdist_group(name): keeps one adapter's tests in one pytest-xdist worker "
                       "(inert without pytest-xdist)")


def _ident(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in str(name))


@pytest.hookimpl(tryfirst=True)     # before hypothesis's own, which loads --hypothesis-profile by name
def pytest_configure(config):
    _markers(config)
    from .profiles import load_profile
    load_profile(config)
    config.stash[KEY] = Run(config)


def pytest_report_header(config):
    from hypothesis import settings

    from .profiles import chosen
    return (f"bn-conformance: tier {config.getoption('--tier')}, hypothesis profile '{chosen(config)}' "
            f"({settings().max_examples} examples per adapter)")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    run = node.config.stash.get(KEY, None)
    if run is not None:
        node.workerinput["bn_run"] = {"run_id": run.run_id, "folder": str(run.folder)}


def run_of(config) -> "Run":
    run = config.stash.get(KEY, None)
    if run is None:
        raise pytest.UsageError("the bn-conformance plugin is not configured")
    return run


class Run:
    """What one pytest session of the suite knows: selection, run id, folder, writer."""

    def __init__(self, config):
        from . import session
        self.config = config
        opt = config.getoption
        worker = getattr(config, "workerinput", None)
        self.worker = worker["workerid"] if worker else "main"
        self.is_worker = worker is not None
        self.is_controller = not self.is_worker and (getattr(config.option, "numprocesses", None) or 0) != 0
        self.root = Path(opt("--results-root") or Path.cwd() / "reports")
        if worker and "bn_run" in worker:
            self.run_id, self.folder = worker["bn_run"]["run_id"], Path(worker["bn_run"]["folder"])
        else:
            self.run_id = session.new_run_id()
            self.folder = Path(opt("--results-dir")) if opt("--results-dir") else session.run_folder(self.root, self.run_id)
        self.explicit_dir = bool(opt("--results-dir"))
        try:
            self.case_ids = [parse(c) for c in opt("--case")]
        except BadDescriptor as exc:
            raise pytest.UsageError(f"--case: {exc}") from None
        self.selection = None
        self.cases = None
        self.files = session.RunFiles(self.folder, self.worker, self.header)
        self.cache: dict = {}
        self.deselected = 0
        self.modules: set = set()
        self.started = time.time()
        self.active = False
        self.usage_error: str | None = None
        if not self.is_worker and not (config.option.help or config.option.version or config.option.collectonly):
            why = session.check_results_dir(self.folder) if self.explicit_dir else session.check_root(self.root)
            if why:
                raise pytest.UsageError(why)

    # -- selection (lazy: only when a conformance test is collected) ------------------------------
    def activate(self):
        if self.selection is not None:
            return self.selection
        from .selection import SelectionError, select
        opt = self.config.getoption
        self.cases = self.case_ids
        try:
            self.selection = select(opt("--adapter"), opt("--device"), opt("--all-adapters"), opt("--isolate"),
                                    opt("--case-timeout"), opt("--replace-builtin"))
        except SelectionError as exc:
            # raised from pytest_collection_modifyitems: an error inside pytest_generate_tests would be
            # a collection error of every module (exit 2), not the usage error it is (exit 4)
            self.usage_error = str(exc)
            return None
        self.active = True
        if self.selection.load_errors and self.worker in ("main", "gw0"):
            self.files.open()             # the run header records why adapters did not load, even if nothing runs
        return self.selection

    @property
    def partial(self) -> bool:
        opt = self.config.getoption
        return bool(opt("--adapter") or opt("--case") or opt("--device") or opt("--tier") == "quick"
                    or self.config.option.keyword
                    or self.config.option.markexpr or getattr(self.config.option, "lf", False)
                    or getattr(self.config.option, "stepwise", False) or self.deselected
                    or (self.modules and not {"forward", "fingerprint"} <= self.modules))

    def header(self) -> dict:
        from bn_conformance.reference import presets

        from .results import run_header
        sel = self.selection
        adapters = {}
        for name, a in sel.adapters.items():
            m = sel.metas.get(name, {})
            adapters[name] = {"framework": m.get("framework"), "version": m.get("version"),
                              "convention": m.get("convention"), "devices": m.get("devices"),
                              "capabilities": list(m.get("capabilities") or ()),
                              "family": getattr(a, "family", None) or m.get("family"),
                              "origin": sel.origin.get(name, "built-in"), "module": type(a).__module__}
        opt = self.config.getoption
        selection = {"tier": opt("--tier"), "adapters": opt("--adapter"), "devices": opt("--device"), "cases": opt("--case"),
                     "keyword": self.config.option.keyword or "", "markers": self.config.option.markexpr or "",
                     "all_adapters": bool(opt("--all-adapters")), "partial": self.partial}
        from . import findings
        known = {}
        for name, m in sel.metas.items():
            for d in m.get("devices") or ["cpu"]:
                for f in findings.applicable(name, str(m.get("version")), d):
                    known[f.id] = f.as_dict()
        header = run_header(self.run_id, adapters, dict(sel.unavailable) | {k: v for k, v in sel.load_errors.items()},
                            {n: c.as_dict() for n, c in presets().items()}, dict(sel.devices), selection)
        header["findings"] = known
        return header

    def write(self, record: dict) -> None:
        self.files.write(record)

    def adapter_spec(self, name: str) -> str | None:
        """What selects adapter ``name`` on the command line when its name alone does not: a
        user spec FILE.py:ATTR#name (entry-point adapters are found by name)."""
        origin = self.selection.origin.get(name, "built-in")
        if origin == "built-in" or origin.startswith("entry point"):
            return None
        return origin if origin.endswith(f"#{name}") else f"{origin.split('#')[0]}#{name}"


# -- collection -----------------------------------------------------------------------------------

def _owner(case_id: str) -> str:
    for area in grid.AREAS:
        if any(c.id == case_id for c in grid.cases(area)):
            return area
    return "selected"


def pytest_generate_tests(metafunc):
    if "target" not in metafunc.fixturenames:
        return
    run = run_of(metafunc.config)
    sel = run.activate()
    if sel is None:                  # a usage error, reported once collection ends
        metafunc.parametrize("target", [], ids=[])
        if "case" in metafunc.fixturenames:
            metafunc.parametrize("case", [], ids=[])
        if "load_error" in metafunc.fixturenames:
            metafunc.parametrize("load_error", [], ids=[])
        return
    if "load_error" in metafunc.fixturenames:
        errors = sorted(sel.load_errors.items())
        metafunc.parametrize("load_error", errors, ids=[e[0] for e in errors])
        metafunc.parametrize("target", [None], ids=["-"])
        return
    targets = sel.targets
    metafunc.parametrize("target", targets, ids=[t.id for t in targets])
    if "case" in metafunc.fixturenames:
        area = metafunc.definition.get_closest_marker("area").args[0]
        if run.cases:
            cases = [c for c in run.cases if _owner(c.id) == area]
        else:
            cases = tiers.cases(area, metafunc.config.getoption("--tier")) if area in grid.AREAS else []
        metafunc.parametrize("case", cases, ids=[c.id for c in cases])


def pytest_collection_modifyitems(session, config, items):
    run = config.stash.get(KEY, None)
    if run is not None and run.usage_error:
        raise pytest.UsageError(run.usage_error)
    if run is None or not run.active:
        return
    from bn_conformance.adapters.registry import BY_NAME
    keep, drop = [], []
    registered = {line.split(":", 1)[0].split("(")[0].strip() for line in config.getini("markers")}
    for item in items:
        skip = item.get_closest_marker("skip")
        if skip and str(skip.kwargs.get("reason", "")).startswith("got empty parameter set"):
            continue               # an area with nothing to run here (no --case of its own, no load error)
        cs = getattr(item, "callspec", None)
        target = cs.params.get("target") if cs else None
        case = cs.params.get("case") if cs else None
        marker = item.get_closest_marker("area")
        area = marker.args[0] if marker else item.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
        run.modules.add(area)
        if run.cases and case is None and target is not None:
            drop.append(item)          # --case runs exactly the named cases: no fingerprints, no hypothesis
            continue
        if config.getoption("--tier") == "quick" and area == "hypothesis":
            drop.append(item)          # the quick tier: the grid's cheapest cases and the fingerprint only
            continue
        item.add_marker(f"area_{area}")
        if target is not None:
            a = run.selection.adapters[target.adapter]
            entry = BY_NAME.get(target.adapter)
            fw = _ident(getattr(a, 'framework', None) or (entry and entry.framework))
            fam = _ident(getattr(a, 'family', None) or (entry and entry.family) or 'other')
            for name in (f"framework_{fw}", f"family_{fam}"):
                if name not in registered:     # a user adapter's framework: registered for --strict-markers
                    config.addinivalue_line("markers", f"{name}: conformance tests of adapters of "
                                                       f"{name.split('_', 1)[1]}")
                    registered.add(name)
                item.add_marker(name)
            item.add_marker(pytest.mark.xdist_group(group_of(target.adapter, entry.groups if entry else 1, area,
                                                             config.getoption("--tier"))))
        if case is not None:
            item.add_marker(f"dtype_{case.dtype}")
        keep.append(item)
    skipped = _pure_skips(run, keep)
    if skipped:
        keep = [i for i in keep if i not in skipped]
        run.skipped_at_collection = len(skipped)
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = _heaviest_first(keep)


def group_of(adapter: str, groups: int, area: str, tier: str) -> str:
    """The pytest-xdist group of an adapter's test in ``area``: the adapter's name, or, for an
    adapter spread over several groups (registry ``groups``), ``<name>/<k>`` where the areas
    are dealt to the k groups longest first (the number of distinct compiled signatures,
    conformance/tiers.py, of the area's cases in the tier; hypothesis counts its examples, the
    fingerprint its probes' configurations).
    The same on every worker and every run."""
    if groups <= 1:
        return adapter
    return f"{adapter}/{_area_groups(groups, tier).get(area, 0)}"


@functools.lru_cache(maxsize=None)
def _area_groups(groups: int, tier: str) -> dict:
    from hypothesis import settings
    weight = {a: len({tiers.signature(c) for c in tiers.cases(a, tier)}) for a in grid.AREAS}
    weight["hypothesis"] = settings().max_examples
    weight["fingerprint"] = 9          # the fingerprint's probes (conformance/fingerprint.py): nine configurations
    load, out = [0] * groups, {}
    for a in sorted(weight, key=lambda a: (-weight[a], a)):
        k = min(range(groups), key=lambda i: (load[i], i))
        out[a] = k
        load[k] += weight[a]
    return out


def _heaviest_first(items) -> list:
    """Items ordered by their adapter's measured cost, heaviest first (stable otherwise):
    pytest-xdist's loadgroup scheduler hands out adapter groups in the order they first appear,
    so this is longest-processing-time-first scheduling and the workers finish together.
    Costs: adapters/costs.json (benchmarks/run.py --costs); an adapter without one goes first."""
    import json

    from bn_conformance import adapters
    from bn_conformance.adapters.registry import BY_NAME
    try:
        costs = json.loads(Path(adapters.__file__).with_name("costs.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        costs = {}

    def cost(item):
        cs = getattr(item, "callspec", None)
        t = cs.params.get("target") if cs else None
        if t is None:
            return 0.0
        entry = BY_NAME.get(t.adapter)
        return -float(costs.get(t.adapter, 1e9)) / (entry.groups if entry else 1)

    return sorted(items, key=cost)


def _pure_skips(run, items) -> set:
    """Items whose adapter says, by pure logic on the case (``supports`` of a built-in adapter,
    which imports no framework), that it cannot express the case: they are not collected to be
    skipped one by one; each gets its skip record (with the reason) here, once per run."""
    from .evaluate import CaseResult, adapter_version, capability_skip, guarded, problem_of
    out = set()
    for item in items:
        cs = getattr(item, "callspec", None)
        target = cs.params.get("target") if cs else None
        case = cs.params.get("case") if cs else None
        if target is None or case is None:
            continue
        a = run.selection.adapters[target.adapter]
        reason, fault = capability_skip(a, problem_of(case)), None   # metadata only: any adapter
        if reason is None:
            if run.selection.origin.get(target.adapter) != "built-in" or (hasattr(a, "meta") and a._local is None):
                continue                   # user code, or an isolated adapter: decided in its worker at run time
            reason, fault = guarded(a.supports, problem_of(case), target.device)
        if fault is not None or not (isinstance(reason, str) and reason):
            continue                       # runs (a misbehaving supports() is judged when the case runs)
        out.add(item)
        if run.config.option.collectonly or (run.is_worker and run.worker != "gw0"):
            continue                       # under xdist every worker collects everything: gw0 records
        res = CaseResult(case.id, target.adapter, target.device, str(a.framework), adapter_version(a),
                         str(a.convention), verdict="skip", skip_reason=reason[:2000])
        run.write(res.record(run.run_id))
    return out


def pytest_deselected(items):
    if items:
        run = items[0].config.stash.get(KEY, None)
        if run is not None:
            run.deselected += len(items)       # the user's selection (-k, -m, --case, --lf, quick tier)


# -- fixtures -------------------------------------------------------------------------------------

@pytest.fixture
def judge(request):
    """judge(target, case): evaluate (once per target and case), record, and assert."""
    from .assertions import require
    from .evaluate import evaluate
    run = run_of(request.config)

    def _judge(target, case, generated: bool = False):
        key = (target.id, case.id)
        spec = run.adapter_spec(target.adapter)
        res = run.cache.get(key)
        if res is None:
            res = evaluate(run.selection.adapters[target.adapter], target.device, case)
            run.cache[key] = res
            rec = res.record(run.run_id)
            if res.verdict not in ("pass", "refused", "skip"):
                from .evaluate import problem_of
                from .repro import commands, input_summary
                rec["repro"] = {"lang": "shell", "code": commands(case.id, spec or res.adapter, res.device)}
                rec["inputs"] = input_summary(case, problem_of(case))
            run.write(rec)
        props = request.node.user_properties
        props += [("adapter", res.adapter), ("framework", res.framework), ("version", res.version),
                  ("verdict", res.verdict)]
        ratios = [c.ratio for c in res.checks if c.ratio is not None and c.ratio == c.ratio]
        if ratios:
            props.append(("worst_ratio", f"{max(ratios):.4g}"))
        findings = sorted({c.finding for c in res.checks if c.finding})
        if findings:
            props.append(("findings", " ".join(findings)))
        require(res, generated, spec)
        return res

    return _judge


@pytest.fixture
def fingerprinter(request):
    """fingerprinter(target): measure the adapter's conventions, record them, and assert."""
    from .fingerprint import judge_fingerprint
    run = run_of(request.config)

    def _run(target):
        judge_fingerprint(run.selection.adapters[target.adapter], target, run)

    return _run


# -- the end of a run -----------------------------------------------------------------------------

def pytest_sessionfinish(session, exitstatus):
    run = session.config.stash.get(KEY, None)
    if run is None:
        return
    run.files.close()
    if run.is_worker:
        return
    from . import session as ses
    if not run.folder.is_dir():
        return
    interrupted = exitstatus in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR)
    status = "interrupted" if interrupted else ("partial" if run.partial else "complete")
    run.status = status
    from . import findings
    from .results import load
    try:
        judged = findings.judge_run(load(run.folder), tiers.judged_cases(session.config.getoption("--tier")))
    except Exception as exc:  # noqa: BLE001 -- the results stay; the judgement says why it is missing
        judged, run.judge_error = [], f"{type(exc).__name__}: {exc}"
    run.stale = [j for j in judged if j["stale"]] if not interrupted else []
    if run.stale and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    run.final = ses.finish(run.folder, run.run_id, status,
                           {"exitstatus": int(session.exitstatus), "wall_s": round(time.time() - run.started, 3),
                            "findings": judged})
    if run.final and not session.config.getoption("--no-report"):
        try:
            from bn_conformance.reports import build_report
            run.report = build_report([run.final], run.folder / "report.html")
        except Exception as exc:  # noqa: BLE001 -- a report failure must not hide the results
            run.report_error = f"{type(exc).__name__}: {exc}"
    if run.final and not run.explicit_dir and (status == "complete" or
                                               (status == "partial" and session.config.getoption("--update-latest"))):
        run.latest = ses.point_latest(run.root, run.folder)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    run = config.stash.get(KEY, None)
    if run is None or run.is_worker or not (run.active or getattr(run, "final", None)):
        return
    tr = terminalreporter
    tr.section("batch-norm conformance")
    final = getattr(run, "final", None)
    header, counts = {}, {}
    if final:
        from .results import load
        for r in load(final):
            if r["type"] == "run":
                header = r
            elif r["type"] == "case":
                counts.setdefault((r["adapter"], r["device"]), Counter())[r["verdict"]] += 1
    unavailable = dict(header.get("unavailable") or (run.selection.unavailable if run.selection else {}))
    for name, why in sorted(unavailable.items()):
        tr.write_line(f"not run: {name}: {why}")
    if counts:
        cols = ("pass", "refused", "skip", "xfail", "fail", "raised", "accepted", "bad-output", "timeout", "crashed",
                "xpass")
        used = [c for c in cols if any(cnt[c] for cnt in counts.values())]
        width = max(len(f"{a}@{d}") for a, d in counts) + 2
        tr.write_line("")
        tr.write_line(f"{'adapter@device':{width}s}" + "".join(f"{c:>11s}" for c in used))
        for (a, d), cnt in sorted(counts.items()):
            tr.write_line(f"{a + '@' + d:{width}s}" + "".join(f"{cnt[c]:>11d}" for c in used))
        tr.write_line("")
    for j in getattr(run, "stale", []):
        tr.write_line(f"STALE FINDING {j['id']} on {j['adapter']}@{j['device']}: it covers {j['matched']} case(s) of "
                      f"this run and triggered on none; the behaviour changed: narrow or delete it "
                      f"(conformance/findings/)", red=True)
    if getattr(run, "judge_error", None):
        tr.write_line(f"findings NOT judged: {run.judge_error}", red=True)
    if final:
        tr.write_line(f"results: {final} ({getattr(run, 'status', '?')} run {run.run_id})")
    if getattr(run, "report", None):
        tr.write_line(f"report:  {run.report}")
    if getattr(run, "report_error", None):
        tr.write_line(f"report NOT built: {run.report_error}")
    if getattr(run, "latest", None):
        tr.write_line(f"latest:  {run.latest} -> {run.folder}")
    if run.deselected:
        tr.write_line(f"deselected: {run.deselected} item(s)")
    if getattr(run, "skipped_at_collection", 0):
        tr.write_line(f"not collected: {run.skipped_at_collection} (adapter, case) pair(s) the adapters cannot express "
                      "(recorded as skips with their reasons)")

