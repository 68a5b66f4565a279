// pybind11 bindings of the fused multi-step LIF neuron (lif.h): the configuration flags and the
// per-neuron parameters are checked here (NaN fails every check) before a kernel runs; outputs
// are never converted.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <limits>
#include <vector>

#include "bind_common.h"
#include "bindings.h"
#include "lif.h"

namespace sparsespike::bind {

namespace {

sparsespike::LifConfig lif_config(int convention, int reset, bool detach_reset, int surrogate,
                                  double surrogate_param, double grad_band, bool decay_input) {
  if (convention < 0 || convention > 1) throw py::value_error("convention must be 0 or 1");
  if (reset < 0 || reset > 2) throw py::value_error("reset must be 0, 1 or 2");
  if (surrogate < 0 || surrogate > 3) throw py::value_error("surrogate must be 0..3");
  if (!(surrogate_param > 0 && surrogate_param < std::numeric_limits<double>::infinity()))
    throw py::value_error("surrogate_param must be finite and > 0");
  if (!(grad_band > 0)) throw py::value_error("grad_band must be > 0 (infinity: no band)");
  sparsespike::LifConfig cfg;
  cfg.convention = static_cast<sparsespike::LifConvention>(convention);
  cfg.reset = static_cast<sparsespike::LifReset>(reset);
  cfg.detach_reset = detach_reset;
  cfg.surrogate = static_cast<sparsespike::Surrogate>(surrogate);
  cfg.surrogate_param = surrogate_param;
  cfg.grad_band = grad_band;
  cfg.decay_input = decay_input;
  return cfg;
}

// A lif array: [steps, n], or [n] for steps < 0.
template <typename T>
void require_lif_array(const py::array& a, const char* name, int64_t steps, int64_t n,
                       bool writable = false) {
  require_array<T>(a, name, steps < 0 ? std::vector<int64_t>{n} : std::vector<int64_t>{steps, n},
                   writable);
}

template <typename T>
const T* optional_lif_array(const py::object& o, const char* name, int64_t steps, int64_t n,
                            py::array& keep) {
  return optional_array<T>(o, name, steps < 0 ? std::vector<int64_t>{n} : std::vector<int64_t>{steps, n},
                           keep);
}

// The per-neuron inputs every lif call takes: beta, threshold, v0, each [n].
template <typename T>
void require_lif_neuron_params(const py::array& beta, const py::array& threshold,
                               const py::array& v0, int64_t n) {
  require_lif_array<T>(beta, "beta", -1, n);
  require_lif_array<T>(threshold, "threshold", -1, n);
  require_lif_array<T>(v0, "v0", -1, n);
  // checked here, before any work, so the Python side skips a reduction per call; written so
  // that NaN fails each test (every comparison with NaN is false)
  const T* t = static_cast<const T*>(threshold.data());
  const T* b = static_cast<const T*>(beta.data());
  const T* v = static_cast<const T*>(v0.data());
  // Counting the values that pass vectorises (32768 neurons: 8 us); a throw inside the loop, or
  // and-ing bools, left it scalar (55-65 us, more than the whole streaming step).
  const T inf = std::numeric_limits<T>::infinity();
  int64_t t_ok = 0, b_ok = 0, v_ok = 0;
  for (int64_t i = 0; i < n; ++i) {
    t_ok += (t[i] > T(0)) & (t[i] < inf);
    b_ok += (b[i] >= T(0)) & (b[i] <= T(1));
    v_ok += (v[i] > -inf) & (v[i] < inf);
  }
  if (t_ok != n) throw py::value_error("threshold must be finite and > 0 everywhere");
  if (b_ok != n) throw py::value_error("beta must be in [0, 1] everywhere (NaN found)");
  if (v_ok != n) throw py::value_error("v0 contains NaN or Inf");
}

template <typename T>
void forward_typed(const py::array& current, const py::array& beta, const py::array& threshold,
                   const py::array& v0, const sparsespike::LifConfig& cfg, py::array& spikes,
                   const py::object& trace_obj, py::array& v_final, const py::object& band_obj,
                   double band_width, int threads) {
  int64_t steps, n;
  sequence_shape(current, "current", steps, n);
  require_lif_array<T>(current, "current", steps, n);
  require_lif_neuron_params<T>(beta, threshold, v0, n);
  require_lif_array<T>(spikes, "spikes", steps, n, true);
  py::array trace;
  T* trace_out = nullptr;
  if (!trace_obj.is_none()) {
    if (!py::isinstance<py::array>(trace_obj)) throw py::type_error("trace must be an array or None");
    trace = py::reinterpret_borrow<py::array>(trace_obj);  // no conversion: it is an output
    require_lif_array<T>(trace, "trace", steps, n, true);
    trace_out = static_cast<T*>(trace.mutable_data());
  }
  require_lif_array<T>(v_final, "v_final", -1, n, true);
  py::array band;
  uint8_t* band_out = nullptr;
  if (!band_obj.is_none()) {
    if (!py::isinstance<py::array>(band_obj)) throw py::type_error("band must be an array or None");
    band = py::reinterpret_borrow<py::array>(band_obj);
    if (!(has_dtype<uint8_t>(band) || has_dtype<bool>(band)))
      throw py::type_error("band must be bool or uint8, got " + dtype_name(band));
    require_output(band, "band", steps, n);
    if (!(band_width > 0)) throw py::value_error("band_width must be > 0");
    band_out = static_cast<uint8_t*>(band.mutable_data());
  }
  bool finite;
  {
    py::gil_scoped_release release;
    finite = sparsespike::lif_forward(
        static_cast<const T*>(current.data()), steps, n, static_cast<const T*>(beta.data()),
        static_cast<const T*>(threshold.data()), static_cast<const T*>(v0.data()), cfg,
        static_cast<T*>(spikes.mutable_data()), trace_out,
        static_cast<T*>(v_final.mutable_data()), band_out, band_width, threads);
  }
  if (!finite) throw py::value_error("current contains NaN or Inf");
}

void forward(const py::array& current, const py::array& beta, const py::array& threshold,
             const py::array& v0, int convention, int reset, bool detach_reset, int surrogate,
             double surrogate_param, double grad_band, bool decay_input, py::array& spikes,
             const py::object& trace, py::array& v_final, const py::object& band, double band_width,
             int threads) {
  if (current.ndim() != 2) throw py::value_error("current must be 2-D [steps, neurons]");
  const auto cfg =
      lif_config(convention, reset, detach_reset, surrogate, surrogate_param, grad_band, decay_input);
  dispatch_float(current, "current", [&](auto* type_tag) {
    forward_typed<std::remove_pointer_t<decltype(type_tag)>>(current, beta, threshold, v0, cfg, spikes,
                                                             trace, v_final, band, band_width, threads);
  });
}

template <typename T>
void backward_typed(const py::object& grad_spikes, const py::object& grad_trace,
                    const py::object& grad_v_final, const py::object& current,
                    const py::object& trace, const py::array& beta,
                    const py::array& threshold, const py::array& v0,
                    const sparsespike::LifConfig& cfg, py::array& grad_current,
                    py::array& grad_beta, py::array& grad_threshold, py::array& grad_v0,
                    int threads) {
  int64_t steps, n;
  sequence_shape(grad_current, "grad_current", steps, n);
  require_lif_array<T>(grad_current, "grad_current", steps, n, true);
  require_lif_neuron_params<T>(beta, threshold, v0, n);
  require_lif_array<T>(grad_beta, "grad_beta", -1, n, true);
  require_lif_array<T>(grad_threshold, "grad_threshold", -1, n, true);
  require_lif_array<T>(grad_v0, "grad_v0", -1, n, true);
  py::array k1, k2, k3, k4, k5;
  int64_t gs_step, gtr_step;
  const T* gs = optional_step_gradient<T>(grad_spikes, "grad_spikes", steps, n, k1, gs_step);
  const T* gtr = optional_step_gradient<T>(grad_trace, "grad_trace", steps, n, k2, gtr_step);
  const T* gvf = optional_lif_array<T>(grad_v_final, "grad_v_final", -1, n, k3);
  const T* cur = optional_lif_array<T>(current, "current", steps, n, k4);
  const T* tr = optional_lif_array<T>(trace, "trace", steps, n, k5);
  if (!tr && !cur) throw py::value_error("backward needs the trace or the current to recompute it");
  if (cfg.convention == sparsespike::LifConvention::spikingjelly && cfg.decay_input && !cur)
    throw py::value_error("current is needed for the spikingjelly convention with decay_input");
  bool finite;
  {
    py::gil_scoped_release release;
    finite = sparsespike::lif_backward(gs, gs_step, gtr, gtr_step, gvf, cur, tr, steps, n,
                                       static_cast<const T*>(beta.data()),
                                       static_cast<const T*>(threshold.data()),
                                       static_cast<const T*>(v0.data()), cfg,
                                       static_cast<T*>(grad_current.mutable_data()),
                                       static_cast<T*>(grad_beta.mutable_data()),
                                       static_cast<T*>(grad_threshold.mutable_data()),
                                       static_cast<T*>(grad_v0.mutable_data()), threads);
  }
  if (!finite) throw py::value_error("current contains NaN or Inf");
}

void backward(const py::object& grad_spikes, const py::object& grad_trace,
              const py::object& grad_v_final, const py::object& current,
              const py::object& trace, const py::array& beta, const py::array& threshold,
              const py::array& v0, int convention, int reset, bool detach_reset,
              int surrogate, double surrogate_param, double grad_band, bool decay_input,
              py::array& grad_current, py::array& grad_beta, py::array& grad_threshold,
              py::array& grad_v0, int threads) {
  const auto cfg =
      lif_config(convention, reset, detach_reset, surrogate, surrogate_param, grad_band, decay_input);
  dispatch_float(grad_current, "grad_current", [&](auto* type_tag) {
    backward_typed<std::remove_pointer_t<decltype(type_tag)>>(grad_spikes, grad_trace, grad_v_final,
                                                              current, trace, beta, threshold, v0, cfg,
                                                              grad_current, grad_beta, grad_threshold,
                                                              grad_v0, threads);
  });
}

}  // namespace

void bind_lif(py::module_& m) {
  m.def("lif_forward", &forward, py::arg("current"), py::arg("beta"), py::arg("threshold"),
        py::arg("v0"), py::arg("convention"), py::arg("reset"), py::arg("detach_reset"),
        py::arg("surrogate"), py::arg("surrogate_param"), py::arg("grad_band"), py::arg("decay_input"),
        py::arg("spikes").noconvert(), py::arg("trace"),
        py::arg("v_final").noconvert(), py::arg("band"), py::arg("band_width"), py::arg("threads"),
        "Fused multi-step LIF forward over [steps, neurons]; raises ValueError on NaN/Inf.");
  m.def("lif_backward", &backward, py::arg("grad_spikes"), py::arg("grad_trace"),
        py::arg("grad_v_final"), py::arg("current"), py::arg("trace"), py::arg("beta"),
        py::arg("threshold"), py::arg("v0"), py::arg("convention"), py::arg("reset"),
        py::arg("detach_reset"), py::arg("surrogate"), py::arg("surrogate_param"), py::arg("grad_band"),
        py::arg("decay_input"), py::arg("grad_current").noconvert(),
        py::arg("grad_beta").noconvert(), py::arg("grad_threshold").noconvert(),
        py::arg("grad_v0").noconvert(), py::arg("threads"),
        "Fused multi-step LIF backward (one reverse pass over steps).");
}

}  // namespace sparsespike::bind
