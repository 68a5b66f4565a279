"""The training loop: AdamW, cosine schedule, gradient clipping, cross-entropy plus the study's
supervised contrastive term, early stopping, per-epoch JSON-lines metrics, atomic checkpoints and
exact resumption, in one process or under DDP (torchrun).

Resumption is exact at epoch granularity: every epoch's sample order is a function of (seed,
epoch) and the kernels are deterministic, so stopping after epoch k and resuming gives the same
weights as never stopping. A run killed mid-epoch resumes from its last completed epoch.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .._atomic import atomic_write, remove_partial_writes
from ..models.calibration import calibrate_firing
from ..models.contract import modalities_of
from ..models.registry import build_model, model_modalities
from ..ops.supcon_loss import supcon_loss
from . import distributed
from .activity import ActivityPenalty
from .bands import BandMonitor, band_summary
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .optim import adamw

LAST, BEST, METRICS = "last.pt", "best.pt", "metrics.jsonl"


class TrainingDiverged(FloatingPointError):
    """The loss or the weights became NaN or infinite during training (a FloatingPointError, as
    before this class existed); the message names the epoch and step."""


@dataclass
class Split:
    """One modality's train and evaluation data."""

    modality: str
    train: Dataset
    eval: Dataset
    num_classes: int


@dataclass
class RunState:
    epoch: int = 0  # completed epochs
    best_score: float = -math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


# ----------------------------------------------------------------------------- data and model


def _subset(dataset: Dataset, limit: Optional[int], seed: int) -> Dataset:
    if limit is None or limit >= len(dataset):
        return dataset
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)).tolist()
    return torch.utils.data.Subset(dataset, sorted(order[:limit]))


def load_splits(config: TrainConfig) -> list[Split]:
    """The datasets of a run: one Split, or one per modality, in the model's order, for a model that
    takes several (the joint model: visual, audio)."""
    from ..data import dataset_info, load_dataset  # data is optional for library users

    splits = []
    for name in config.dataset_names:
        info = dataset_info(name)
        eval_split = config.eval_split or ("valid" if "valid" in info.splits else "test")
        if eval_split not in info.splits:
            raise ValueError(f"eval_split {eval_split!r} is not a split of {name} (splits: {info.splits})")
        kwargs = dict(data_dir=config.data_dir, download=config.download, cache_dir=config.cache_dir)
        train = load_dataset(name, "train", **kwargs)
        evaluation = load_dataset(name, eval_split, **kwargs)
        splits.append(
            Split(
                train.info.modality,
                _subset(train, config.limit_train, config.seed),
                _subset(evaluation, config.limit_eval, config.seed + 1),
                train.info.num_classes,
            )
        )
    _check_modalities(config, splits)
    return splits


def _check_modalities(config: TrainConfig, splits: list[Split]) -> None:
    """A model that takes several modalities needs one dataset per modality, in its order, and one
    label space for all of them (its head is shared)."""
    expected = model_modalities(config.model)
    if expected is None:
        return
    got = [s.modality for s in splits]
    if got != list(expected):
        needed = " then ".join(f"{'an' if m[0] in 'aeiou' else 'a'} {m}" for m in expected)
        raise ValueError(f"the {config.model} model needs {needed} dataset, got {config.dataset!r} ({'+'.join(got)})")
    classes = {name: s.num_classes for name, s in zip(config.dataset_names, splits)}
    if len(set(classes.values())) > 1:
        raise ValueError(f"the {config.model} model's datasets must share one label space, got classes {classes}")


def build(config: TrainConfig, splits: list[Split]) -> nn.Module:
    """The config's model for the run's data, by name (see sparsespike.models.build_model): for the
    first dataset's modality (a model that takes several takes them all) and its classes."""
    split = splits[0]
    options = dict(
        config.model_options,
        memory=config.memory,
        surrogate=config.surrogate,
        surrogate_param=config.surrogate_param,
        grad_band=config.grad_band,
        readout=config.readout,
    )
    return build_model(config.model, split.modality, num_classes=split.num_classes, backend=config.backend, **options)


def _batches(order: list[int], batch_size: int, drop_last: bool) -> list[list[int]]:
    stop = len(order) - len(order) % batch_size if drop_last else len(order)
    return [order[i : i + batch_size] for i in range(0, stop, batch_size)]


def _loader(dataset: Dataset, batches: list[list[int]], config: TrainConfig, device: torch.device) -> DataLoader:
    return DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=config.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )


def _interleave(loaders: list[tuple[str, DataLoader]]) -> Iterator[tuple[str, Any]]:
    """Alternate batches of the loaders (visual, audio, visual, ...), then the rest of the longer."""
    iterators = [(modality, iter(loader)) for modality, loader in loaders]
    while iterators:
        for entry in list(iterators):
            modality, iterator = entry
            try:
                yield modality, next(iterator)
            except StopIteration:
                iterators.remove(entry)


# ----------------------------------------------------------------------------- one epoch


def _loss(output, labels: torch.Tensor, scl_weight: float, temperature: float):
    ce = F.cross_entropy(output.logits, labels)
    if scl_weight > 0:
        scl = supcon_loss(output.features, labels, temperature)
        return ce + scl_weight * scl, ce, scl
    return ce, ce, torch.zeros((), device=ce.device)


class _Meter:
    """Sums of per-sample metrics, per modality, reduced over processes at the end."""

    KEYS = ("loss", "ce", "scl", "activity", "correct", "samples", "density")

    def __init__(self, modalities: list[str]) -> None:
        self.modalities = modalities
        self.sums = {m: dict.fromkeys(self.KEYS, 0.0) for m in modalities}

    def add(self, modality: str, output, labels: torch.Tensor, loss, ce, scl, activity) -> None:
        n = labels.shape[0]
        s = self.sums[modality]
        s["loss"] += float(loss) * n
        s["ce"] += float(ce) * n
        s["scl"] += float(scl) * n
        s["activity"] += float(activity) * n
        s["correct"] += float((output.logits.argmax(1) == labels).sum())
        s["samples"] += n
        s["density"] += float(output.rates.detach().float().mean()) * n

    def reduce(self, ctx: distributed.Context, device: torch.device) -> dict[str, dict[str, float]]:
        flat = [self.sums[m][k] for m in self.modalities for k in self.KEYS]
        flat = distributed.all_reduce_sums(flat, ctx, device)
        result = {}
        for i, m in enumerate(self.modalities):
            values = dict(zip(self.KEYS, flat[i * len(self.KEYS) : (i + 1) * len(self.KEYS)]))
            n = max(values["samples"], 1.0)
            result[m] = {
                "loss": values["loss"] / n,
                "ce": values["ce"] / n,
                "scl": values["scl"] / n,
                "activity_penalty": values["activity"] / n,
                "acc": 100.0 * values["correct"] / n,
                "hidden_density": values["density"] / n,
                "samples": int(values["samples"]),
            }
        return result


def _progress(iterable, total: int, desc: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)


def run_epoch(
    model: nn.Module,
    loaders: list[tuple[str, DataLoader]],
    config: TrainConfig,
    device: torch.device,
    ctx: distributed.Context,
    scl_weight: float,
    optimizer: Optional[torch.optim.Optimizer] = None,
    desc: str = "",
    epoch: Optional[int] = None,
    bands: Optional[BandMonitor] = None,
    activity: Optional[ActivityPenalty] = None,
) -> dict[str, Any]:
    """Train (with an optimizer) or evaluate (without) over the loaders; returns the metrics.

    With ``bands`` (training, a model with compact-support surrogates) the metrics also hold
    each such LIF's mean band-active fraction ("band_active"), and a starved band warns once.
    With ``activity`` (training) the metrics hold each hidden LIF's mean firing rate
    ("hidden_rates"), and with its weight the loss carries its penalty on firing above the target.

    Training checks every step that the loss is finite, and after every optimizer step that the
    weights are (event-driven ops skip silent inputs, so a NaN weight row can stay invisible in
    the loss for epochs); either raises TrainingDiverged naming ``epoch`` (1-based) and the step.
    """
    training = optimizer is not None
    params = [p for p in model.parameters() if p.requires_grad]
    where = f"epoch {epoch}" if epoch is not None else (desc or "training")
    model.train(training)
    meter = _Meter([m for m, _ in loaders])
    total = sum(len(loader) for _, loader in loaders)
    started, waiting = time.perf_counter(), 0.0
    batches = _progress(_interleave(loaders), total, desc, config.progress and ctx.is_main)
    bands = bands if training and bands else None
    activity = activity if training else None
    if bands:
        bands.start_epoch()
    with torch.set_grad_enabled(training):
        fetch = time.perf_counter()
        for step, (modality, (x, labels)) in enumerate(batches):
            waiting += time.perf_counter() - fetch
            x, labels = x.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            output = model(x, modality)  # every model takes its batch's modality (models.contract)
            loss, ce, scl = _loss(output, labels, scl_weight, config.scl_temperature)
            penalty = activity.penalty() if activity is not None else None
            if penalty is not None:
                loss = loss + penalty
            if training:
                # under DDP every rank must stop at the same step, or the others hang in backward
                if distributed.any_rank(not bool(torch.isfinite(loss)), ctx, device):
                    raise TrainingDiverged(
                        f"training diverged: the loss became non-finite ({float(loss.detach())} "
                        f"on rank {ctx.rank}) at {where} step {step + 1}; try a lower learning "
                        f"rate (--lr, now {config.lr})"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                bad = _first_non_finite(params)
                if bad is not None:
                    name = next(n for n, p in model.named_parameters() if p is params[bad])
                    raise TrainingDiverged(
                        f"training diverged: the weights of {name} became non-finite after the "
                        f"optimizer step at {where} step {step + 1}; try a lower learning rate "
                        f"(--lr, now {config.lr})"
                    )
            meter.add(
                modality,
                output,
                labels,
                loss.detach(),
                ce.detach(),
                scl.detach(),
                0.0 if penalty is None else penalty.detach(),
            )
            if bands:
                bands.add(step)
            if hasattr(batches, "set_postfix") and step % 10 == 0:
                band = {"band": band_summary(bands.last, short=True)} if bands else {}
                batches.set_postfix(loss=f"{float(loss):.3f}", **band)
            fetch = time.perf_counter()
    per_modality = meter.reduce(ctx, device)
    if training and not any(v["samples"] for v in per_modality.values()):
        # never report an epoch without a step as trained (_fit refuses such batch sizes up front)
        raise ValueError(
            f"{where}: no training step ran (batch_size {config.batch_size} is larger than every "
            f"process's share of the training set)"
        )
    seconds = time.perf_counter() - started
    samples = sum(v["samples"] for v in per_modality.values())
    metrics: dict[str, Any] = {
        "seconds": seconds,
        "data_wait_seconds": waiting,
        "samples": samples,
        "samples_per_second": samples / seconds if seconds > 0 else 0.0,
    }
    if bands:
        metrics["band_active"] = bands.means()
    if activity is not None:
        metrics["hidden_rates"] = activity.epoch_rates()
    if len(per_modality) == 1:
        metrics.update(next(iter(per_modality.values())))
    else:
        for modality, values in per_modality.items():
            metrics.update({f"{modality}_{k}": v for k, v in values.items()})
        # a model on several modalities scores the mean of their accuracies (as the study averages)
        metrics["acc"] = sum(v["acc"] for v in per_modality.values()) / len(per_modality)
        metrics["loss"] = sum(v["loss"] * v["samples"] for v in per_modality.values()) / max(samples, 1)
    return metrics


def _rates_summary(rates: dict[str, float]) -> str:
    return " ".join(f"{name.rsplit('.', 1)[-1]} {100 * rate:.1f}%" for name, rate in rates.items())


def _first_non_finite(params: list[torch.Tensor]) -> Optional[int]:
    """Index of the first parameter holding NaN or Inf, else None. A sum per tensor and one host
    sync: NaN and Inf propagate through a sum, and it is the cheapest reduction on CPU (study-size
    audio M1, 2.3M weights: 0.2 ms; max |w| through _foreach_norm(inf) took 3-24 ms)."""
    sums = torch.stack([p.detach().sum() for p in params])
    if bool(torch.isfinite(sums).all()):
        return None
    return int((~torch.isfinite(sums)).nonzero()[0, 0])


# ----------------------------------------------------------------------------- the run


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _write_metrics(path: Path, history: list[dict[str, Any]]) -> None:
    """Rewrite metrics.jsonl from the checkpointed history (atomically), so after a resume the
    file holds exactly one line per completed epoch."""
    atomic_write(path, "".join(json.dumps(row) + "\n" for row in history).encode())


def _restore(out: Path, config: TrainConfig, model: nn.Module, optimizer, scheduler, log) -> RunState:
    path = out / LAST
    if not config.resume:
        if path.exists():
            raise FileExistsError(
                f"{out} already holds a run ({path}); pass --resume to continue it or choose another --out"
            )
        return RunState()
    if not path.exists():
        log(f"--resume: no checkpoint in {out}, starting a new run")
        return RunState()
    state = load_checkpoint(path)
    saved = TrainConfig.from_dict(state["config"])
    differing = saved.result_fields_differing(config)
    if differing:
        listed = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in sorted(differing.items()))
        raise ValueError(f"cannot resume {path} with different settings ({listed})")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    run = RunState(**state["run"])
    log(f"resumed {path} after epoch {run.epoch}")
    return run


def _calibrate(model: nn.Module, splits: list[Split], config: TrainConfig, device: torch.device, log) -> None:
    """Scale each spiking layer to fire at the target rate on a fixed sample of the training set
    (the same on every DDP rank), so that spikes reach the output before the first step."""
    done: set[str] = set()
    for split in splits:
        if config.calibrate_modalities is not None and split.modality not in config.calibrate_modalities:
            continue
        order = torch.randperm(len(split.train), generator=torch.Generator().manual_seed(config.seed + 7)).tolist()
        x = torch.stack([split.train[i][0] for i in order[: config.calibration_samples]]).to(device)
        result = calibrate_firing(model, lambda: model(x, split.modality), skip=done)
        done.update(result)
        log(
            "calibrated firing: "
            + ", ".join(f"{n} x{r['scale']:.2f} -> {100 * r['rate']:.1f}%" for n, r in result.items())
        )


def fit(config: TrainConfig, on_ready: Optional[Callable[[], None]] = None) -> dict[str, Any]:
    """Train per ``config``; returns a summary (best accuracy and epoch, epochs run, the metrics
    history, the trained model: the last epoch's weights; best.pt holds the best).

    ``on_ready`` is called once the set-up is done (data opened, model built, checkpoint restored),
    before calibration and the first step: the command line tells a user's mistake in the set-up
    from a failure during training by it. Raises TrainingDiverged when the loss or the weights
    become non-finite. Under torchrun every process calls this; rank 0 writes the files.
    """
    requested = torch.device(
        "cuda" if config.device.startswith("cuda") or (config.device == "auto" and torch.cuda.is_available()) else "cpu"
    )
    ctx = distributed.setup(requested)
    try:
        return _fit(config, ctx, on_ready or (lambda: None))
    finally:
        distributed.teardown(ctx)


def _check_batch_size(config: TrainConfig, splits: list[Split], ctx: distributed.Context) -> None:
    """Training drops the last partial batch (every step a full batch, as the study): a training
    set smaller than one batch per process would train nothing, so it is refused here."""
    for name, split in zip(config.dataset_names, splits):
        share = len(split.train) // ctx.world_size
        if share < config.batch_size:
            per_process = f", {share} per process of {ctx.world_size}" if ctx.distributed else ""
            raise ValueError(
                f"batch_size (--batch-size) {config.batch_size} is larger than the training set of "
                f"{name} ({len(split.train)} samples{per_process}): an epoch would run no step; "
                f"lower the batch size or use more training samples (--limit-train)"
            )


def _fit(config: TrainConfig, ctx: distributed.Context, on_ready: Callable[[], None]) -> dict[str, Any]:
    device = distributed.device_for(config.device, ctx)
    out = Path(config.out)
    log = print if ctx.is_main else (lambda *_: None)
    torch.manual_seed(config.seed)
    splits = load_splits(config)
    _check_batch_size(config, splits, ctx)
    model = build(config, splits).to(device)
    scl_weight = float(getattr(model, "supcon_weight", 0.0) if config.scl_weight is None else config.scl_weight)
    optimizer = adamw(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs, eta_min=config.min_lr)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        remove_partial_writes(out)  # a checkpoint or metrics write cut short by a kill
    distributed.barrier(ctx)
    run = _restore(out, config, model, optimizer, scheduler, log)
    on_ready()
    if run.epoch == 0 and config.init == "calibrated":
        _calibrate(model, splits, config, device, log)
    if ctx.distributed:
        ids = [device.index] if device.type == "cuda" else None
        # a model with one encoder per modality leaves the others unused in each batch
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=ids, find_unused_parameters=len(modalities_of(model)) > 1
        )
    bands = BandMonitor(model)
    # records every hidden layer's rate for the log; penalises only with a weight
    activity = ActivityPenalty(model, config.activity_target, config.activity_weight)
    params = sum(p.numel() for p in model.parameters())
    log(
        f"{config.model} on {config.dataset}: {params:,} parameters, {sum(len(s.train) for s in splits)} train / "
        f"{sum(len(s.eval) for s in splits)} eval samples, device {device}, world size {ctx.world_size}, "
        f"SCL weight {scl_weight}"
    )
    eval_loaders = [
        (
            s.modality,
            _loader(
                s.eval,
                _batches(
                    distributed.epoch_order(len(s.eval), config.seed, 0, False, ctx, equal_shares=False),
                    config.batch_size,
                    False,
                ),
                config,
                device,
            ),
        )
        for s in splits
    ]

    try:
        while run.epoch < config.epochs and run.bad_epochs < config.patience:
            epoch = run.epoch
            train_loaders = [
                (
                    s.modality,
                    _loader(
                        s.train,
                        _batches(
                            distributed.epoch_order(len(s.train), config.seed, epoch, True, ctx, equal_shares=True),
                            config.batch_size,
                            True,
                        ),
                        config,
                        device,
                    ),
                )
                for s in splits
            ]
            lr = optimizer.param_groups[0]["lr"]
            train = run_epoch(
                model,
                train_loaders,
                config,
                device,
                ctx,
                scl_weight,
                optimizer,
                desc=f"epoch {epoch + 1}/{config.epochs} train",
                epoch=epoch + 1,
                bands=bands,
                activity=activity,
            )
            evaluation = run_epoch(
                model, eval_loaders, config, device, ctx, scl_weight, desc=f"epoch {epoch + 1}/{config.epochs} eval"
            )
            scheduler.step()
            row = {
                "epoch": epoch + 1,
                "lr": lr,
                **{f"train_{k}": v for k, v in train.items()},
                **{f"eval_{k}": v for k, v in evaluation.items()},
            }
            if ctx.distributed:
                checksums = distributed.replica_checksums(model, ctx, device)
                if any(c != checksums[0] for c in checksums):
                    raise RuntimeError(f"DDP replicas diverged after epoch {epoch + 1}: per-rank parameter sums differ")
                row["replicas_in_sync"] = len(checksums)
            run.history.append(row)
            run.epoch = epoch + 1
            improved = evaluation["acc"] > run.best_score
            if improved:
                run.best_score, run.best_epoch, run.bad_epochs = evaluation["acc"], epoch + 1, 0
            else:
                run.bad_epochs += 1
            if ctx.is_main:
                state = {
                    "config": config.to_dict(),
                    "model": _unwrap(model).state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "run": vars(run),
                }
                if improved:
                    save_checkpoint(
                        {
                            "config": config.to_dict(),
                            "model": state["model"],
                            "epoch": epoch + 1,
                            "eval_acc": evaluation["acc"],
                        },
                        out / BEST,
                    )
                save_checkpoint(state, out / LAST)
                _write_metrics(out / METRICS, run.history)
            log(
                f"epoch {epoch + 1}: train loss {train['loss']:.4f} acc {train['acc']:.2f}% | eval acc "
                f"{evaluation['acc']:.2f}% | {train['samples_per_second']:.0f} samples/s, data wait "
                f"{train['data_wait_seconds']:.2f} of {train['seconds']:.2f} s"
                + (f" | band active: {band_summary(train['band_active'])}" if "band_active" in train else "")
                + (f" | hidden rates: {_rates_summary(train['hidden_rates'])}" if "hidden_rates" in train else "")
            )
            distributed.barrier(ctx)
    finally:
        activity.close()  # the returned model carries no hooks
    stopped_early = run.bad_epochs >= config.patience and run.epoch < config.epochs
    if stopped_early:
        log(f"early stop: no improvement for {config.patience} epochs")
    return {
        "best_eval_acc": run.best_score,
        "best_epoch": run.best_epoch,
        "epochs": run.epoch,
        "stopped_early": stopped_early,
        "out": str(out),
        "history": run.history,
        "world_size": ctx.world_size,
        "model": _unwrap(model),
    }


def load_trained(path, device: str = "cpu", backend: Optional[str] = None) -> tuple[nn.Module, TrainConfig]:
    """A model and its config from a best.pt / last.pt checkpoint (for evaluation and analysis)."""
    state = load_checkpoint(path, map_location=device)
    config = TrainConfig.from_dict(state["config"])
    if backend is not None:
        config.backend = backend
    from ..data import dataset_info

    infos = [dataset_info(n) for n in config.dataset_names]
    splits = [Split(info.modality, None, None, info.num_classes) for info in infos]
    model = build(config, splits)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path} does not match model {config.model}: {exc}") from exc
    return model.to(device).eval(), config
