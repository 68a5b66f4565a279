"""SupConLoss: the module form of :func:`sparsespike.ops.supcon_loss`."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..ops.supcon_loss import (
    DEFAULT_TEMPERATURE,
    check_chunk_size,
    check_reduction,
    check_temperature,
    supcon_loss,
    supcon_loss_reference,
)

__all__ = ["SupConLoss", "supcon_loss", "supcon_loss_reference"]


class SupConLoss(nn.Module):
    """Supervised contrastive loss module: ``SupConLoss(temperature)(features, labels)``.

    See :func:`supcon_loss` for the arguments. The study adds it, weight 0.1, to the
    cross-entropy on its 512-d time-averaged hidden spike features.
    """

    def __init__(
        self,
        temperature: float = DEFAULT_TEMPERATURE,
        chunk_size: Optional[int] = None,
        normalize: bool = True,
        reduction: str = "mean",
        base_temperature: Optional[float] = None,
    ) -> None:
        super().__init__()
        self.temperature = check_temperature(temperature, "temperature")
        self.base_temperature = (
            None if base_temperature is None else check_temperature(base_temperature, "base_temperature")
        )
        self.chunk_size = check_chunk_size(chunk_size)
        self.normalize = bool(normalize)
        self.reduction = check_reduction(reduction)

    def forward(self, features: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        return supcon_loss(
            features,
            labels,
            self.temperature,
            chunk_size=self.chunk_size,
            normalize=self.normalize,
            reduction=self.reduction,
            base_temperature=self.base_temperature,
        )

    def extra_repr(self) -> str:
        parts = [f"temperature={self.temperature}"]
        if self.chunk_size is not None:
            parts.append(f"chunk_size={self.chunk_size}")
        if not self.normalize:
            parts.append("normalize=False")
        if self.reduction != "mean":
            parts.append(f"reduction={self.reduction!r}")
        if self.base_temperature is not None:
            parts.append(f"base_temperature={self.base_temperature}")
        return ", ".join(parts)
