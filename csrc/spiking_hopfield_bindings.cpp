// sparsespike._C.spiking_hopfield_recall: the binding of spiking_hopfield.h. Every argument is
// checked before the kernel runs; the kernel itself refuses a non-finite weight or a non-binary
// cue before writing anything.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <new>
#include <string>

#include "bind_common.h"
#include "bindings.h"
#include "spiking_hopfield.h"

namespace sparsespike::bind {

namespace {

template <typename T>
int64_t recall_typed(const py::array& weight, const py::array& cue, int64_t steps, double beta,
                     double threshold, LifReset reset, py::array& spikes, py::array& v_final,
                     int threads) {
  const int64_t n = weight.shape(0);
  require_array<T>(weight, "weight", {n, n});
  if (cue.ndim() != 2) throw py::value_error("cue must be 2-D [batch, neurons]");
  const int64_t batch = cue.shape(0);
  require_array<T>(cue, "cue", {batch, n});
  require_array<T>(spikes, "spikes", {steps, batch, n}, true);
  require_array<T>(v_final, "v_final", {batch, n}, true);
  HopfieldResult r;
  {
    py::gil_scoped_release release;
    r = spiking_hopfield_recall<T>(static_cast<const T*>(weight.data()), n,
                                   static_cast<const T*>(cue.data()), batch, steps,
                                   static_cast<T>(beta), static_cast<T>(threshold), reset,
                                   static_cast<T*>(spikes.mutable_data()),
                                   static_cast<T*>(v_final.mutable_data()), threads);
  }
  switch (r.status) {
    case HopfieldStatus::ok: break;
    case HopfieldStatus::nonfinite_weight: throw py::value_error("weight contains NaN or Inf");
    case HopfieldStatus::nonbinary_cue: throw py::value_error("cue must hold only 0 and 1");
    case HopfieldStatus::out_of_memory: throw std::bad_alloc();
  }
  return r.events;
}

int64_t recall(const py::array& weight, const py::array& cue, int64_t steps, double beta,
               double threshold, int reset, py::array& spikes, py::array& v_final, int threads) {
  if (weight.ndim() != 2 || weight.shape(0) != weight.shape(1))
    throw py::value_error("weight must be a square 2-D array [neurons, neurons]");
  if (weight.shape(0) == 0) throw py::value_error("weight must have at least one neuron");
  if (weight.shape(0) > std::numeric_limits<int32_t>::max())
    throw py::value_error("weight has more neurons than 32-bit spike indices can address");
  if (steps < 1) throw py::value_error("steps must be >= 1, got " + std::to_string(steps));
  if (!(beta >= 0.0 && beta <= 1.0)) throw py::value_error("beta must be in [0, 1]");
  if (!(threshold > 0.0 && std::isfinite(threshold)))
    throw py::value_error("threshold must be finite and > 0");
  if (reset < 0 || reset > 2) throw py::value_error("reset must be 0, 1 or 2");
  const auto r = static_cast<LifReset>(reset);
  return dispatch_float(weight, "weight", [&](auto* type_tag) {
    return recall_typed<std::remove_pointer_t<decltype(type_tag)>>(weight, cue, steps, beta, threshold, r,
                                                                   spikes, v_final, threads);
  });
}

}  // namespace

void bind_spiking_hopfield(py::module_& m) {
  m.def("spiking_hopfield_recall", &recall, py::arg("weight"), py::arg("cue"), py::arg("steps"),
        py::arg("beta"), py::arg("threshold"), py::arg("reset"), py::arg("spikes").noconvert(),
        py::arg("v_final").noconvert(), py::arg("threads"),
        "Spiking Hopfield recall: LIF steps driven by event-driven recurrent input through "
        "weight; writes spikes [steps, batch, n] and v_final [batch, n]; returns the events "
        "(presynaptic spikes) propagated.");
}

}  // namespace sparsespike::bind
