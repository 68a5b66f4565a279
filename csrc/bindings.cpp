// pybind11 module sparsespike._C: thin wrappers over the C++ kernels.
//
// Tensors arrive as numpy views of CPU tensors (no libtorch headers). Every argument is checked
// here, before a kernel touches memory: dtype, dimensionality, C-contiguity, writability and
// consistent sizes; a violation raises TypeError or ValueError naming the argument. Outputs are
// never converted (a converted output would be written into a copy).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "fingerprint.h"
#include "spike_linear.h"
#include "spmm.h"

namespace py = pybind11;
using sparsespike::ScanResult;

namespace {

std::string dtype_name(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

template <typename T>
bool has_dtype(const py::array& a) {
  return a.dtype().is(py::dtype::of<T>());
}

void require_matrix(const py::array& a, const char* name) {
  if (a.ndim() != 2)
    throw py::value_error(std::string(name) + " must be 2-D, got " + std::to_string(a.ndim()) +
                          "-D");
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous");
}

void require_vector(const py::array& a, const char* name, int64_t n) {
  if (a.ndim() != 1 || a.shape(0) != n)
    throw py::value_error(std::string(name) + " must have shape [" + std::to_string(n) + "]");
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous");
}

void require_output(const py::array& a, const char* name, int64_t rows, int64_t cols) {
  require_matrix(a, name);
  if (a.shape(0) != rows || a.shape(1) != cols)
    throw py::value_error(std::string(name) + " must have shape [" + std::to_string(rows) + ", " +
                          std::to_string(cols) + "]");
  if (!a.writeable()) throw py::value_error(std::string(name) + " must be writable");
}

void raise_on(const ScanResult& r) {
  if (r.out_of_memory) throw std::bad_alloc();
  if (r.nonfinite) throw py::value_error("spikes contains NaN or Inf");
}

// Calls f(S*, T*) with the spike and weight element types the arrays hold.
template <typename F>
auto dispatch_types(const py::array& spikes, const py::array& weight, F&& f) {
  const bool binary = has_dtype<uint8_t>(spikes) || has_dtype<bool>(spikes);
  if (has_dtype<float>(weight)) {
    if (binary) return f(static_cast<const uint8_t*>(spikes.data()), static_cast<float*>(nullptr));
    if (has_dtype<float>(spikes)) return f(static_cast<const float*>(spikes.data()), static_cast<float*>(nullptr));
  } else if (has_dtype<double>(weight)) {
    if (binary) return f(static_cast<const uint8_t*>(spikes.data()), static_cast<double*>(nullptr));
    if (has_dtype<double>(spikes)) return f(static_cast<const double*>(spikes.data()), static_cast<double*>(nullptr));
  } else {
    throw py::type_error("weight must be float32 or float64, got " + dtype_name(weight));
  }
  throw py::type_error("spikes must be bool, uint8 or the weight's dtype (" + dtype_name(weight) +
                       "), got " + dtype_name(spikes));
}

template <typename T>
void require_dtype(const py::array& a, const char* name, const py::array& like) {
  if (!has_dtype<T>(a))
    throw py::type_error(std::string(name) + " must have dtype " + dtype_name(like) + ", got " +
                         dtype_name(a));
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
  if (has_dtype<float>(weight))
    run(static_cast<float*>(nullptr));
  else if (has_dtype<double>(weight))
    run(static_cast<double*>(nullptr));
  else
    throw py::type_error("weight must be float32 or float64, got " + dtype_name(weight));
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
  return dispatch_types(spikes, packed_weight, [&](auto* s, auto* type_tag) -> int64_t {
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

int64_t grad_weight(const py::array& spikes, const py::array& grad, py::array& grad_weight_t,
                    int threads) {
  require_matrix(spikes, "spikes");
  require_matrix(grad, "grad_out");
  const int64_t rows = spikes.shape(0), in = spikes.shape(1), n_out = grad.shape(1);
  if (grad.shape(0) != rows)
    throw py::value_error("grad_out has " + std::to_string(grad.shape(0)) +
                          " rows but spikes has " + std::to_string(rows));
  require_output(grad_weight_t, "grad_weight_t", in, n_out);
  return dispatch_types(spikes, grad, [&](auto* s, auto* type_tag) -> int64_t {
    using T = std::remove_pointer_t<decltype(type_tag)>;
    require_dtype<T>(grad_weight_t, "grad_weight_t", grad);
    const T* g = static_cast<const T*>(grad.data());
    T* gw = static_cast<T*>(grad_weight_t.mutable_data());
    ScanResult r;
    {
      py::gil_scoped_release release;
      r = sparsespike::spike_linear_grad_weight(s, rows, in, g, n_out, gw, threads);
    }
    raise_on(r);
    return r.nnz;
  });
}

int64_t count_spikes(const py::array& spikes, int threads) {
  require_matrix(spikes, "spikes");
  const int64_t rows = spikes.shape(0), in = spikes.shape(1);
  ScanResult r;
  auto run = [&](auto* s) {
    py::gil_scoped_release release;
    r = sparsespike::scan_spikes(s, rows, in, threads);
  };
  if (has_dtype<float>(spikes))
    run(static_cast<const float*>(spikes.data()));
  else if (has_dtype<double>(spikes))
    run(static_cast<const double*>(spikes.data()));
  else if (has_dtype<uint8_t>(spikes) || has_dtype<bool>(spikes))
    run(static_cast<const uint8_t*>(spikes.data()));
  else
    throw py::type_error("spikes must be float32, float64, bool or uint8, got " +
                         dtype_name(spikes));
  raise_on(r);
  return r.nnz;
}

uint64_t fingerprint(const py::array& a, int threads) {
  if (!(a.flags() & py::array::c_style)) throw py::value_error("array must be C-contiguous");
  const void* data = a.data();
  const int64_t bytes = a.nbytes();
  py::gil_scoped_release release;
  return sparsespike::fingerprint(data, bytes, threads);
}

}  // namespace

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
  m.def("count_spikes", &count_spikes, py::arg("spikes"), py::arg("threads"),
        "Nonzeros of a 2-D spike array; raises ValueError on NaN/Inf.");
  m.def("fingerprint", &fingerprint, py::arg("array"), py::arg("threads"),
        "Position-sensitive 64-bit checksum of a contiguous array's bytes.");
#ifdef _OPENMP
  m.attr("openmp") = true;
#else
  m.attr("openmp") = false;
#endif
}
