"""SupConLoss: the chunked loss equals a naive full-matrix implementation (forward and gradient),
excludes anchors without positives, never builds a B x B tensor, and rejects bad input.

The oracle below is written plainly, like Khosla et al.'s reference code: exp of the full
similarity matrix, divide by the row sums without the self pair, log, mean over positives.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

from sparsespike.nn import SupConLoss, supcon_loss, supcon_loss_reference
from sparsespike.ops.supcon_loss import _SupConChunked, auto_chunk_size

TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-10)}
GRAD_TOL = {torch.float32: dict(rtol=1e-4, atol=1e-5), torch.float64: dict(rtol=1e-9, atol=1e-10)}


def naive_per_anchor(features, labels, temperature, normalize=True):
    """Per-anchor losses and the anchors that have positives, from the full B x B matrix."""
    z = F.normalize(features, dim=1) if normalize else features
    n = z.shape[0]
    sim = torch.exp(z @ z.T / temperature)
    not_self = ~torch.eye(n, dtype=torch.bool)
    positives = (labels[:, None] == labels[None, :]) & not_self
    log_prob = torch.log(sim / (sim * not_self).sum(1, keepdim=True))
    losses, anchors = [], []
    for i in range(n):
        if positives[i].any():
            losses.append(-log_prob[i][positives[i]].mean())
            anchors.append(i)
    return losses, anchors


def naive(features, labels, temperature, normalize=True):
    losses, _ = naive_per_anchor(features, labels, temperature, normalize)
    return torch.stack(losses).mean() if losses else features.sum() * 0


def make_case(batch, dim, classes, dtype, seed, views=None):
    g = torch.Generator().manual_seed(seed)
    shape = (batch, dim) if views is None else (batch, views, dim)
    features = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
    labels = torch.randint(0, classes, (batch,), generator=g)
    return features, labels


def loss_and_grad(fn, features, labels, **kwargs):
    leaf = features.detach().clone().requires_grad_()
    loss = fn(leaf, labels, **kwargs)
    (grad,) = torch.autograd.grad(loss, leaf)
    return loss.detach(), grad


@given(
    batch=st.integers(1, 48),
    dim=st.integers(1, 12),
    classes=st.integers(1, 24),  # many classes: singleton classes (anchors without positives) are common
    chunk=st.one_of(st.none(), st.integers(1, 52)),
    temperature=st.sampled_from([0.05, 0.07, 0.1, 0.5, 1.0]),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    normalize=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_equals_naive_forward_and_gradient(batch, dim, classes, chunk, temperature, dtype, normalize, seed):
    # dim 1 normalised: the gradient is analytically 0 and both sides are float32 rounding noise
    # that grows as 1/|x| (measured 1.5e-5 at |x| = 0.009), not a comparison
    assume(not (normalize and dim == 1 and dtype == torch.float32))
    features, labels = make_case(batch, dim, classes, dtype, seed)
    if not normalize:
        features = F.normalize(features, dim=1) * 0.9  # |logits| <= 1/tau: the naive exp stays in range
    expected, expected_grad = loss_and_grad(naive, features, labels, temperature=temperature, normalize=normalize)
    loss, grad = loss_and_grad(
        supcon_loss, features, labels, temperature=temperature, chunk_size=chunk, normalize=normalize
    )
    torch.testing.assert_close(loss, expected, **TOL[dtype])
    torch.testing.assert_close(grad, expected_grad, **GRAD_TOL[dtype])
    assert torch.isfinite(grad).all()
    ref, ref_grad = loss_and_grad(supcon_loss_reference, features, labels, temperature=temperature, normalize=normalize)
    torch.testing.assert_close(ref, expected, **TOL[dtype])
    torch.testing.assert_close(ref_grad, expected_grad, **GRAD_TOL[dtype])


@pytest.mark.parametrize("batch, chunk", [(30, 7), (30, 10), (30, 1), (30, 30), (30, 1000), (64, 9)])
def test_chunk_sizes_that_do_and_do_not_divide_the_batch(batch, chunk):
    features, labels = make_case(batch, 8, 5, torch.float32, seed=batch + chunk)
    expected, expected_grad = loss_and_grad(naive, features, labels, temperature=0.07)
    loss, grad = loss_and_grad(supcon_loss, features, labels, temperature=0.07, chunk_size=chunk)
    torch.testing.assert_close(loss, expected, **TOL[torch.float32])
    torch.testing.assert_close(grad, expected_grad, **GRAD_TOL[torch.float32])


@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_reductions_equal_naive_per_anchor(reduction):
    features, labels = make_case(40, 6, 12, torch.float64, seed=3)
    losses, anchors = naive_per_anchor(features, labels, 0.1)
    out = supcon_loss(features, labels, 0.1, chunk_size=6, reduction=reduction)
    if reduction == "sum":
        torch.testing.assert_close(out, torch.stack(losses).sum(), **TOL[torch.float64])
        return
    expected = torch.zeros(40, dtype=torch.float64)
    expected[anchors] = torch.stack(losses)
    assert out.shape == (40,)
    torch.testing.assert_close(out, expected, **TOL[torch.float64])


def test_gradcheck_chunked_function_fp64():
    features, labels = make_case(11, 4, 3, torch.float64, seed=0)
    labels[7] = 9  # one anchor without positives
    z = F.normalize(features, dim=1).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: _SupConChunked.apply(x, labels, 0.3, 4)[0], (z,))
    # unnormalised input: the raw similarities, every chunk shape
    raw = (features * 0.7).requires_grad_()
    for chunk in (1, 3, 11):
        assert torch.autograd.gradcheck(lambda x, c=chunk: _SupConChunked.apply(x, labels, 0.5, c)[0], (raw,))


def test_gradcheck_public_loss_fp64():
    features, labels = make_case(9, 3, 3, torch.float64, seed=1, views=2)
    leaf = features.requires_grad_()
    assert torch.autograd.gradcheck(lambda x: supcon_loss(x, labels, 0.2, chunk_size=5), (leaf,))


def test_anchors_without_positives_are_excluded():
    # classes 1 and 3 occur once: anchors 3 and 6 have no positive (they still act as negatives)
    labels = torch.tensor([0, 0, 1, 2, 2, 2, 3, 0])
    features = torch.randn(8, 5, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    temperature = 0.1
    # by hand, in Python floats, from L_i = -1/|P(i)| sum_p log(exp(s_ip) / sum_{a != i} exp(s_ia))
    z = F.normalize(features, dim=1).tolist()
    s = [[sum(a * b for a, b in zip(zi, zj)) / temperature for zj in z] for zi in z]
    per_anchor = {}
    for i in range(8):
        positives = [p for p in range(8) if p != i and labels[p] == labels[i]]
        if not positives:
            continue
        denominator = sum(math.exp(s[i][a]) for a in range(8) if a != i)
        per_anchor[i] = -sum(math.log(math.exp(s[i][p]) / denominator) for p in positives) / len(positives)
    assert sorted(per_anchor) == [0, 1, 3, 4, 5, 7]
    expected = sum(per_anchor.values()) / len(per_anchor)

    for chunk in (None, 3):
        leaf = features.clone().requires_grad_()
        loss = supcon_loss(leaf, labels, temperature, chunk_size=chunk)
        assert loss.item() == pytest.approx(expected, rel=1e-12)
        # averaging the zeros of the excluded anchors too would give a different number
        assert loss.item() != pytest.approx(sum(per_anchor.values()) / 8, rel=1e-3)
        loss.backward()
        assert torch.isfinite(leaf.grad).all()
        assert leaf.grad[6].abs().sum() > 0  # an excluded anchor still gets a gradient as a negative
        none = supcon_loss(features, labels, temperature, chunk_size=chunk, reduction="none")
        assert none[2].item() == 0 and none[6].item() == 0
        for i, value in per_anchor.items():
            assert none[i].item() == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("fn", [supcon_loss, supcon_loss_reference], ids=["chunked", "reference"])
@pytest.mark.parametrize("batch", [1, 2, 17])
def test_all_singletons_give_zero_and_a_finite_gradient(fn, batch):
    features = torch.randn(batch, 6, generator=torch.Generator().manual_seed(batch), requires_grad=True)
    labels = torch.arange(batch)
    loss = fn(features, labels, 0.07)
    assert loss.item() == 0.0
    loss.backward()
    assert features.grad is not None and torch.isfinite(features.grad).all()
    assert features.grad.abs().max() == 0
    assert fn(features, labels, 0.07, reduction="none").abs().max() == 0


@pytest.mark.parametrize("views", [1, 2, 3])
def test_multi_view_equals_naive_on_views_as_anchors(views):
    features, labels = make_case(10, 6, 4, torch.float32, seed=views, views=views)
    # Khosla's layout: the views stacked one after another, the labels repeated per view
    flat = torch.cat(torch.unbind(features, dim=1), dim=0)
    expected, _ = loss_and_grad(naive, flat, torch.cat([labels] * views), temperature=0.07)
    loss, grad = loss_and_grad(supcon_loss, features, labels, temperature=0.07, chunk_size=7)
    torch.testing.assert_close(loss, expected, **TOL[torch.float32])
    assert grad.shape == features.shape
    leaf = flat.detach().clone().requires_grad_()
    naive(leaf, torch.cat([labels] * views), 0.07).backward()
    naive_grad = torch.stack(torch.chunk(leaf.grad, views, dim=0), dim=1)
    torch.testing.assert_close(grad, naive_grad, **GRAD_TOL[torch.float32])
    assert supcon_loss(features, labels, reduction="none").shape == (10, views)


def test_simclr_when_labels_are_none():
    features, _ = make_case(8, 5, 1, torch.float64, seed=2, views=2)
    torch.testing.assert_close(supcon_loss(features, None, 0.5), supcon_loss(features, torch.arange(8), 0.5))


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor (elements) that any op produces, in the forward and the backward."""

    def __init__(self):
        super().__init__()
        self.largest = 0
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        self.ops += 1
        return out


def largest_saved_and_produced(fn, features, labels, **kwargs):
    saved = []
    leaf = features.detach().clone().requires_grad_()
    with LargestTensor() as mode:
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
            loss = fn(leaf, labels, **kwargs)
        forward_ops = mode.ops
        loss.backward()
    assert mode.ops > forward_ops  # the backward ran under the recorder too
    return max(saved), mode.largest


def test_memory_stays_o_batch_times_chunk():
    batch, dim, chunk = 4096, 64, 256
    features, labels = make_case(batch, dim, 100, torch.float32, seed=0)
    largest_saved, largest_produced = largest_saved_and_produced(
        supcon_loss, features, labels, temperature=0.07, chunk_size=chunk
    )
    assert largest_saved <= batch * dim < batch * batch  # the graph keeps no B x B tensor
    assert largest_produced <= batch * chunk  # nor does any op build one, forward or backward
    # the recorders see a full matrix when there is one
    small = 256
    ref_saved, ref_produced = largest_saved_and_produced(
        supcon_loss_reference, features[:small], labels[:small], temperature=0.07
    )
    assert ref_saved >= small * small and ref_produced >= small * small


def test_auto_chunk_bounds_the_block():
    assert auto_chunk_size(1) == 1 and auto_chunk_size(512) == 512
    for n in (3000, 8192, 100_000):
        assert 1 <= auto_chunk_size(n) < n and auto_chunk_size(n) * n <= 1 << 22


def test_deterministic():
    features, labels = make_case(300, 16, 10, torch.float32, seed=5)
    first = loss_and_grad(supcon_loss, features, labels, chunk_size=64)
    second = loss_and_grad(supcon_loss, features, labels, chunk_size=64)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_low_precision_input_is_computed_in_float32():
    features, labels = make_case(20, 8, 4, torch.float32, seed=4)
    half = features.bfloat16()
    loss = supcon_loss(half, labels)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, naive(half.float(), labels, 0.07), **TOL[torch.float32])
    leaf = half.clone().requires_grad_()
    supcon_loss(leaf, labels).backward()
    assert leaf.grad.dtype == torch.bfloat16 and torch.isfinite(leaf.grad.float()).all()


def test_autocast_does_not_lower_the_precision():
    features, labels = make_case(20, 8, 4, torch.float32, seed=6)
    expected = supcon_loss(features, labels, chunk_size=6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = supcon_loss(features, labels, chunk_size=6)
    torch.testing.assert_close(loss, expected, **TOL[torch.float32])


def test_module():
    features, labels = make_case(24, 8, 5, torch.float32, seed=8)
    module = SupConLoss(0.1, chunk_size=5)
    torch.testing.assert_close(module(features, labels), supcon_loss(features, labels, 0.1))
    assert SupConLoss().temperature == 0.07
    assert "temperature=0.1" in repr(module) and "chunk_size=5" in repr(module)
    # Khosla's scaling by temperature / base_temperature
    scaled = SupConLoss(0.1, base_temperature=0.07)(features, labels)
    torch.testing.assert_close(scaled, supcon_loss(features, labels, 0.1) * (0.1 / 0.07))
    assert list(module.parameters()) == [] and module.state_dict() == {}


FEATURES = torch.randn(4, 3)
LABELS = torch.tensor([0, 0, 1, 1])


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: supcon_loss([[1.0]], LABELS), TypeError, "features must be a torch.Tensor"),
        (lambda: supcon_loss(torch.randn(4), LABELS), ValueError, "features must be [batch, dim]"),
        (lambda: supcon_loss(torch.randn(4, 2, 2, 2), LABELS), ValueError, "features must be [batch, dim]"),
        (lambda: supcon_loss(torch.ones(4, 3, dtype=torch.int64), LABELS), TypeError, "features must be a floating"),
        (lambda: supcon_loss(torch.randn(0, 3), LABELS[:0]), ValueError, "features has zero elements"),
        (lambda: supcon_loss(torch.randn(4, 0), LABELS), ValueError, "features has zero elements"),
        (
            lambda: supcon_loss(FEATURES.clone().index_fill_(0, torch.tensor([1]), float("nan")), LABELS),
            ValueError,
            "features contains NaN or Inf",
        ),
        (lambda: supcon_loss(FEATURES, LABELS.float()), TypeError, "labels must be an integer tensor"),
        (lambda: supcon_loss(FEATURES, LABELS.bool()), TypeError, "labels must be an integer tensor"),
        (lambda: supcon_loss(FEATURES, LABELS[:3]), ValueError, "labels has 3 entries but features has batch size 4"),
        (lambda: supcon_loss(FEATURES, LABELS[:, None]), ValueError, "labels must be 1-D"),
        (lambda: supcon_loss(FEATURES, [0, 0, 1, 1]), TypeError, "labels must be a torch.Tensor"),
        (lambda: supcon_loss(FEATURES, None), ValueError, "labels is required"),
        (lambda: supcon_loss(FEATURES, LABELS.to("meta")), ValueError, "labels is a meta tensor"),
        (lambda: supcon_loss(FEATURES, LABELS, 0.0), ValueError, "temperature must be finite and > 0"),
        (lambda: supcon_loss(FEATURES, LABELS, -0.1), ValueError, "temperature must be finite and > 0"),
        (lambda: supcon_loss(FEATURES, LABELS, float("inf")), ValueError, "temperature must be finite and > 0"),
        (lambda: supcon_loss(FEATURES, LABELS, float("nan")), ValueError, "temperature must be finite and > 0"),
        (lambda: supcon_loss(FEATURES, LABELS, "0.1"), TypeError, "temperature must be a real number"),
        (lambda: supcon_loss(FEATURES, LABELS, True), TypeError, "temperature must be a real number"),
        (lambda: supcon_loss(FEATURES, LABELS, base_temperature=0), ValueError, "base_temperature must be"),
        (lambda: supcon_loss(FEATURES, LABELS, chunk_size=0), ValueError, "chunk_size must be >= 1"),
        (lambda: supcon_loss(FEATURES, LABELS, chunk_size=2.5), TypeError, "chunk_size must be an int"),
        (lambda: supcon_loss(FEATURES, LABELS, reduction="avg"), ValueError, "reduction must be one of"),
        (lambda: SupConLoss(temperature=0), ValueError, "temperature must be finite and > 0"),
        (lambda: SupConLoss(chunk_size=-1), ValueError, "chunk_size must be >= 1"),
        (lambda: SupConLoss(reduction="max"), ValueError, "reduction must be one of"),
        (lambda: supcon_loss_reference(FEATURES, LABELS[:2]), ValueError, "labels has 2 entries"),
    ],
)
def test_bad_input_names_the_argument(call, error, message):
    with pytest.raises(error, match=message.replace("[", r"\[")):
        call()


@pytest.mark.cuda
def test_cuda_equals_naive_and_peak_memory_is_o_batch_times_chunk():
    device = torch.device("cuda")
    features, labels = make_case(200, 16, 30, torch.float32, seed=9)
    expected, expected_grad = loss_and_grad(naive, features, labels, temperature=0.07)
    loss, grad = loss_and_grad(supcon_loss, features.to(device), labels.to(device), temperature=0.07, chunk_size=33)
    torch.testing.assert_close(loss.cpu(), expected, **TOL[torch.float32])
    torch.testing.assert_close(grad.cpu(), expected_grad, **GRAD_TOL[torch.float32])

    batch, dim, chunk = 8192, 128, 512
    features, labels = make_case(batch, dim, 100, torch.float32, seed=10)
    features, labels = features.to(device), labels.to(device)

    def peak(fn, **kwargs):
        torch.cuda.synchronize()
        leaf = features.clone().requires_grad_()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn(leaf, labels, **kwargs).backward()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base

    chunked, full = peak(supcon_loss, chunk_size=chunk), peak(supcon_loss_reference)
    block = batch * chunk * 4
    assert chunked <= 8 * block + 8 * batch * dim * 4  # a few [chunk, B] blocks and [B, D] tensors
    assert chunked < batch * batch * 4 <= full
