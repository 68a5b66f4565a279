"""training.optim.adamw: torch's fused AdamW on CPU floats, the same update as the default one."""

import torch

from sparsespike.training.optim import adamw


def test_fused_on_cpu_and_equal_to_the_default_update():
    torch.manual_seed(0)
    start = torch.randn(40, 30, dtype=torch.float64)
    grads = [torch.randn(40, 30, dtype=torch.float64) for _ in range(5)]
    results = []
    for make in (lambda p: adamw([p], lr=1e-2, weight_decay=1e-4),
                 lambda p: torch.optim.AdamW([p], lr=1e-2, weight_decay=1e-4, foreach=False)):
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

