"""PNG figures of the models suite: throughput against measured hidden density per backend (one
figure per model and modality, inference and train side by side), and the per-layer forward time
of the fused model at each swept density (matplotlib, the ``analysis`` extra)."""

from __future__ import annotations

from pathlib import Path

from ..analysis.figures import new_figure, save_png


def _label(point: dict) -> str:
    """The backend, with the surrogate where it is not the exact one (the train step's axis)."""
    surrogate = point.get("surrogate", "exact")
    return point["backend"] if surrogate == "exact" else f"{point['backend']} {surrogate}"


def plot_models(points: list[dict], folder) -> list[Path]:
    """Write <model>-<modality>-throughput.png and <model>-<modality>-layers.png for each case of
    the models suite's JSON points; returns the paths."""
    folder = Path(folder)
    written = []
    for case in dict.fromkeys((p["model"], p["modality"]) for p in points):
        rows = [p for p in points if (p["model"], p["modality"]) == case]
        fig = new_figure((10, 4))
        for i, mode in enumerate(("inference", "train")):
            ax = fig.add_subplot(1, 2, i + 1)
            for backend in dict.fromkeys(_label(p) for p in rows):
                series = sorted(
                    (p["hidden_density"], p["samples_per_s"])
                    for p in rows
                    if p["mode"] == mode and _label(p) == backend
                )
                if series:
                    ax.plot([100 * d for d, _ in series], [s for _, s in series], marker="o", label=backend)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("measured hidden density (%)")
            ax.set_ylabel("samples / s")
            ax.set_title(f"{case[0]} {case[1]}: {mode}")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
        written.append(save_png(fig, folder / f"{case[0]}-{case[1]}-throughput.png"))

        layered = sorted((p for p in rows if p["layer_ms"]), key=lambda p: -p["target_density"])
        if layered:
            fig = new_figure((8, 4))
            ax = fig.add_subplot(1, 1, 1)
            names = list(layered[0]["layer_ms"])
            labels = [f"{100 * p['target_density']:g}%" for p in layered]
            bottom = [0.0] * len(layered)
            for name in names:
                values = [p["layer_ms"].get(name, 0.0) for p in layered]
                ax.bar(labels, values, bottom=bottom, label=name)
                bottom = [b + v for b, v in zip(bottom, values)]
            ax.set_xlabel("target density")
            ax.set_ylabel("forward ms per batch (auto)")
            ax.set_title(f"{case[0]} {case[1]}: per-layer forward time")
            ax.legend(fontsize=7, loc="upper right")
            written.append(save_png(fig, folder / f"{case[0]}-{case[1]}-layers.png"))
    return written
