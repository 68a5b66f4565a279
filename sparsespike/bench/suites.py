"""The bench's suites by name: SWEEP, the full sweep in the order it runs, and ALL, with the
headline (the default run) first. Each module has run(device, quick, repeats, progress),
table(points), as_json(points) and a Point dataclass that its JSON rows rebuild."""

from __future__ import annotations

from . import (
    accuracy,
    allocator,
    batch_sweep,
    conv,
    headline,
    hgrn,
    hopfield,
    lif,
    models,
    readout,
    recipe,
    spike_linear,
    supcon,
    train_epoch,
)

SWEEP = {
    "spike_linear": spike_linear,
    "lif": lif,
    "hgrn": hgrn,
    "hopfield": hopfield,
    "supcon": supcon,
    "conv": conv,
    "train": train_epoch,
    "models": models,
    "batch": batch_sweep,
    "allocator": allocator,
}
# accuracy trains 36 models (43 minutes on 2 cores), recipe 12, readout 30: run on their own, not
# in --full
ALL = {"headline": headline, **SWEEP, "accuracy": accuracy, "recipe": recipe, "readout": readout}
