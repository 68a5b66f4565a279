// sparsespike._C.openmp: whether the extension was built with OpenMP (without it every kernel
// runs on one thread whatever `threads` says).
#include <pybind11/pybind11.h>

#include "bindings.h"

namespace sparsespike::bind {

void bind_build(pybind11::module_& m) {
#ifdef _OPENMP
  m.attr("openmp") = true;
#else
  m.attr("openmp") = false;
#endif
}

}  // namespace sparsespike::bind
