"""sparsespike.nir: export to and import from NIR graphs. Round trips give identical spikes; the
conventions (dt, beta <-> tau and r, reset to zero) are explicit; snnTorch's graphs import with
snnTorch's spikes and ours import into snnTorch with ours; bad graphs and files get clear errors."""

import warnings

import nir
import numpy as np
import pytest
import torch
from torch import nn

import sparsespike.nir as snir
from sparsespike.models import build_model
from sparsespike.nir.conventions import beta_to_nir, nir_to_beta
from sparsespike.nn import LIF, SpikeConv2d, SpikeLinear


def _conv_net():
    torch.manual_seed(0)
    net = nn.Sequential(
        SpikeConv2d(2, 4, 3, padding=1),
        LIF(0.8, 1.0, reset="zero"),
        nn.Flatten(),
        SpikeLinear(4 * 8 * 8, 16),
        LIF(torch.linspace(0.5, 0.95, 16), 0.5, reset="zero"),
        nn.Linear(16, 5),
        LIF(0.7, 1.0, reset="zero"),
    )
    with torch.no_grad():
        for layer in net:
            if isinstance(layer, (nn.Linear, nn.Conv2d)):
                layer.weight.mul_(6.0)
    return net


def _run_sequential(net, x):
    for layer in net:
        x = x.flatten(2) if isinstance(layer, nn.Flatten) else layer(x)
    return x


def _zero_resets(model):
    for module in model.modules():
        if isinstance(module, LIF):
            module.reset = "zero"


def test_a_sequential_round_trips_with_identical_spikes(tmp_path):
    net = _conv_net()
    x = (torch.rand(12, 3, 2, 8, 8, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    expected = _run_sequential(net, x)
    graph = snir.export(net, dt=1e-3, input_shape=(2, 8, 8))
    assert [type(graph.nodes[n]).__name__ for n in ("0", "1", "2", "3", "4", "5", "6")] == [
        "Conv2d",
        "LIF",
        "Flatten",
        "Affine",
        "LIF",
        "Affine",
        "LIF",
    ]
    imported = snir.import_(graph, dt=1e-3)
    assert expected.sum() > 20 and torch.equal(imported(x), expected)
    path = snir.write(tmp_path / "net.nir", graph)
    assert torch.equal(snir.import_(snir.read(path), dt=1e-3)(x), expected)
    assert [p.name for p in tmp_path.iterdir()] == ["net.nir"]  # written atomically, no leftovers


@pytest.mark.parametrize("modality, readout", [("audio", "count"), ("visual", "count"), ("visual", "membrane")])
def test_study_m1_and_m2_export_and_import_end_to_end(modality, readout):
    sizes = {"hidden_sizes": (2, 4)} if modality == "visual" else {"hidden_sizes": (32, 32)}
    for name in ("m1", "m2"):
        torch.manual_seed(0)
        model = build_model(name, modality, feature_size=16, readout=readout, **sizes)
        with pytest.raises(ValueError, match="layer 'encoder.lif.*reset='subtract'.*subtract_reset='zero'"):
            snir.export(model)
        with pytest.warns(UserWarning, match="reset to zero instead of subtraction: encoder.lif"):
            graph = snir.export(model, subtract_reset="zero")
        _zero_resets(model)  # what the graph says the neurons do
        shape = (2, 34, 34) if modality == "visual" else (700,)
        x = (torch.rand(20, 2, *shape, generator=torch.Generator().manual_seed(2)) < 0.2).float()
        with torch.no_grad():
            expected = model.head(model.encoder(x))
        got = snir.import_(graph)(x)
        if readout == "membrane":  # LI: the membrane per step; the model's logits are its time-mean
            assert type(graph.nodes["head_membrane_out"]).__name__ == "LI"
            torch.testing.assert_close(got / x.shape[0], expected, rtol=1e-5, atol=1e-6)
        else:
            assert torch.equal(got, expected)


def test_memories_and_two_input_models_refuse_naming_the_module():
    with pytest.raises(ValueError, match="M4HGRN has a memory \\(hgrn: HGRN\\).*model.encoder"):
        snir.export(build_model("m4", "audio", hidden_sizes=(8, 8), feature_size=8))
    with pytest.raises(ValueError, match="hopfield: HopfieldMemory"):
        snir.export(build_model("m3", "audio", hidden_sizes=(8, 8), feature_size=8))
    with pytest.raises(ValueError, match="two inputs"):
        snir.export(build_model("joint", None, audio_hidden_sizes=(8, 8), visual_hidden_sizes=(2, 2), feature_size=8))
    model = build_model("m4", "audio", hidden_sizes=(8, 8), feature_size=8)  # the spiking backbone alone
    with pytest.warns(UserWarning, match="lif_input, lif1, lif_hidden"):
        backbone = snir.export(model.encoder, subtract_reset="zero")
    assert list(backbone.nodes)[1:-1] == ["fc_input", "lif_input", "fc1", "lif1", "fc_hidden", "lif_hidden"]
    with pytest.raises(ValueError, match="layer '1': reset='none'"):
        snir.export(nn.Sequential(SpikeLinear(3, 3), LIF(0.9, 1.0, reset="none")))
    with pytest.raises(ValueError, match="dt"):
        snir.export(nn.Sequential(SpikeLinear(3, 3)), dt=0.0)
    with pytest.raises(ValueError, match="input_shape"):
        snir.export(nn.Sequential(SpikeConv2d(1, 1, 3)))


def test_the_lif_conventions_are_explicit():
    tau, r, v_leak = beta_to_nir(np.array([0.9, 0.5]), 1e-3, "x")
    np.testing.assert_allclose(tau, [1e-2, 2e-3], rtol=1e-6)  # tau = dt / (1 - beta)
    np.testing.assert_allclose(r, [10.0, 2.0], rtol=1e-6)  # r = tau / dt: one Euler step is beta v + I
    assert not v_leak.any()
    beta, scale = nir_to_beta(tau, r, 1e-3, "x")
    np.testing.assert_allclose(beta, [0.9, 0.5], rtol=1e-6)
    np.testing.assert_allclose(scale, 1.0, rtol=1e-6)
    beta, scale = nir_to_beta(np.array([1e-2]), np.array([1.0]), 1e-3, "x")  # Norse's r = 1: input scaled
    np.testing.assert_allclose(scale, [0.1], rtol=1e-6)
    net = nn.Sequential(SpikeLinear(4, 3), LIF(0.9, 1.0, reset="zero"))
    graph = snir.export(net, dt=1e-3)
    assert graph.metadata["dt"] == 1e-3
    # the dt a graph is read with sets the decay: the same tau at a 10x longer step decays faster
    same = snir.import_(graph)  # the dt the export stored
    with pytest.warns(UserWarning, match="dt=0.005 s, but the graph was exported for dt=0.001 s"):
        faster = snir.import_(graph, dt=5e-3)
    assert same.names == ["0", "1"] and torch.allclose(same.layers[1].beta, torch.tensor(0.9))
    assert faster.names == ["0", "1.input_scale", "1"]  # r dt / tau = 5: the exported r was for 1e-3
    assert torch.allclose(faster.layers[2].beta, torch.tensor(0.5))
    with pytest.raises(ValueError, match="tau must be finite and >= dt"), pytest.warns(UserWarning):
        snir.import_(graph, dt=2e-2)
    # every float32 beta in [0, 1) comes back exactly, 0 (tau = dt) included
    betas = torch.cat(
        [torch.tensor([0.0, 1e-7, 0.5, 0.999999]), torch.rand(2000, generator=torch.Generator().manual_seed(8))]
    )
    net = nn.Sequential(SpikeLinear(4, betas.numel()), LIF(betas, 1.0, reset="zero"))
    assert torch.equal(snir.import_(snir.export(net)).layers[1].beta, betas)


def _euler_lif(current, step: float, threshold: float = 1.0):
    """NIR's LIF (v_leak 0, r 1) stepped by hand: v += (dt / tau) (I - v), a spike above the
    threshold, then reset to 0. ``step`` is dt / tau."""
    v, spikes = torch.zeros(current.shape[1:]), []
    for t in range(current.shape[0]):
        v = v + step * (current[t] - v)
        spikes.append((v > threshold).float())
        v = torch.where(v > threshold, torch.zeros_like(v), v)
    return torch.stack(spikes)


def test_an_input_scale_and_if_neurons_import_as_nir_defines_them():
    weight = np.eye(3, dtype=np.float32)
    graph = nir.NIRGraph.from_list(
        nir.Linear(weight),
        nir.LIF(tau=np.full(3, 1e-2), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3)),
    )
    net = snir.import_(graph, dt=1e-3)
    assert net.names[1].endswith("input_scale")  # r dt / tau = 0.1
    x = torch.full((30, 1, 3), 1.0)
    assert torch.equal(net(x)[:, 0], _euler_lif(x[:, 0], 0.1))
    x = torch.full((30, 1, 3), 2.0)  # r I = 2: v climbs past 1 and fires, resets, climbs again
    expected = _euler_lif(x[:, 0], 0.1)
    assert expected.sum() >= 9 and torch.equal(net(x)[:, 0], expected)
    # IF: dv/dt = r I, so a step of dt adds dt r I: 1 a step here, a spike above 2.5, reset to 0
    graph = nir.NIRGraph.from_list(nir.Linear(weight), nir.IF(r=np.full(3, 1e3), v_threshold=np.full(3, 2.5)))
    spikes = snir.import_(graph, dt=1e-3)(torch.ones(6, 1, 3))[:, 0, 0]
    assert spikes.tolist() == [0, 0, 1, 0, 0, 1]


def _bad(graph_nodes, edges):
    return nir.NIRGraph(nodes=graph_nodes, edges=edges, type_check=False)


def test_bad_graphs_get_errors_naming_the_node():
    w = np.ones((2, 2), np.float32)
    lif = dict(tau=np.full(2, 1e-2), r=np.full(2, 10.0), v_leak=np.zeros(2), v_threshold=np.ones(2))
    inp, out = nir.Input(input_type=np.array([2])), nir.Output(output_type=np.array([2]))
    step = nir.Threshold(threshold=np.ones(2))
    with pytest.raises(ValueError, match="node 'step': Threshold does not import; supported: Affine, Linear, Conv2d"):
        snir.import_(_bad({"input": inp, "step": step, "output": out}, [("input", "step"), ("step", "output")]))
    with pytest.raises(ValueError, match="node 'fc' \\(Affine\\) takes \\(3,\\)"):
        fc = nir.Affine(np.ones((2, 3), np.float32), np.zeros(2, np.float32))
        snir.import_(_bad({"input": inp, "fc": fc, "output": out}, [("input", "fc"), ("fc", "output")]))
    nodes = {"input": inp, "a": nir.Linear(w), "b": nir.Linear(w), "output": out}
    with pytest.raises(ValueError, match="cycle through 'a'"):
        snir.import_(_bad(nodes, [("input", "a"), ("a", "b"), ("b", "a")]))
    with pytest.raises(ValueError, match="node 'input' leads to \\['a', 'b'\\]"):
        snir.import_(_bad(nodes, [("input", "a"), ("input", "b"), ("a", "output"), ("b", "output")]))
    with pytest.raises(ValueError, match="names a node that is not in the graph: 'c'"):
        snir.import_(_bad(nodes, [("input", "a"), ("a", "c")]))
    leaky = nir.LIF(**{**lif, "v_leak": np.full(2, 0.5)})
    with pytest.raises(ValueError, match="node 'n' \\(LIF\\): v_leak must be 0"):
        snir.import_(_bad({"input": inp, "n": leaky, "output": out}, [("input", "n"), ("n", "output")]))
    broken = nir.LIF(**lif)
    broken.tau = None  # a missing parameter
    with pytest.raises(ValueError, match="node 'n' \\(LIF\\) has no tau"):
        snir.import_(_bad({"input": inp, "n": broken, "output": out}, [("input", "n"), ("n", "output")]))
    with pytest.raises(ValueError, match="x must be \\[T, B, 2\\]"):
        snir.import_(nir.NIRGraph.from_list(nir.Linear(w), nir.LIF(**lif)))(torch.zeros(3, 2))
    with pytest.raises(TypeError, match="nir.NIRGraph"):
        snir.import_({"nodes": {}})


def test_files_written_atomically_and_bad_files_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no NIR file"):
        snir.read(tmp_path / "missing.nir")
    corrupt = tmp_path / "corrupt.nir"
    corrupt.write_bytes(b"not hdf5 at all")
    with pytest.raises(ValueError, match="corrupt.nir is not a readable NIR graph"):
        snir.read(corrupt)
    with pytest.raises(TypeError, match="graph must be a nir.NIRGraph"):
        snir.write(tmp_path / "x.nir", "graph")


def _snntorch():
    return pytest.importorskip("snntorch")


def _leaky(n, beta, output=False):
    # vector beta and threshold: snnTorch's exporter cannot take scalars; reset to zero, as NIR
    return _snntorch().Leaky(
        beta=torch.full((n,), beta), threshold=torch.ones(n), reset_mechanism="zero", init_hidden=True, output=output
    )


def _two_layer_net(gain: float):
    """Linear -> LIF -> Linear -> LIF, reset to zero, weights scaled by ``gain`` so that it fires;
    and an input [30, 2, 10]."""
    torch.manual_seed(0)
    net = nn.Sequential(SpikeLinear(10, 6), LIF(0.8, 1.0, reset="zero"), SpikeLinear(6, 4), LIF(0.9, 1.0, reset="zero"))
    with torch.no_grad():
        for layer in net:
            if isinstance(layer, nn.Linear):
                layer.weight.mul_(gain)
    return net, torch.rand(30, 2, 10, generator=torch.Generator().manual_seed(4)) * 2


def _step_by_step(module, x):
    """A peer's imported graph (nirtorch's convention: module(x_t, state) -> (out, state)) over x [T, ...]."""
    state, outputs = None, []
    for t in range(x.shape[0]):
        out, state = module(x[t], state)
        outputs.append(out)
    return torch.stack(outputs)


def test_snntorch_graphs_import_with_snntorch_spikes():
    snntorch = _snntorch()
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 6), _leaky(6, 0.8), nn.Linear(6, 4), _leaky(4, 0.9, output=True))
    x = torch.rand(30, 2, 10, generator=torch.Generator().manual_seed(3)) * 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = export_to_nir(net, x[0], ignore_dims=[0])
    for layer in net:  # the export ran a step: start from rest
        if isinstance(layer, snntorch.Leaky):
            layer.init_leaky()
    expected = []
    for t in range(x.shape[0]):
        out = net(x[t])
        expected.append(out[0] if isinstance(out, tuple) else out)
    expected = torch.stack(expected)
    got = snir.import_(graph, dt=1e-4)  # snnTorch's exporter writes tau for dt = 1e-4 s
    assert expected.sum() > 10 and torch.equal(got(x), expected)


def test_our_graphs_import_into_snntorch_with_our_spikes():
    _snntorch()
    from snntorch.import_nir import import_from_nir

    ours, x = _two_layer_net(gain=4.0)
    expected = ours(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = import_from_nir(snir.export(ours, dt=1e-4))  # snnTorch reads tau with dt = 1e-4 s
    assert expected.sum() > 10 and torch.equal(_step_by_step(theirs, x), expected)


def test_the_docs_example_runs(tmp_path, monkeypatch):
    import re
    from pathlib import Path

    page = (Path(__file__).parent.parent / "docs" / "nir.md").read_text()
    example = re.search(r"```python\n(.*?)```", page, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    with pytest.warns(UserWarning, match="reset to zero instead of subtraction"):
        exec(compile(example, "docs/nir.md", "exec"), scope)
    assert scope["spikes"].shape == (100, 8, 10) and (tmp_path / "m1-audio.nir").exists()


def test_spikingjelly_lifnodes_export_with_their_input_scale():
    from sparsespike.nn import LIFNode

    torch.manual_seed(0)
    net = nn.Sequential(SpikeLinear(10, 6), LIFNode(tau=3.0, v_reset=0.0, step_mode="m"))
    with torch.no_grad():
        net[0].weight.mul_(20.0)
    x = torch.rand(25, 2, 10, generator=torch.Generator().manual_seed(5))
    expected = net(x)
    graph = snir.export(net, dt=1e-3)
    assert np.allclose(graph.nodes["1"].r, 1.0)  # decay_input: the charge is (1 - beta) I
    imported = snir.import_(graph, dt=1e-3)
    assert imported.names == ["0", "1.input_scale", "1"]
    assert expected.sum() > 10 and torch.equal(imported(x), expected)
    with pytest.raises(ValueError, match="layer '1': reset='subtract'"):  # v_reset=None: soft reset
        snir.export(nn.Sequential(SpikeLinear(3, 3), LIFNode(tau=2.0, v_reset=None)))


def test_cuba_lif_imports_as_nir_defines_it_from_snntorch_synaptic():
    snntorch = _snntorch()
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    synaptic = snntorch.Synaptic(
        alpha=torch.full((4,), 0.6), beta=torch.full((4,), 0.85), threshold=torch.ones(4), init_hidden=True
    )
    net = nn.Sequential(nn.Linear(8, 4), synaptic)
    x = torch.rand(30, 2, 8, generator=torch.Generator().manual_seed(6)) * 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = export_to_nir(net, x[0], ignore_dims=[0])
    assert type(graph.nodes["1"]).__name__ == "CubaLIF"
    imported = snir.import_(graph, dt=1e-4)
    assert imported.names == ["0", "1.synapse", "1"]  # w_in dt / tau_syn = r dt / tau_mem = 1
    # NIR's CubaLIF, stepped: the current decays with alpha, the membrane with beta, and a spike
    # resets the membrane only (snnTorch's Synaptic also zeroes the current on reset="zero")
    current = net[0](x).detach()
    syn, mem, expected = torch.zeros(2, 4), torch.zeros(2, 4), []
    for t in range(x.shape[0]):
        syn = 0.6 * syn + current[t]
        mem = 0.85 * mem + syn
        spikes = (mem > 1.0).float()
        mem = mem * (1 - spikes)
        expected.append(spikes)
    expected = torch.stack(expected)
    got = imported(x)
    assert expected.sum() > 10 and torch.equal(got, expected)


def test_our_graphs_import_into_norse_where_its_conventions_hold():
    norse = pytest.importorskip("norse.torch")
    ours, x = _two_layer_net(gain=40.0)
    graph = snir.export(ours, dt=1e-3)  # Norse steps 1e-3 s
    for node in graph.nodes.values():  # Norse ignores r (takes it as 1): give the graph that
        if isinstance(node, nir.LIF):
            node.r = np.ones_like(node.r)
    expected = snir.import_(graph, dt=1e-3)(x)  # we honour r: the input scaled by dt / tau
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = norse.from_nir(graph, dt=1e-3)
    assert expected.sum() > 10 and torch.equal(_step_by_step(theirs, x), expected)


def test_a_lif_without_leak_exports_as_if_and_round_trips():
    torch.manual_seed(0)
    net = nn.Sequential(SpikeLinear(6, 4), LIF(1.0, 2.0, reset="zero"))
    x = torch.rand(20, 2, 6, generator=torch.Generator().manual_seed(7))
    graph = snir.export(net, dt=1e-3)
    assert isinstance(graph.nodes["1"], nir.IF) and np.allclose(graph.nodes["1"].r, 1e3)  # dt r = 1
    expected = net(x)
    assert expected.sum() > 5 and torch.equal(snir.import_(graph)(x), expected)


def test_parameter_shapes_that_do_not_fit_are_named():
    inp, out = nir.Input(input_type=np.array([3])), nir.Output(output_type=np.array([3]))
    affine = nir.Affine(np.ones((3, 3), np.float32), np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="node 'fc' \\(Affine\\): bias of 2 for 3 outputs"):
        snir.import_(_bad({"input": inp, "fc": affine, "output": out}, [("input", "fc"), ("fc", "output")]))
    lif = nir.LIF(tau=np.full(2, 1e-2), r=np.full(2, 10.0), v_leak=np.zeros(2), v_threshold=np.ones(2))
    with pytest.raises(ValueError, match="node 'n' \\(LIF\\) takes v_threshold of shape \\(2,\\)"):
        snir.import_(_bad({"input": inp, "n": lif, "output": out}, [("input", "n"), ("n", "output")]))
    flat = nir.Flatten(input_type={"input": np.array([3])}, start_dim=0, end_dim=-1)
    flat.start_dim = 4
    with pytest.raises(ValueError, match="node 'f' \\(Flatten\\) takes start_dim 4"):
        snir.import_(_bad({"input": inp, "f": flat, "output": out}, [("input", "f"), ("f", "output")]))


def test_per_channel_neurons_and_negative_flatten_dims_round_trip():
    torch.manual_seed(0)
    beta = torch.tensor([0.2, 0.6, 0.9]).reshape(3, 1, 1)  # one decay per channel
    net = nn.Sequential(SpikeConv2d(1, 3, 3, padding=1), LIF(beta, 0.5, reset="zero"), nn.Flatten(2))
    x = (torch.rand(8, 2, 1, 5, 5, generator=torch.Generator().manual_seed(9)) < 0.5).float()
    graph = snir.export(net, input_shape=(1, 5, 5))
    assert graph.nodes["1"].tau.shape == (3, 5, 5)
    imported = snir.import_(graph)
    assert imported.output_shape == (75,) and torch.equal(imported(x), net(x))
    flat = nir.Flatten(input_type={"input": np.array([3, 5, 5])}, start_dim=-3, end_dim=-1)
    graph.nodes["2"] = flat
    assert snir.import_(graph).output_shape == (75,)


def test_more_bad_graphs_and_layers_are_named():
    inp, out = nir.Input(input_type=np.array([2])), nir.Output(output_type=np.array([2]))
    nodes = {"input": inp, "a": nir.Linear(np.ones((2, 2), np.float32)), "output": out}
    with pytest.raises(ValueError, match="an edge leaves the Output node"):
        snir.import_(_bad(nodes, [("input", "a"), ("a", "output"), ("output", "a")]))
    with pytest.raises(ValueError, match="layer '0': groups=2"):
        snir.export(nn.Sequential(SpikeConv2d(2, 2, 3, groups=2)), input_shape=(2, 5, 5))
    conv = nir.Conv2d(
        input_shape=(2, 2), weight=np.ones((1, 1, 3, 3)), stride=1, padding=0, dilation=1, groups=1, bias=np.zeros(1)
    )
    small = nir.Input(input_type=np.array([1, 2, 2]))
    with pytest.raises(ValueError, match="node 'c' \\(Conv2d\\) takes a map of at least"):
        snir.import_(_bad({"input": small, "c": conv, "output": out}, [("input", "c"), ("c", "output")]))
    with pytest.raises(ValueError, match="layer '1': beta of shape \\(3,\\) does not fit"):
        snir.export(nn.Sequential(SpikeLinear(2, 2), LIF(torch.full((3,), 0.5), 1.0, reset="zero")))
