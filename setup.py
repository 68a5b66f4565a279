"""Builds the C++ extension sparsespike._C; everything else is in pyproject.toml.

Compiler flags: C++17, -O3 (GCC leaves the gather loops unvectorised at -O2), OpenMP, and never
-ffast-math (loading such a library switches the whole process to flush-denormals).
Tuned for the host CPU by default; SPARSESPIKE_PORTABLE=1 builds for x86-64-v3 instead
(or for the compiler's default target off x86).
"""

import glob
import os
import platform

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup


def _arch_flags():
    if os.environ.get("SPARSESPIKE_PORTABLE", "0") not in ("", "0"):
        return ["-march=x86-64-v3"] if platform.machine() in ("x86_64", "AMD64") else []
    return ["-march=native"]


ext = Pybind11Extension(
    "sparsespike._C",
    sources=sorted(glob.glob("csrc/*.cpp")),  # each op's kernels and its binding file
    depends=sorted(glob.glob("csrc/*.h")),  # a changed header rebuilds every object (no stale .o)
    include_dirs=["csrc"],
    cxx_std=17,
    # no FMA contraction: the LIF kernel must round like the torch reference, op by op (a fused
    # multiply-add can flip a threshold decision); kernels that want FMAs ask for them (simd.h)
    extra_compile_args=["-O3", "-fopenmp", "-ffp-contract=off", "-Wall", "-Wextra", *_arch_flags()],
    extra_link_args=["-fopenmp"],
)

setup(ext_modules=[ext], cmdclass={"build_ext": build_ext})
