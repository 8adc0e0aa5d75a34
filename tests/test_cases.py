"""Case descriptors are repro lines: they round-trip, and regenerate inputs bit for bit
(checked against golden hashes, so a change of NumPy or of the generator shows here)."""
import hashlib

import numpy as np
import pytest
from hypothesis import given, settings

from bn_conformance import grid
from bn_conformance.case import BadDescriptor, parse
from bn_conformance.inputs import make_problem
from bn_conformance.results import scrub_paths
from bn_conformance.strategies import cases

GOLDEN = {
    "train_f32_nchw_2x3x4x5_offset1e4_m0.1_e1e-05_k3_aff_trs_s0": "b3f37f7340781ff9a4181d8ecff568b4217afd65d8d15df31b412d846b862f70",
    "infer_bf16_nhwc_2x4x5x3_heavy_m0.1_e1e-05_k1_aff_trs_s7": "7c29bfd1b8989c3e6a12994abc3d948b8f3ee1a3bdacf6e4fde4a2f5f5cd2fc9",
    "train_f16_nc_16x5_exact_m1.0_e1e-05_k1_aff_trs_s0": "18be58e16bcd431df5d3a4ae3765a984e68c6486791e1afe52409210d1365af6",
}


def _digest(pb) -> str:
    h = hashlib.sha256()
    for a in (pb.x, pb.dy, pb.gamma, pb.beta) + ((pb.running_mean, pb.running_var) if pb.running_mean is not None else ()):
        h.update(a.tobytes())
    return h.hexdigest()


def test_every_grid_case_round_trips():
    for c in grid.all_cases():
        assert parse(c.id) == c, c.id


@settings(max_examples=200, derandomize=True, deadline=None)
@given(cases(modes=("train", "infer", "frozen")))
def test_generated_cases_round_trip(case):
    assert parse(case.id) == case


@pytest.mark.parametrize("cid", sorted(GOLDEN))
def test_inputs_are_bit_for_bit_reproducible(cid):
    assert _digest(make_problem(parse(cid))) == GOLDEN[cid]
    assert _digest(make_problem(parse(cid))) == _digest(make_problem(parse(cid)))


def test_exact_tier_statistics_are_exact():
    pb = make_problem(parse("train_f32_nchw_2x3x4x5_exact_m1.0_e1e-05_k1_aff_trs_s0"))
    x = np.moveaxis(pb.x[0].astype(np.float64), 1, 0).reshape(3, -1)
    m = x.mean(axis=1)
    v = ((x - m[:, None]) ** 2).mean(axis=1)
    assert np.all(m == np.round(m * 4) / 4) and np.all(np.log2(v) == np.round(np.log2(v)))


@pytest.mark.parametrize("bad", ["", "train_f32", "train_f99_nc_2x3_normal_m0.1_e1e-05_k1_aff_trs_s0",
                                 "train_f32_nchw_2x3_normal_m0.1_e1e-05_k1_aff_trs_s0"])
def test_bad_descriptors_are_refused_with_a_reason(bad):
    with pytest.raises(BadDescriptor):
        parse(bad)


def test_recorded_text_carries_no_machine_paths():
    import sysconfig
    site = sysconfig.get_paths()["purelib"]
    text = scrub_paths({"error": f'File "{site}/torch/nn/modules/batchnorm.py", line 1'})
    assert site not in text["error"] and "<site-packages>/torch/nn/modules/batchnorm.py" in text["error"]
