// pybind11 bindings of the event-driven conv2d (spike_conv2d.h): every argument is checked
// (dtype, shape, C-contiguity, writability of outputs, geometry) before a kernel runs; outputs
// are never converted.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <climits>
#include <cstdint>
#include <string>

#include "bind_common.h"
#include "bindings.h"
#include "spike_conv2d.h"

namespace sparsespike::bind {

namespace {

using Pair = std::array<int64_t, 2>;

void raise_on(const sparsespike::ConvResult& r) {
  if (r.out_of_memory) throw std::bad_alloc();
  if (r.nonfinite) throw py::value_error("spikes contains NaN or Inf");
}

void require_4d(const py::array& a, const char* name, const char* layout) {
  if (a.ndim() != 4)
    throw py::value_error(std::string(name) + " must be 4-D " + layout + ", got " +
                          std::to_string(a.ndim()) + "-D");
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous");
  for (int i = 0; i < 4; ++i)
    if (a.shape(i) < 1)
      throw py::value_error(std::string(name) + " must have no empty dimension");
}

void require_pair(const Pair& v, const char* name, int64_t min) {
  if (v[0] < min || v[1] < min)
    throw py::value_error(std::string(name) + " must be at least " + std::to_string(min) +
                          ", got (" + std::to_string(v[0]) + ", " + std::to_string(v[1]) + ")");
  // keeps every product of the index arithmetic far from int64 overflow
  if (v[0] > INT32_MAX || v[1] > INT32_MAX)
    throw py::value_error(std::string(name) + " must be below 2^31, got (" + std::to_string(v[0]) +
                          ", " + std::to_string(v[1]) + ")");
}

// The geometry of spikes [n, c_in, h, w] -> output [n, c_out, h_out, w_out] with the given
// kernel, stride, top/left padding and dilation; every check a kernel relies on.
sparsespike::ConvShape geometry(const py::array& spikes, int64_t c_out, int64_t h_out,
                                int64_t w_out, const Pair& kernel, const Pair& stride,
                                const Pair& padding, const Pair& dilation) {
  require_4d(spikes, "spikes", "[N, C_in, H, W]");
  require_pair(kernel, "kernel_size", 1);
  require_pair(stride, "stride", 1);
  require_pair(padding, "padding", 0);
  require_pair(dilation, "dilation", 1);
  if (c_out < 1 || h_out < 1 || w_out < 1)
    throw py::value_error("the output must have at least one channel, row and column");
  sparsespike::ConvShape s{spikes.shape(0), spikes.shape(1), spikes.shape(2), spikes.shape(3),
                           c_out, h_out, w_out, kernel[0], kernel[1], stride[0], stride[1],
                           padding[0], padding[1], dilation[0], dilation[1]};
  // event lists index an image's inputs with int32
  if (s.c_in * s.h * s.w >= INT32_MAX)
    throw py::value_error("spikes has too many inputs per image (C_in * H * W must be < 2^31)");
  if (s.c_in * s.kh * s.kw >= INT32_MAX)
    throw py::value_error("weight has too many taps (C_in * KH * KW must be < 2^31)");
  // every output position must be reachable: its receptive field starts inside the padded input
  if (s.ph > s.dh * (s.kh - 1) || s.pw > s.dw * (s.kw - 1))
    throw py::value_error("padding must be at most dilation * (kernel_size - 1) per side");
  if ((s.h_out - 1) * s.sh > s.h + s.ph - 1 || (s.w_out - 1) * s.sw > s.w + s.pw - 1)
    throw py::value_error("the output is larger than the padded input allows");
  return s;
}

int64_t padded_width(int64_t c_out, int64_t itemsize) {
  if (c_out < 1) throw py::value_error("c_out must be at least 1");
  if (itemsize != 4 && itemsize != 8) throw py::value_error("itemsize must be 4 or 8");
  return sparsespike::conv_padded_width(c_out, itemsize);
}

// weight [c_out, c_in, kh, kw] -> packed [c_in * kh * kw, cpad]
void pack_weight(const py::array& weight, py::array& packed, int threads) {
  require_4d(weight, "weight", "[C_out, C_in, KH, KW]");
  sparsespike::ConvShape s{};
  s.c_out = weight.shape(0);
  s.c_in = weight.shape(1);
  s.kh = weight.shape(2);
  s.kw = weight.shape(3);
  auto run = [&](auto* type_tag) {
    using T = std::remove_pointer_t<decltype(type_tag)>;
    const int64_t cpad = sparsespike::conv_padded_width(s.c_out, sizeof(T));
    require_array<T>(packed, "packed", {s.c_in * s.kh * s.kw, cpad}, true);
    const T* w = static_cast<const T*>(weight.data());
    T* p = static_cast<T*>(packed.mutable_data());
    py::gil_scoped_release release;
    sparsespike::conv_pack_weight(w, s, cpad, p, threads);
  };
  dispatch_float(weight, "weight", run);
}

py::tuple forward(const py::array& spikes, const py::array& packed_weight, const py::object& bias,
                  py::array& out, const Pair& kernel, const Pair& stride, const Pair& padding,
                  const Pair& dilation, int threads) {
  require_4d(out, "out", "[N, C_out, H_out, W_out]");
  const auto s = geometry(spikes, out.shape(1), out.shape(2), out.shape(3), kernel, stride,
                          padding, dilation);
  if (out.shape(0) != s.n)
    throw py::value_error("out has " + std::to_string(out.shape(0)) + " images but spikes has " +
                          std::to_string(s.n));
  if (!out.writeable()) throw py::value_error("out must be writable");
  return dispatch_spike_types(spikes, out, "out", [&](auto* sp, auto* type_tag) -> py::tuple {
    using T = std::remove_pointer_t<decltype(type_tag)>;
    const int64_t cpad = sparsespike::conv_padded_width(s.c_out, sizeof(T));
    require_array<T>(packed_weight, "packed_weight", {s.c_in * s.kh * s.kw, cpad});
    py::array keep;
    const T* b = optional_array<T>(bias, "bias", {s.c_out}, keep);
    const T* w = static_cast<const T*>(packed_weight.data());
    T* y = static_cast<T*>(out.mutable_data());
    sparsespike::ConvResult r;
    {
      py::gil_scoped_release release;
      r = sparsespike::spike_conv2d_forward(sp, s, w, cpad, b, y, threads);
    }
    raise_on(r);
    return py::make_tuple(r.nnz, r.reach);
  });
}

py::tuple grad_weight(const py::array& spikes, const py::array& grad_out, py::array& grad_weight_t,
                      const Pair& kernel, const Pair& stride, const Pair& padding,
                      const Pair& dilation, int threads) {
  require_4d(grad_out, "grad_out", "[N, C_out, H_out, W_out]");
  const auto s = geometry(spikes, grad_out.shape(1), grad_out.shape(2), grad_out.shape(3), kernel,
                          stride, padding, dilation);
  if (grad_out.shape(0) != s.n)
    throw py::value_error("grad_out has " + std::to_string(grad_out.shape(0)) +
                          " images but spikes has " + std::to_string(s.n));
  return dispatch_spike_types(spikes, grad_out, "grad_out", [&](auto* sp, auto* type_tag) -> py::tuple {
    using T = std::remove_pointer_t<decltype(type_tag)>;
    require_array<T>(grad_weight_t, "grad_weight_t", {s.c_in * s.kh * s.kw, s.c_out}, true);
    const T* g = static_cast<const T*>(grad_out.data());
    T* gw = static_cast<T*>(grad_weight_t.mutable_data());
    sparsespike::ConvResult r;
    {
      py::gil_scoped_release release;
      r = sparsespike::spike_conv2d_grad_weight(sp, s, g, gw, threads);
    }
    raise_on(r);
    return py::make_tuple(r.nnz, r.reach);
  });
}

void grad_input_masked(const py::array& mask, const py::array& grad_out,
                       const py::array& packed_weight, py::array& grad_input, const Pair& kernel,
                       const Pair& stride, const Pair& padding, const Pair& dilation, int threads) {
  require_4d(grad_out, "grad_out", "[N, C_out, H_out, W_out]");
  const auto s = geometry(mask, grad_out.shape(1), grad_out.shape(2), grad_out.shape(3), kernel,
                          stride, padding, dilation);
  if (!(has_dtype<uint8_t>(mask) || has_dtype<bool>(mask)))
    throw py::type_error("grad_mask must be bool or uint8, got " + dtype_name(mask));
  if (grad_out.shape(0) != s.n)
    throw py::value_error("grad_out has " + std::to_string(grad_out.shape(0)) +
                          " images but grad_mask has " + std::to_string(s.n));
  dispatch_float(grad_out, "grad_out", [&](auto* type_tag) {
    using T = std::remove_pointer_t<decltype(type_tag)>;
    const int64_t cpad = sparsespike::conv_padded_width(s.c_out, sizeof(T));
    require_array<T>(packed_weight, "packed_weight", {s.c_in * s.kh * s.kw, cpad});
    require_array<T>(grad_input, "grad_input", {s.n, s.c_in, s.h, s.w}, true);
    const auto* m = static_cast<const uint8_t*>(mask.data());
    const T* g = static_cast<const T*>(grad_out.data());
    const T* w = static_cast<const T*>(packed_weight.data());
    T* gx = static_cast<T*>(grad_input.mutable_data());
    sparsespike::ConvResult r;
    {
      py::gil_scoped_release release;
      r = sparsespike::spike_conv2d_grad_input_masked(m, s, g, w, cpad, gx, threads);
    }
    raise_on(r);
  });
}

py::tuple scan(const py::array& spikes, const Pair& kernel, const Pair& stride,
               const Pair& padding, const Pair& dilation, const Pair& out_size, int threads) {
  const auto s = geometry(spikes, 1, out_size[0], out_size[1], kernel, stride, padding, dilation);
  sparsespike::ConvResult r;
  auto run = [&](auto* sp) {
    py::gil_scoped_release release;
    r = sparsespike::spike_conv2d_scan(sp, s, threads);
  };
  dispatch_spikes(spikes, run);
  raise_on(r);
  return py::make_tuple(r.nnz, r.reach);
}

}  // namespace

void bind_spike_conv2d(py::module_& m) {
  m.def("spike_conv2d_padded_width", &padded_width, py::arg("c_out"), py::arg("itemsize"),
        "Output channels of the packed conv weight's rows (c_out rounded up to 32-byte vectors).");
  m.def("spike_conv2d_pack_weight", &pack_weight, py::arg("weight"), py::arg("packed").noconvert(),
        py::arg("threads"),
        "Packs weight [C_out, C_in, KH, KW] into [C_in * KH * KW, padded_width].");
  m.def("spike_conv2d_forward", &forward, py::arg("spikes"), py::arg("packed_weight"),
        py::arg("bias"), py::arg("out").noconvert(), py::arg("kernel_size"), py::arg("stride"),
        py::arg("padding"), py::arg("dilation"), py::arg("threads"),
        "out = conv2d(spikes, W) (+ bias), event-driven; padding is (top, left), the output size "
        "is out's; returns (nonzeros, reach), reach = (event, tap) pairs inside the output.");
  m.def("spike_conv2d_grad_weight", &grad_weight, py::arg("spikes"), py::arg("grad_out"),
        py::arg("grad_weight_t").noconvert(), py::arg("kernel_size"), py::arg("stride"),
        py::arg("padding"), py::arg("dilation"), py::arg("threads"),
        "grad_weight_t [C_in * KH * KW, C_out] over active inputs only; returns (nonzeros, reach).");
  m.def("spike_conv2d_grad_input_masked", &grad_input_masked, py::arg("grad_mask"),
        py::arg("grad_out"), py::arg("packed_weight"), py::arg("grad_input").noconvert(),
        py::arg("kernel_size"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("threads"),
        "grad_input [N, C_in, H, W] = the input gradient at grad_mask's nonzeros, zero elsewhere "
        "(W packed as for the forward).");
  m.def("spike_conv2d_scan", &scan, py::arg("spikes"), py::arg("kernel_size"), py::arg("stride"),
        py::arg("padding"), py::arg("dilation"), py::arg("out_size"), py::arg("threads"),
        "(nonzeros, reach) of 4-D spikes; raises ValueError on NaN/Inf.");
}

}  // namespace sparsespike::bind
