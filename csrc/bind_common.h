// Argument checks shared by the pybind11 binding files: each raises TypeError or ValueError
// naming the argument, before any kernel touches memory.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

namespace sparsespike::bind {

namespace py = pybind11;

inline std::string dtype_name(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

template <typename T>
inline bool has_dtype(const py::array& a) {
  return a.dtype().is(py::dtype::of<T>());
}

// Elements at addresses aligned to their size (torch's tensors always are; a numpy view at an odd
// byte offset is not, and the kernels' element loads assume it).
inline void require_aligned(const py::array& a, const char* name) {
  if (!(a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
    throw py::value_error(std::string(name) + " must be aligned to its element size");
}

inline void require_matrix(const py::array& a, const char* name) {
  if (a.ndim() != 2)
    throw py::value_error(std::string(name) + " must be 2-D, got " + std::to_string(a.ndim()) +
                          "-D");
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous");
  require_aligned(a, name);
}

inline void require_vector(const py::array& a, const char* name, int64_t n) {
  if (a.ndim() != 1 || a.shape(0) != n)
    throw py::value_error(std::string(name) + " must have shape [" + std::to_string(n) + "]");
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous");
}

inline void require_output(const py::array& a, const char* name, int64_t rows, int64_t cols) {
  require_matrix(a, name);
  if (a.shape(0) != rows || a.shape(1) != cols)
    throw py::value_error(std::string(name) + " must have shape [" + std::to_string(rows) + ", " +
                          std::to_string(cols) + "]");
  if (!a.writeable()) throw py::value_error(std::string(name) + " must be writable");
}

template <typename T>
void require_dtype(const py::array& a, const char* name, const py::array& like) {
  if (!has_dtype<T>(a))
    throw py::type_error(std::string(name) + " must have dtype " + dtype_name(like) + ", got " +
                         dtype_name(a));
}

inline std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

// Checks that `a` has dtype T, exactly the given shape, is C-contiguous and (for an output)
// writable.
template <typename T>
void require_array(const py::array& a, const char* name, const std::vector<int64_t>& shape,
                   bool writable = false) {
  if (!has_dtype<T>(a))
    throw py::type_error(std::string(name) + " must have dtype " +
                         py::str(py::dtype::of<T>()).cast<std::string>() + ", got " + dtype_name(a));
  bool shape_ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
  for (size_t i = 0; shape_ok && i < shape.size(); ++i) shape_ok = a.shape(i) == shape[i];
  if (!shape_ok)
    throw py::value_error(std::string(name) + " must have shape " + shape_string(shape));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous");
  require_aligned(a, name);
  if (writable && !a.writeable()) throw py::value_error(std::string(name) + " must be writable");
}

// An optional input: nullptr for None, else checked like require_array (`keep` holds the array).
template <typename T>
const T* optional_array(const py::object& o, const char* name, const std::vector<int64_t>& shape,
                        py::array& keep) {
  if (o.is_none()) return nullptr;
  keep = py::array(o);
  require_array<T>(keep, name, shape);
  return static_cast<const T*>(keep.data());
}

// Calls f(static_cast<T*>(nullptr)) with T = float or double, as `a` holds; a TypeError naming
// `name` otherwise.
template <typename F>
decltype(auto) dispatch_float(const py::array& a, const char* name, F&& f) {
  if (has_dtype<float>(a)) return f(static_cast<float*>(nullptr));
  if (has_dtype<double>(a)) return f(static_cast<double*>(nullptr));
  throw py::type_error(std::string(name) + " must be float32 or float64, got " + dtype_name(a));
}

// Calls f(const S* spikes, T* tag): T is `like`'s float type (named like_name in errors), S the
// spikes' element type, uint8 for bool/uint8 spikes or else T itself.
template <typename F>
decltype(auto) dispatch_spike_types(const py::array& spikes, const py::array& like,
                                    const char* like_name, F&& f) {
  const bool binary = has_dtype<uint8_t>(spikes) || has_dtype<bool>(spikes);
  return dispatch_float(like, like_name, [&](auto* type_tag) {
    using T = std::remove_pointer_t<decltype(type_tag)>;
    if (binary) return f(static_cast<const uint8_t*>(spikes.data()), type_tag);
    if (has_dtype<T>(spikes)) return f(static_cast<const T*>(spikes.data()), type_tag);
    throw py::type_error("spikes must be bool, uint8 or the " + std::string(like_name) +
                         "'s dtype (" + dtype_name(like) + "), got " + dtype_name(spikes));
  });
}

// Calls f(const S* spikes) with the spikes' element type: float, double, or uint8 for bool/uint8.
template <typename F>
void dispatch_spikes(const py::array& spikes, F&& f) {
  if (has_dtype<float>(spikes))
    f(static_cast<const float*>(spikes.data()));
  else if (has_dtype<double>(spikes))
    f(static_cast<const double*>(spikes.data()));
  else if (has_dtype<uint8_t>(spikes) || has_dtype<bool>(spikes))
    f(static_cast<const uint8_t*>(spikes.data()));
  else
    throw py::type_error("spikes must be float32, float64, bool or uint8, got " +
                         dtype_name(spikes));
}

// [steps, n] of a 2-D sequence array, with at least one step.
inline void sequence_shape(const py::array& a, const char* name, int64_t& steps, int64_t& n) {
  if (a.ndim() != 2)
    throw py::value_error(std::string(name) + " must be 2-D [steps, neurons], got " +
                          std::to_string(a.ndim()) + "-D");
  steps = a.shape(0);
  n = a.shape(1);
  if (steps < 1) throw py::value_error(std::string(name) + " must have at least one step");
}

// An optional per-step gradient: None, [steps, n], or one row [n] broadcast over the steps (its
// row step is then 0).
template <typename T>
const T* optional_step_gradient(const py::object& o, const char* name, int64_t steps, int64_t n,
                                py::array& keep, int64_t& step) {
  step = 0;
  if (o.is_none()) return nullptr;
  keep = py::array(o);
  if (keep.ndim() == 1) {
    require_array<T>(keep, name, {n});
  } else {
    require_array<T>(keep, name, {steps, n});
    step = n;
  }
  return static_cast<const T*>(keep.data());
}

}  // namespace sparsespike::bind
