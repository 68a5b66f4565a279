// pybind11 module sparsespike._C: thin wrappers over the C++ kernels. spike_linear, lif and the
// helpers are bound here; later ops bind themselves from their own csrc/<op>_bindings.cpp
// (a bind_<op>(module) function declared below), with the checks of bind_common.h.
//
// Tensors arrive as numpy views of CPU tensors (no libtorch headers). Every argument is checked
// here, before a kernel touches memory: dtype, dimensionality, C-contiguity, alignment,
// writability and consistent sizes; a violation raises TypeError or ValueError naming the
// argument. Outputs are never converted (a converted output would be written into a copy).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <limits>
#include <string>

#ifdef __linux__
#include <sys/mman.h>
#endif

#include "bind_common.h"
#include "fingerprint.h"
#include "lif.h"
#include "spike_linear.h"
#include "spmm.h"

namespace py = pybind11;
using sparsespike::ScanResult;

namespace {

using namespace sparsespike::bind;

void raise_on(const ScanResult& r) {
  if (r.out_of_memory) throw std::bad_alloc();
  if (r.nonfinite) throw py::value_error("spikes contains NaN or Inf");
}

// Packed weight: [tile_count(out), in, tile_width] for the weight's dtype (see spmm.h).
void pack_weight(const py::array& weight, py::array& packed, int threads) {
  require_matrix(weight, "weight");
  const int64_t n_out = weight.shape(0), in = weight.shape(1);
  auto run = [&](auto* type_tag) {
    using T = std::remove_pointer_t<decltype(type_tag)>;
    require_dtype<T>(packed, "packed", weight);
    const int64_t tw = sparsespike::tile_width<T>(), tiles = sparsespike::tile_count<T>(n_out);
    if (packed.ndim() != 3 || packed.shape(0) != tiles || packed.shape(1) != in ||
        packed.shape(2) != tw)
      throw py::value_error("packed must have shape [" + std::to_string(tiles) + ", " +
                            std::to_string(in) + ", " + std::to_string(tw) + "]");
    if (!(packed.flags() & py::array::c_style) || !packed.writeable())
      throw py::value_error("packed must be C-contiguous and writable");
    const T* w = static_cast<const T*>(weight.data());
    T* p = static_cast<T*>(packed.mutable_data());
    py::gil_scoped_release release;
    sparsespike::pack_weight(w, n_out, in, p, threads);
  };
  dispatch_float(weight, "weight", run);
}

int64_t forward(const py::array& spikes, const py::array& packed_weight, const py::object& bias,
                py::array& out, int threads) {
  require_matrix(spikes, "spikes");
  if (packed_weight.ndim() != 3 || !(packed_weight.flags() & py::array::c_style))
    throw py::value_error("packed_weight must be a C-contiguous 3-D array from pack_weight");
  const int64_t rows = spikes.shape(0), in = spikes.shape(1);
  if (packed_weight.shape(1) != in)
    throw py::value_error("packed_weight has " + std::to_string(packed_weight.shape(1)) +
                          " inputs but spikes has " + std::to_string(in) + " features");
  if (out.ndim() != 2) throw py::value_error("out must be 2-D");
  const int64_t n_out = out.shape(1);
  require_output(out, "out", rows, n_out);
  return dispatch_spike_types(spikes, packed_weight, "weight", [&](auto* s, auto* type_tag) -> int64_t {
    using T = std::remove_pointer_t<decltype(type_tag)>;
    require_dtype<T>(out, "out", packed_weight);
    if (packed_weight.shape(0) != sparsespike::tile_count<T>(n_out) ||
        packed_weight.shape(2) != sparsespike::tile_width<T>())
      throw py::value_error("packed_weight does not match out's " + std::to_string(n_out) +
                            " features");
    const T* b = nullptr;
    py::array bias_arr;
    if (!bias.is_none()) {
      bias_arr = py::array(bias);
      require_vector(bias_arr, "bias", n_out);
      require_dtype<T>(bias_arr, "bias", packed_weight);
      b = static_cast<const T*>(bias_arr.data());
    }
    const T* w = static_cast<const T*>(packed_weight.data());
    T* y = static_cast<T*>(out.mutable_data());
    ScanResult r;
    {
      py::gil_scoped_release release;
      r = sparsespike::spike_linear_forward(s, rows, in, w, n_out, b, y, threads);
    }
    raise_on(r);
    return r.nnz;
  });
}

// by_input: the output is grad_weight [out, in] (spike_linear_grad_weight_by_input), else
// grad_weight_t [in, out] (the scatter kernel).
int64_t grad_weight_any(const py::array& spikes, const py::array& grad, py::array& result, int threads,
                        bool by_input) {
  require_matrix(spikes, "spikes");
  require_matrix(grad, "grad_out");
  const int64_t rows = spikes.shape(0), in = spikes.shape(1), n_out = grad.shape(1);
  if (grad.shape(0) != rows)
    throw py::value_error("grad_out has " + std::to_string(grad.shape(0)) +
                          " rows but spikes has " + std::to_string(rows));
  const char* name = by_input ? "grad_weight" : "grad_weight_t";
  require_output(result, name, by_input ? n_out : in, by_input ? in : n_out);
  return dispatch_spike_types(spikes, grad, "weight", [&](auto* s, auto* type_tag) -> int64_t {
    using T = std::remove_pointer_t<decltype(type_tag)>;
    require_dtype<T>(result, name, grad);
    const T* g = static_cast<const T*>(grad.data());
    T* gw = static_cast<T*>(result.mutable_data());
    ScanResult r;
    {
      py::gil_scoped_release release;
      r = by_input ? sparsespike::spike_linear_grad_weight_by_input(s, rows, in, g, n_out, gw, threads)
                   : sparsespike::spike_linear_grad_weight(s, rows, in, g, n_out, gw, threads);
    }
    raise_on(r);
    return r.nnz;
  });
}

int64_t grad_weight(const py::array& spikes, const py::array& grad, py::array& grad_weight_t, int threads) {
  return grad_weight_any(spikes, grad, grad_weight_t, threads, false);
}

int64_t grad_weight_by_input(const py::array& spikes, const py::array& grad, py::array& grad_weight,
                             int threads) {
  return grad_weight_any(spikes, grad, grad_weight, threads, true);
}

int64_t count_spikes(const py::array& spikes, int threads) {
  require_matrix(spikes, "spikes");
  const int64_t rows = spikes.shape(0), in = spikes.shape(1);
  ScanResult r;
  auto run = [&](auto* s) {
    py::gil_scoped_release release;
    r = sparsespike::scan_spikes(s, rows, in, threads);
  };
  dispatch_spikes(spikes, run);
  raise_on(r);
  return r.nnz;
}

// out[i] = spikes[i] as a byte when every value is exactly 0 or 1; returns whether they all were
// (false: out holds garbage and the caller keeps the floats). What spike_linear saves for its
// weight gradient: a quarter of the floats' memory, and the gradient reads it as bytes exactly.
template <typename S>
bool binary_to_bytes(const S* s, int64_t n, uint8_t* out, int threads) {
  bool binary = true;
  const int p = sparsespike::threads_for_work(threads, n, n);
#pragma omp parallel for num_threads(p) schedule(static) reduction(&& : binary)
  for (int64_t block = 0; block < p; ++block) {
    const int64_t begin = n * block / p, end = n * (block + 1) / p;
    bool ok = true;
    for (int64_t i = begin; i < end; ++i) {  // branch-free: vectorises
      const S v = s[i];
      ok &= (v == S(0)) | (v == S(1));
      out[i] = static_cast<uint8_t>(v != S(0));
    }
    binary = binary && ok;
  }
  return binary;
}

bool spikes_to_bytes(const py::array& spikes, py::array& out, int threads) {
  require_matrix(spikes, "spikes");
  const int64_t rows = spikes.shape(0), cols = spikes.shape(1);
  require_output(out, "out", rows, cols);
  if (!has_dtype<uint8_t>(out)) throw py::type_error("out must be uint8, got " + dtype_name(out));
  const bool is_float = has_dtype<float>(spikes);
  if (!is_float && !has_dtype<double>(spikes))
    throw py::type_error("spikes must be float32 or float64, got " + dtype_name(spikes));
  auto* o = static_cast<uint8_t*>(out.mutable_data());
  const void* data = spikes.data();
  py::gil_scoped_release release;
  return is_float ? binary_to_bytes(static_cast<const float*>(data), rows * cols, o, threads)
                  : binary_to_bytes(static_cast<const double*>(data), rows * cols, o, threads);
}

uint64_t fingerprint(const py::array& a, int threads) {
  if (!(a.flags() & py::array::c_style)) throw py::value_error("array must be C-contiguous");
  const void* data = a.data();
  const int64_t bytes = a.nbytes();
  py::gil_scoped_release release;
  return sparsespike::fingerprint(data, bytes, threads);
}

// ---- lif

sparsespike::LifConfig lif_config(int convention, int reset, bool detach_reset, int surrogate,
                                  double surrogate_param, bool decay_input) {
  if (convention < 0 || convention > 1) throw py::value_error("convention must be 0 or 1");
  if (reset < 0 || reset > 2) throw py::value_error("reset must be 0, 1 or 2");
  if (surrogate < 0 || surrogate > 3) throw py::value_error("surrogate must be 0..3");
  if (!(surrogate_param > 0 && surrogate_param < std::numeric_limits<double>::infinity()))
    throw py::value_error("surrogate_param must be finite and > 0");
  sparsespike::LifConfig cfg;
  cfg.convention = static_cast<sparsespike::LifConvention>(convention);
  cfg.reset = static_cast<sparsespike::LifReset>(reset);
  cfg.detach_reset = detach_reset;
  cfg.surrogate = static_cast<sparsespike::Surrogate>(surrogate);
  cfg.surrogate_param = surrogate_param;
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
void lif_forward_typed(const py::array& current, const py::array& beta, const py::array& threshold,
                       const py::array& v0, const sparsespike::LifConfig& cfg, py::array& spikes,
                       const py::object& trace_obj, py::array& v_final, int threads) {
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
  bool finite;
  {
    py::gil_scoped_release release;
    finite = sparsespike::lif_forward(
        static_cast<const T*>(current.data()), steps, n, static_cast<const T*>(beta.data()),
        static_cast<const T*>(threshold.data()), static_cast<const T*>(v0.data()), cfg,
        static_cast<T*>(spikes.mutable_data()), trace_out,
        static_cast<T*>(v_final.mutable_data()), threads);
  }
  if (!finite) throw py::value_error("current contains NaN or Inf");
}

void lif_forward(const py::array& current, const py::array& beta, const py::array& threshold,
                 const py::array& v0, int convention, int reset, bool detach_reset, int surrogate,
                 double surrogate_param, bool decay_input, py::array& spikes, const py::object& trace,
                 py::array& v_final, int threads) {
  if (current.ndim() != 2) throw py::value_error("current must be 2-D [steps, neurons]");
  const auto cfg = lif_config(convention, reset, detach_reset, surrogate, surrogate_param, decay_input);
  if (has_dtype<float>(current))
    lif_forward_typed<float>(current, beta, threshold, v0, cfg, spikes, trace, v_final, threads);
  else if (has_dtype<double>(current))
    lif_forward_typed<double>(current, beta, threshold, v0, cfg, spikes, trace, v_final, threads);
  else
    throw py::type_error("current must be float32 or float64, got " + dtype_name(current));
}

template <typename T>
void lif_backward_typed(const py::object& grad_spikes, const py::object& grad_trace,
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

void lif_backward(const py::object& grad_spikes, const py::object& grad_trace,
                  const py::object& grad_v_final, const py::object& current,
                  const py::object& trace, const py::array& beta, const py::array& threshold,
                  const py::array& v0, int convention, int reset, bool detach_reset,
                  int surrogate, double surrogate_param, bool decay_input,
                  py::array& grad_current, py::array& grad_beta, py::array& grad_threshold,
                  py::array& grad_v0, int threads) {
  const auto cfg = lif_config(convention, reset, detach_reset, surrogate, surrogate_param, decay_input);
  if (has_dtype<float>(grad_current))
    lif_backward_typed<float>(grad_spikes, grad_trace, grad_v_final, current, trace, beta,
                              threshold, v0, cfg, grad_current, grad_beta, grad_threshold,
                              grad_v0, threads);
  else if (has_dtype<double>(grad_current))
    lif_backward_typed<double>(grad_spikes, grad_trace, grad_v_final, current, trace, beta,
                               threshold, v0, cfg, grad_current, grad_beta, grad_threshold,
                               grad_v0, threads);
  else
    throw py::type_error("grad_current must be float32 or float64, got " + dtype_name(grad_current));
}

// ---- memory

// Marks the 2 MiB-aligned interior of a fresh (untouched) array for transparent huge pages, so
// its first touch faults 2 MiB at a time instead of 4 KiB. Only the advice changes, never the
// contents; False where the system has no such advice or the array spans no whole huge page.
bool advise_huge_pages(py::array& a) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHugePage = uintptr_t(2) << 20;
  const auto start = reinterpret_cast<uintptr_t>(a.mutable_data());
  const uintptr_t begin = (start + kHugePage - 1) & ~(kHugePage - 1);
  const uintptr_t end = (start + static_cast<uintptr_t>(a.nbytes())) & ~(kHugePage - 1);
  if (end <= begin) return false;
  return madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE) == 0;
#else
  (void)a;
  return false;
#endif
}

}  // namespace

// Ops bound from their own files (csrc/<op>_bindings.cpp).
namespace sparsespike::bind {
void bind_hgrn_scan(py::module_& m);
void bind_spiking_hopfield(py::module_& m);
void bind_spike_conv2d(py::module_& m);
}  // namespace sparsespike::bind

PYBIND11_MODULE(_C, m) {
  m.doc() = "sparsespike C++ CPU kernels";
  m.attr("tile_bytes") = sparsespike::kGatherTileBytes;
  m.def("pack_weight", &pack_weight, py::arg("weight"), py::arg("packed").noconvert(),
        py::arg("threads"), "Packs weight [out, in] into the forward's tiled input-major layout.");
  m.def("spike_linear_forward", &forward, py::arg("spikes"), py::arg("packed_weight"),
        py::arg("bias"), py::arg("out").noconvert(), py::arg("threads"),
        "out = spikes @ W^T (+ bias), event-driven; returns the number of events (nonzeros).");
  m.def("spike_linear_grad_weight", &grad_weight, py::arg("spikes"), py::arg("grad_out"),
        py::arg("grad_weight_t").noconvert(), py::arg("threads"),
        "grad_weight_t = spikes^T @ grad_out over active inputs only; returns the nonzeros.");
  m.def("spike_linear_grad_weight_by_input", &grad_weight_by_input, py::arg("spikes"), py::arg("grad_out"),
        py::arg("grad_weight").noconvert(), py::arg("threads"),
        "grad_weight [out, in] = (spikes^T @ grad_out)^T, input by input (few rows, wide inputs); "
        "returns the nonzeros.");
  m.def("count_spikes", &count_spikes, py::arg("spikes"), py::arg("threads"),
        "Nonzeros of a 2-D spike array; raises ValueError on NaN/Inf.");
  m.def("spikes_to_bytes", &spikes_to_bytes, py::arg("spikes"), py::arg("out").noconvert(),
        py::arg("threads"),
        "Writes a 2-D float spike array into uint8 `out` and returns True when every value is 0 or 1 "
        "(False: out is garbage).");
  m.def("lif_forward", &lif_forward, py::arg("current"), py::arg("beta"), py::arg("threshold"),
        py::arg("v0"), py::arg("convention"), py::arg("reset"), py::arg("detach_reset"),
        py::arg("surrogate"), py::arg("surrogate_param"), py::arg("decay_input"),
        py::arg("spikes").noconvert(), py::arg("trace"),
        py::arg("v_final").noconvert(), py::arg("threads"),
        "Fused multi-step LIF forward over [steps, neurons]; raises ValueError on NaN/Inf.");
  m.def("lif_backward", &lif_backward, py::arg("grad_spikes"), py::arg("grad_trace"),
        py::arg("grad_v_final"), py::arg("current"), py::arg("trace"), py::arg("beta"),
        py::arg("threshold"), py::arg("v0"), py::arg("convention"), py::arg("reset"),
        py::arg("detach_reset"), py::arg("surrogate"), py::arg("surrogate_param"),
        py::arg("decay_input"), py::arg("grad_current").noconvert(),
        py::arg("grad_beta").noconvert(), py::arg("grad_threshold").noconvert(),
        py::arg("grad_v0").noconvert(), py::arg("threads"),
        "Fused multi-step LIF backward (one reverse pass over steps).");
  m.def("advise_huge_pages", &advise_huge_pages, py::arg("array").noconvert(),
        "Advises transparent huge pages for the aligned interior of a fresh array.");
  m.def("fingerprint", &fingerprint, py::arg("array"), py::arg("threads"),
        "Non-linear 64-bit hash of a contiguous array's bytes (independent of the thread count).");
  sparsespike::bind::bind_hgrn_scan(m);
  sparsespike::bind::bind_spiking_hopfield(m);
  sparsespike::bind::bind_spike_conv2d(m);
#ifdef _OPENMP
  m.attr("openmp") = true;
#else
  m.attr("openmp") = false;
#endif
}
