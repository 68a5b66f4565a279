// pybind11 bindings of the event-driven linear layer (spike_linear.h): the packed weight layout
// (spike_linear_tile_bytes, spike_linear_pack_weight), the forward and the two weight-gradient
// kernels. Every argument is checked before a kernel runs; outputs are never converted.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <new>
#include <string>
#include <type_traits>

#include "bind_common.h"
#include "bindings.h"
#include "spike_linear.h"
#include "spmm.h"

namespace sparsespike::bind {

namespace {

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
    sparsespike::spike_linear_pack_weight(w, n_out, in, p, threads);
  };
  dispatch_float(weight, "weight", run);
}

int64_t forward_any(const py::array& spikes, const py::array& packed_weight, const py::object& bias,
                    py::array& out, int threads, bool by_input) {
  require_matrix(spikes, "spikes");
  if (packed_weight.ndim() != 3 || !(packed_weight.flags() & py::array::c_style))
    throw py::value_error(
        "packed_weight must be a C-contiguous 3-D array from spike_linear_pack_weight");
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
      r = by_input ? sparsespike::spike_linear_forward_by_input(s, rows, in, w, n_out, b, y, threads)
                   : sparsespike::spike_linear_forward(s, rows, in, w, n_out, b, y, threads);
    }
    raise_on(r);
    return r.nnz;
  });
}

int64_t forward(const py::array& spikes, const py::array& packed_weight, const py::object& bias,
                py::array& out, int threads) {
  return forward_any(spikes, packed_weight, bias, out, threads, false);
}

int64_t forward_by_input(const py::array& spikes, const py::array& packed_weight,
                         const py::object& bias, py::array& out, int threads) {
  return forward_any(spikes, packed_weight, bias, out, threads, true);
}

// grad_weight [out, in] = (spikes^T @ grad)^T, by the scatter kernel or input by input.
int64_t grad_weight_any(const py::array& spikes, const py::array& grad, py::array& result, int threads,
                        bool by_input) {
  require_matrix(spikes, "spikes");
  require_matrix(grad, "grad_out");
  const int64_t rows = spikes.shape(0), in = spikes.shape(1), n_out = grad.shape(1);
  if (grad.shape(0) != rows)
    throw py::value_error("grad_out has " + std::to_string(grad.shape(0)) +
                          " rows but spikes has " + std::to_string(rows));
  require_output(result, "grad_weight", n_out, in);
  return dispatch_spike_types(spikes, grad, "weight", [&](auto* s, auto* type_tag) -> int64_t {
    using T = std::remove_pointer_t<decltype(type_tag)>;
    require_dtype<T>(result, "grad_weight", grad);
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

int64_t grad_weight(const py::array& spikes, const py::array& grad, py::array& grad_weight, int threads) {
  return grad_weight_any(spikes, grad, grad_weight, threads, false);
}

int64_t grad_weight_by_input(const py::array& spikes, const py::array& grad, py::array& grad_weight,
                             int threads) {
  return grad_weight_any(spikes, grad, grad_weight, threads, true);
}

// grad_input [rows, in] = grad_out @ W at mask's nonzeros, zero elsewhere; W packed.
void grad_input_masked(const py::array& mask, const py::array& grad, const py::array& packed_weight,
                       py::array& result, int threads) {
  require_matrix(mask, "grad_mask");
  require_matrix(grad, "grad_out");
  if (!(has_dtype<uint8_t>(mask) || has_dtype<bool>(mask)))
    throw py::type_error("grad_mask must be bool or uint8, got " + dtype_name(mask));
  const int64_t rows = mask.shape(0), in = mask.shape(1), n_out = grad.shape(1);
  if (grad.shape(0) != rows)
    throw py::value_error("grad_out has " + std::to_string(grad.shape(0)) + " rows but grad_mask has " +
                          std::to_string(rows));
  if (packed_weight.ndim() != 3 || !(packed_weight.flags() & py::array::c_style) ||
      packed_weight.shape(1) != in)
    throw py::value_error("packed_weight must be a C-contiguous [tiles, " + std::to_string(in) +
                          ", tile] array from spike_linear_pack_weight");
  require_output(result, "grad_input", rows, in);
  dispatch_float(grad, "grad_out", [&](auto* type_tag) {
    using T = std::remove_pointer_t<decltype(type_tag)>;
    require_dtype<T>(packed_weight, "packed_weight", grad);
    require_dtype<T>(result, "grad_input", grad);
    if (packed_weight.shape(0) != sparsespike::tile_count<T>(n_out) ||
        packed_weight.shape(2) != sparsespike::tile_width<T>())
      throw py::value_error("packed_weight does not match grad_out's " + std::to_string(n_out) +
                            " features");
    const auto* m = static_cast<const uint8_t*>(mask.data());
    const T* g = static_cast<const T*>(grad.data());
    const T* w = static_cast<const T*>(packed_weight.data());
    T* gx = static_cast<T*>(result.mutable_data());
    py::gil_scoped_release release;
    sparsespike::spike_linear_grad_input_masked(m, rows, in, g, w, n_out, gx, threads);
  });
}

}  // namespace

void bind_spike_linear(py::module_& m) {
  m.attr("spike_linear_tile_bytes") = sparsespike::kGatherTileBytes;
  m.def("spike_linear_pack_weight", &pack_weight, py::arg("weight"), py::arg("packed").noconvert(),
        py::arg("threads"), "Packs weight [out, in] into the forward's tiled input-major layout.");
  m.def("spike_linear_forward", &forward, py::arg("spikes"), py::arg("packed_weight"),
        py::arg("bias"), py::arg("out").noconvert(), py::arg("threads"),
        "out = spikes @ W^T (+ bias), event-driven; returns the number of events (nonzeros).");
  m.def("spike_linear_forward_by_input", &forward_by_input, py::arg("spikes"), py::arg("packed_weight"),
        py::arg("bias"), py::arg("out").noconvert(), py::arg("threads"),
        "The forward, input-stationary (wide inputs, few rows); returns the number of events.");
  m.def("spike_linear_grad_weight", &grad_weight, py::arg("spikes"), py::arg("grad_out"),
        py::arg("grad_weight").noconvert(), py::arg("threads"),
        "grad_weight [out, in] = (spikes^T @ grad_out)^T over active inputs only, scattered row by "
        "row (many rows); returns the nonzeros.");
  m.def("spike_linear_grad_weight_by_input", &grad_weight_by_input, py::arg("spikes"), py::arg("grad_out"),
        py::arg("grad_weight").noconvert(), py::arg("threads"),
        "grad_weight [out, in] = (spikes^T @ grad_out)^T, input by input (few rows, wide inputs); "
        "returns the nonzeros.");
  m.def("spike_linear_grad_input_masked", &grad_input_masked, py::arg("grad_mask"), py::arg("grad_out"),
        py::arg("packed_weight"), py::arg("grad_input").noconvert(), py::arg("threads"),
        "grad_input = grad_out @ W at grad_mask's nonzeros, zero elsewhere (W packed).");
}

}  // namespace sparsespike::bind
