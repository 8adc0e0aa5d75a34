"""Strictness per finding and per run (conformance/findings.py judge_run): when a run calls a
finding stale, and when it must not."""
from bn_conformance import findings, tiers
from bn_conformance.case import parse

FLAX = ("flax.linen.jit", "0.12.8", "cpu")
EMPTY_TRS = "train_f32_nc_0x3_normal_m0.1_e1e-05_k2_aff_trs_s0"
EMPTY_NOTRS = "train_f32_nc_0x3_normal_m0.1_e1e-05_k2_aff_notrs_s0"


def _case(case_id, triggered, adapter=FLAX[0]):
    return {"type": "case", "adapter": adapter, "device": "cpu", "version": FLAX[1], "case_id": case_id,
            "findings": [{"id": "flax-empty-batch", "triggered": triggered}]}


def _judged(records, grid, fid="flax-empty-batch", adapter=FLAX[0]):
    return next(j for j in findings.judge_run(records, grid) if j["id"] == fid and j["adapter"] == adapter)


def test_a_finding_that_triggers_somewhere_is_not_stale():
    grid = [parse(EMPTY_TRS), parse(EMPTY_NOTRS)]
    j = _judged([_case(EMPTY_TRS, True), _case(EMPTY_NOTRS, False)], grid)
    assert (j["matched"], j["triggered"], j["exercised"], j["stale"]) == (2, 1, True, False)


def test_a_finding_exercised_on_all_its_cases_without_triggering_is_stale():
    grid = [parse(EMPTY_TRS), parse(EMPTY_NOTRS)]
    j = _judged([_case(EMPTY_TRS, False), _case(EMPTY_NOTRS, False)], grid)
    assert j["exercised"] and j["stale"]


def test_a_partial_run_judges_only_findings_whose_grid_cases_all_ran():
    grid = [parse(EMPTY_TRS), parse(EMPTY_NOTRS)]
    j = _judged([_case(EMPTY_NOTRS, False)], grid)
    assert (j["exercised"], j["stale"]) == (False, False)


def test_the_quick_tier_is_judged_against_the_default_tiers_cases():
    quick = {c.id for c in tiers.all_cases("quick")}
    f = next(f for f in findings.all_findings() if f.id == "flax-one-pass-variance")
    covered_quick = [cid for cid in quick if f.covers(parse(cid), FLAX[0])]
    assert covered_quick, "the quick tier should meet the one-pass finding somewhere"
    recs = [dict(_case(cid, False), findings=[{"id": f.id, "triggered": False}]) for cid in covered_quick]
    assert _judged(recs, tiers.all_cases("quick"), f.id)["stale"]      # judged on its own cases it would be
    assert not _judged(recs, tiers.judged_cases("quick"), f.id)["stale"]
    assert {c.id for c in tiers.judged_cases("default")} == {c.id for c in tiers.all_cases("default")}


def test_a_fingerprint_exercises_only_the_findings_its_measured_probes_list():
    fid, adapter = "flax-one-pass-variance", "flax.nnx.sync"
    fp = {"type": "fingerprint", "adapter": adapter, "device": "cpu", "version": FLAX[1], "findings": []}
    assert not _judged([fp], [], fid, adapter)["exercised"]          # probe not measured: nothing listed
    fp["findings"] = [{"id": fid, "triggered": False}]
    j = _judged([fp], [], fid, adapter)
    assert j["exercised"] and j["stale"]


def test_predicates_exclude_empty_batches_from_the_few_values_alternative():
    f = next(f for f in findings.all_findings() if f.id == "flax-one-pass-variance")
    assert f.covers(parse("train_f32_nc_4x3_normal_m0.1_e1e-05_k2_aff_trs_s0"), FLAX[0])
    assert not f.covers(parse(EMPTY_NOTRS), FLAX[0])
