"""The names renamed in 0.2 still work for one release, with a DeprecationWarning naming the new one."""

import importlib

import pytest
import torch

import sparsespike

RENAMED = [
    ("sparsespike", "hopfield_retrieve", sparsespike.modern_hopfield),
    ("sparsespike", "hopfield_retrieve_reference", sparsespike.modern_hopfield_reference),
    ("sparsespike", "hopfield_recall", sparsespike.spiking_hopfield_recall),
    ("sparsespike", "hopfield_recall_reference", sparsespike.spiking_hopfield_recall_reference),
    ("sparsespike", "HopfieldRecall", sparsespike.SpikingHopfieldOutput),
    ("sparsespike.ops", "hopfield_retrieve", sparsespike.ops.modern_hopfield),
    ("sparsespike.ops", "HopfieldRecall", sparsespike.ops.SpikingHopfieldOutput),
    ("sparsespike.nn", "Hopfield", sparsespike.nn.ModernHopfield),
]


@pytest.mark.parametrize("package, old, new", RENAMED, ids=[f"{p}.{o}" for p, o, _ in RENAMED])
def test_old_name_warns_and_is_the_new_object(package, old, new):
    module = importlib.import_module(package)
    with pytest.warns(DeprecationWarning, match=f"{package}.{old} is deprecated.*use .*{new.__name__}"):
        assert getattr(module, old) is new


def test_from_import_of_an_old_name_warns():
    with pytest.warns(DeprecationWarning, match="hopfield_retrieve"):
        from sparsespike import hopfield_retrieve  # noqa: F401


def test_old_function_gives_the_new_result():
    q, p = torch.randn(3, 8), torch.randn(5, 8)
    with pytest.warns(DeprecationWarning):
        old = sparsespike.hopfield_retrieve
    torch.testing.assert_close(old(q, p, 0.5), sparsespike.modern_hopfield(q, p, 0.5), rtol=0, atol=0)


def test_unknown_attribute_is_still_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'hopfield_nothing'"):
        sparsespike.hopfield_nothing  # noqa: B018
