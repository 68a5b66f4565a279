// sparsespike._C: every op and helper family binds itself (bindings.h).
#include <pybind11/pybind11.h>

#include "bindings.h"

PYBIND11_MODULE(_C, m) {
  m.doc() = "sparsespike C++ CPU kernels";
  using namespace sparsespike::bind;
  bind_spike_linear(m);
  bind_spike_conv2d(m);
  bind_lif(m);
  bind_hgrn_scan(m);
  bind_spiking_hopfield(m);
  bind_spikes(m);
  bind_memory(m);
  bind_build(m);
}
