// Argument checks shared by the pybind11 binding files: each raises TypeError or ValueError
// naming the argument, before any kernel touches memory.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
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
