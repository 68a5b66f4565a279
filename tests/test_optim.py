"""training.optim.adamw: torch's fused AdamW on CPU floats, the same update as the default one."""

import os
import subprocess
import sys

import pytest
import torch

from sparsespike.training.optim import adamw


def test_fused_on_cpu_and_equal_to_the_default_update():
    torch.manual_seed(0)
    start = torch.randn(40, 30, dtype=torch.float64)
    grads = [torch.randn(40, 30, dtype=torch.float64) for _ in range(5)]
    results = []
    for make in (
        lambda p: adamw([p], lr=1e-2, weight_decay=1e-4),
        lambda p: torch.optim.AdamW([p], lr=1e-2, weight_decay=1e-4, foreach=False),
    ):
        p = torch.nn.Parameter(start.clone())
        opt = make(p)
        for g in grads:
            p.grad = g.clone()
            opt.step()
        results.append((p.detach(), opt))
    (fused_p, fused_opt), (plain_p, _) = results
    assert fused_opt.defaults["fused"]
    torch.testing.assert_close(fused_p, plain_p, rtol=1e-12, atol=1e-12)
    assert not torch.equal(fused_p, start)


TRITON_STEP = """
import torch
from sparsespike.models import build_model
from sparsespike.training import TrainConfig, distributed
from sparsespike.training.loop import run_epoch
from sparsespike.training.optim import adamw

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
model = build_model("m1", "audio", num_classes=4, hidden_sizes=(8, 8), feature_size=8).to(device)
optimizer = adamw(model.parameters(), lr=1e-3)  # torch imports triton here (torch._dynamo)
x, y = (torch.rand(4, 3, 700) < 0.05).float(), torch.arange(4)
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=2)
config = TrainConfig(model="m1", dataset="randman", batch_size=2, progress=False)
metrics = run_epoch(model, [("audio", loader)], config, device, distributed.Context(), 0.0, optimizer, epoch=1)
print("trained", metrics["samples"])
"""


@pytest.mark.slow  # end to end: whole runs or subprocesses
def test_triton_backend_trains_in_a_fresh_process():
    # The optimizer imported triton before sparsespike switched the interpreter on, which left
    # tl.sum/tl.cumsum compiled-mode: "Cannot call @triton.jit'd outside of the scope of a kernel".
    # A fresh process, since this test session set TRITON_INTERPRET=1 (conftest) long ago.
    pytest.importorskip("triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, "-c", TRITON_STEP], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "trained 4" in result.stdout
