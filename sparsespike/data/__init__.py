"""Neuromorphic datasets as fixed-shape frames: N-MNIST, SHD, SSC, DVS Gesture (through tonic) and
two embedded sets that need no download ("saccade-digits", "randman"), cached on disk."""

from .cache import CachedFrames
from .errors import CorruptDataError
from .frames import denoise, normalized_time_bins, time_bin_frames, time_window_frames
from .randman import randman_events, randman_frames
from .registry import DATASETS, DatasetInfo, dataset_info, default_data_dir, load_dataset
from .saccade_digits import saccade_digit_events

__all__ = [
    "DATASETS",
    "CachedFrames",
    "CorruptDataError",
    "DatasetInfo",
    "dataset_info",
    "default_data_dir",
    "denoise",
    "load_dataset",
    "normalized_time_bins",
    "randman_events",
    "randman_frames",
    "saccade_digit_events",
    "time_bin_frames",
    "time_window_frames",
]
