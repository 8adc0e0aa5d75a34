"""Convention fingerprinting: it finds planted convention bugs and stays quiet on an
honest backend and on PyTorch, whose conventions are documented."""
import numpy as np
import pytest

from bn_conformance.fingerprint import compare, fingerprint
from tests.planted.backends import PLANTED, NumpyBN

EXPECTED = {
    "momentum_inverted": "momentum",
    "estimator_swapped": "estimator",
    "eps_outside_sqrt": "eps",
    "wrong_axes": "reduction",
    "one_pass_variance": "variance",
    "stale_running_stats": "momentum",
    "infer_uses_batch_stats": "inference",
}


def _fp(adapter):
    with np.errstate(all="ignore"):
        return fingerprint(adapter, "cpu")


def test_clean_backend_matches_its_declared_conventions():
    fp = _fp(NumpyBN())
    assert compare(fp, "pytorch") == [], fp
    assert fp["estimator"]["value"] == "unbiased" and fp["eps"]["value"] == "as given"
    assert fp["init"]["value"] == "mean 0, var 1" and fp["frozen"]["value"] == "train"


@pytest.mark.parametrize("bug,field", sorted(EXPECTED.items()))
def test_planted_convention_bug_is_fingerprinted(bug, field):
    fp = _fp(PLANTED[bug]())
    assert field in compare(fp, "pytorch"), f"{bug}: {field} not flagged; measured {fp[field]}"


def test_declared_preset_mismatch_is_flagged():
    """The same honest backend declared as Keras-style (biased, frozen = inference) mismatches."""
    bad = compare(_fp(NumpyBN()), "keras3")
    assert {"estimator", "frozen"} <= set(bad)


def test_pytorch_fingerprint_matches_preset():
    torch_adapters = pytest.importorskip("bn_conformance.adapters.pytorch")
    fp = _fp(torch_adapters.NnModule())
    assert compare(fp, "pytorch") == [], fp
    assert fp["one_value"]["value"].startswith("raises")
