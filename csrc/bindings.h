// The binding functions of sparsespike._C, one per op or helper family, each defined in
// csrc/<name>_bindings.cpp and called once by module.cpp. Every _C symbol starts with its
// binder's name (spike_linear_*, lif_*, spikes_*, memory_*, ...) so it is found where it is bound.
//
// Tensors arrive as numpy views of CPU tensors (no libtorch headers). Every argument is checked
// by the binding, before a kernel touches memory (bind_common.h): dtype, dimensionality,
// C-contiguity, alignment, writability and consistent sizes; a violation raises TypeError or
// ValueError naming the argument. Outputs are never converted (a converted output would be
// written into a copy).
#pragma once

#include <pybind11/pybind11.h>

namespace sparsespike::bind {

void bind_spike_linear(pybind11::module_& m);
void bind_spike_conv2d(pybind11::module_& m);
void bind_lif(pybind11::module_& m);
void bind_hgrn_scan(pybind11::module_& m);
void bind_spiking_hopfield(pybind11::module_& m);
void bind_spikes(pybind11::module_& m);  // spike-tensor helpers
void bind_memory(pybind11::module_& m);  // weight fingerprints, huge-page advice
void bind_build(pybind11::module_& m);   // how the extension was built

}  // namespace sparsespike::bind
