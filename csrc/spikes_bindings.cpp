// pybind11 bindings of the helpers that read a spike tensor for any op: spikes_count (the dense
// path's SynOp count) and spikes_to_bytes (what spike_linear saves for its weight gradient).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>

#include "bind_common.h"
#include "bindings.h"
#include "parallel.h"
#include "spike_linear.h"  // scan_spikes, which spike_linear.cpp defines beside its kernels

namespace sparsespike::bind {

namespace {

int64_t count(const py::array& spikes, int threads) {
  require_matrix(spikes, "spikes");
  const int64_t rows = spikes.shape(0), in = spikes.shape(1);
  ScanResult r;
  auto run = [&](auto* s) {
    py::gil_scoped_release release;
    r = sparsespike::scan_spikes(s, rows, in, threads);
  };
  dispatch_spikes(spikes, run);
  if (r.nonfinite) throw py::value_error("spikes contains NaN or Inf");  // the scan allocates nothing
  return r.nnz;
}

// out[i] = spikes[i] as a byte when every value is exactly 0 or 1; returns whether they all were
// (false: out holds garbage and the caller keeps the floats). A quarter of the floats' memory,
// and spike_linear's weight gradient reads it as bytes exactly.
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

bool to_bytes(const py::array& spikes, py::array& out, int threads) {
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

}  // namespace

void bind_spikes(py::module_& m) {
  m.def("spikes_count", &count, py::arg("spikes"), py::arg("threads"),
        "Nonzeros of a 2-D spike array; raises ValueError on NaN/Inf.");
  m.def("spikes_to_bytes", &to_bytes, py::arg("spikes"), py::arg("out").noconvert(),
        py::arg("threads"),
        "Writes a 2-D float spike array into uint8 `out` and returns True when every value is 0 or 1 "
        "(False: out is garbage).");
}

}  // namespace sparsespike::bind
