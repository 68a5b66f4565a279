// pybind11 bindings of the HGRN scan (hgrn_scan.h): every argument is checked (dtype, shape,
// C-contiguity, writability of outputs) before the kernel runs; outputs are never converted.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "bind_common.h"
#include "bindings.h"
#include "hgrn_scan.h"

namespace sparsespike::bind {

namespace {

void raise_on(sparsespike::HgrnStatus status) {
  switch (status) {
    case sparsespike::HgrnStatus::ok: return;
    case sparsespike::HgrnStatus::x_nonfinite: throw py::value_error("x contains NaN or Inf");
    case sparsespike::HgrnStatus::g_nonfinite: throw py::value_error("g contains NaN or Inf");
    case sparsespike::HgrnStatus::h0_nonfinite: throw py::value_error("h0 contains NaN or Inf");
    case sparsespike::HgrnStatus::g_positive:
      throw py::value_error(
          "g must be <= 0 everywhere (the log of a forget gate in (0, 1]); exp(g) > 1 makes the state "
          "grow without bound");
  }
}

template <typename T>
void forward_typed(const py::array& x, const py::array& g, const py::array& h0, py::array& h,
                   py::array& h_final, int64_t steps, int64_t n, int threads) {
  require_array<T>(x, "x", {steps, n});
  require_array<T>(g, "g", {steps, n});
  require_array<T>(h0, "h0", {n});
  require_array<T>(h, "h", {steps, n}, true);
  require_array<T>(h_final, "h_final", {n}, true);
  sparsespike::HgrnStatus status;
  {
    py::gil_scoped_release release;
    status = sparsespike::hgrn_scan_forward(
        static_cast<const T*>(x.data()), static_cast<const T*>(g.data()),
        static_cast<const T*>(h0.data()), steps, n, static_cast<T*>(h.mutable_data()),
        static_cast<T*>(h_final.mutable_data()), threads);
  }
  raise_on(status);
}

void forward(const py::array& x, const py::array& g, const py::array& h0, py::array& h,
             py::array& h_final, int threads) {
  int64_t steps, n;
  sequence_shape(x, "x", steps, n);
  dispatch_float(x, "x", [&](auto* type_tag) {
    forward_typed<std::remove_pointer_t<decltype(type_tag)>>(x, g, h0, h, h_final, steps, n, threads);
  });
}

template <typename T>
void backward_typed(const py::object& grad_h_obj, const py::object& grad_h_final_obj,
                    const py::array& g, const py::array& h, const py::array& h0,
                    py::array& grad_x, py::array& grad_g, py::array& grad_h0, int64_t steps,
                    int64_t n, int threads) {
  require_array<T>(g, "g", {steps, n});
  require_array<T>(h, "h", {steps, n});
  require_array<T>(h0, "h0", {n});
  require_array<T>(grad_x, "grad_x", {steps, n}, true);
  require_array<T>(grad_g, "grad_g", {steps, n}, true);
  require_array<T>(grad_h0, "grad_h0", {n}, true);
  py::array keep_gh, keep_ghf;
  int64_t gh_step;
  const T* gh = optional_step_gradient<T>(grad_h_obj, "grad_h", steps, n, keep_gh, gh_step);
  const T* ghf = optional_array<T>(grad_h_final_obj, "grad_h_final", {n}, keep_ghf);
  {
    py::gil_scoped_release release;
    sparsespike::hgrn_scan_backward(gh, gh_step, ghf, static_cast<const T*>(g.data()),
                                    static_cast<const T*>(h.data()), static_cast<const T*>(h0.data()),
                                    steps, n, static_cast<T*>(grad_x.mutable_data()),
                                    static_cast<T*>(grad_g.mutable_data()),
                                    static_cast<T*>(grad_h0.mutable_data()), threads);
  }
}

void backward(const py::object& grad_h, const py::object& grad_h_final, const py::array& g,
              const py::array& h, const py::array& h0, py::array& grad_x, py::array& grad_g,
              py::array& grad_h0, int threads) {
  int64_t steps, n;
  sequence_shape(g, "g", steps, n);
  dispatch_float(g, "g", [&](auto* type_tag) {
    backward_typed<std::remove_pointer_t<decltype(type_tag)>>(grad_h, grad_h_final, g, h, h0, grad_x,
                                                              grad_g, grad_h0, steps, n, threads);
  });
}

}  // namespace

void bind_hgrn_scan(py::module_& m) {
  m.def("hgrn_scan_forward", &forward, py::arg("x"), py::arg("g"), py::arg("h0"),
        py::arg("h").noconvert(), py::arg("h_final").noconvert(), py::arg("threads"),
        "HGRN scan h_t = exp(g_t) h_{t-1} + x_t over [steps, neurons]; raises ValueError naming "
        "x, g or h0 on NaN/Inf.");
  m.def("hgrn_scan_backward", &backward, py::arg("grad_h"), py::arg("grad_h_final"), py::arg("g"),
        py::arg("h"), py::arg("h0"), py::arg("grad_x").noconvert(),
        py::arg("grad_g").noconvert(), py::arg("grad_h0").noconvert(), py::arg("threads"),
        "Gradients (x, g, h0) of the HGRN scan: one reverse pass over the steps.");
}

}  // namespace sparsespike::bind
