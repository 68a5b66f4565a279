"""The study's published numbers (arXiv 2512.18575), printed beside the measured ones.

Accuracies are test accuracies in % on N-MNIST (visual) and SHD with labels folded to 10 classes
(audio). Energy: the reference code's table on N-MNIST test batches, 45 nm fp32 (0.9 / 4.6 pJ).
Values the paper does not give are absent (shown as "-").
"""

ACCURACY = {  # model: (visual, audio)
    "m1": (96.77, 80.04),
    "m2": (96.72, 82.16),
    "m3": (97.68, 76.15),
    "m4": (97.48, 80.08),
    "m5": (97.58, 76.94),
    "joint": (94.41, 79.37),
}

# The paper's own "average" column. Its joint average (88.78) is not the mean of its joint row
# (86.89); it repeats M4's. Both are printed as published.
AVERAGE = {"m1": 88.40, "m2": 89.44, "m3": 86.91, "m4": 88.78, "m5": 87.26, "joint": 88.78}

MODEL_TITLES = {
    "m1": "M1 baseline LIF SNN",
    "m2": "M2 + supervised contrastive loss",
    "m3": "M3 + modern Hopfield memory",
    "m4": "M4 + HGRN",
    "m5": "M5 hybrid (Hopfield + HGRN + SCL)",
    "joint": "joint (two encoders, shared HGRN)",
}

# Engram analysis. Silhouette is quoted for M4 visual only; cross-modal centroid cosine for M2 and M4.
ENGRAM = {
    "m2": {"cosine_same": 0.038},
    "m4": {"silhouette_visual": 0.871, "cosine_same": -0.004},
}
ZERO_SHOT_ACCURACY = 10.0  # "at chance"
EFFECTIVE_DIMENSIONALITY_PERCENT = {"visual": 1.8, "audio": 6.1}  # PCA components for 95% variance, % of 512
ACTIVATION_SPARSITY_PERCENT = 97.0  # ">97% in every model"

# model (visual, N-MNIST): (SynOps per inference, ANN MACs per inference, ANN / SNN energy)
ENERGY = {
    "m1": (6_495_671, 413_840_000, 325.6),
    "m4": (3_520_541, 413_840_000, 601.0),
}
HEADLINE_ENERGY_RATIO = 603.0
