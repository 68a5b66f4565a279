// pybind11 bindings of the memory helpers: memory_fingerprint (a content hash of an array, which
// tells the weight caches that a weight was edited behind torch's version counter) and
// memory_advise_huge_pages (transparent huge pages for fresh large outputs).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>

#ifdef __linux__
#include <sys/mman.h>
#endif

#include "bindings.h"
#include "fingerprint.h"

namespace sparsespike::bind {

namespace py = pybind11;

namespace {

uint64_t fingerprint(const py::array& a, int threads) {
  if (!(a.flags() & py::array::c_style)) throw py::value_error("array must be C-contiguous");
  const void* data = a.data();
  const int64_t bytes = a.nbytes();
  py::gil_scoped_release release;
  return sparsespike::fingerprint(data, bytes, threads);
}

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

void bind_memory(py::module_& m) {
  m.def("memory_fingerprint", &fingerprint, py::arg("array"), py::arg("threads"),
        "Non-linear 64-bit hash of a contiguous array's bytes (independent of the thread count).");
  m.def("memory_advise_huge_pages", &advise_huge_pages, py::arg("array").noconvert(),
        "Advises transparent huge pages for the aligned interior of a fresh array.");
}

}  // namespace sparsespike::bind
