#include "hgrn_scan.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "lanes.h"
#include "parallel.h"

namespace sparsespike {

namespace {

// Neurons per block: each row of a block is one contiguous run, long enough for the hardware
// prefetchers to stream; a block's rows of every array stay in L1/L2 between steps.
constexpr int64_t kNeuronBlock = 1024;

// a * b + c, alike in vectors and scalars: one rounding where the target has FMA (simd.h's
// fmadd; std::fma, inlined), two elsewhere.
template <typename L>
inline L fma_lanes(const L& a, const L& b, const L& c) {
  if constexpr (is_scalar_lane<L>) {
#if defined(__FMA__)
    return std::fma(a, b, c);
#else
    return a * b + c;
#endif
  } else {
    return fmadd(a, b, c);
  }
}

// exp of float lanes without a per-lane libm call (glibc has no vector expf without
// -ffast-math), branch-free, about 2x faster than std::exp per lane: Cephes' expf polynomial
// (S. Moshier), within 2 ulp of exp. x is clamped to [-104, 89] (exp(-104) rounds to 0 and
// exp(89) to inf in float); n = round(x / ln 2) by the 1.5 * 2^23 trick; r = x - n ln 2 in two
// parts (C1 has few mantissa bits, so n * C1 is exact); a degree-7 polynomial (Horner, FMAs)
// gives exp(r) on |r| <= ln 2 / 2; the result is scaled by 2^n as 2^(n/2) * 2^(n - n/2), two
// normal powers of two, so results that are subnormal or overflow round once, like exp's. The
// scalar tail runs the same operations, so vector and tail round alike. NaN is not handled (the
// inputs are checked finite).
template <typename L>
inline L exp_f32_lanes(const L& x_in) {
  using T = float;
  constexpr T kMagic = 12582912.0f;  // 1.5 * 2^23
  L x;
  if constexpr (is_scalar_lane<L>)
    x = std::min(std::max(x_in, T(-104)), T(89));
  else
    x = x_in < T(-104) ? lanes_of<L>(T(-104)) : (x_in > T(89) ? lanes_of<L>(T(89)) : x_in);
  const L t = x * T(1.44269504088896341f) + kMagic;
  const L nf = t - kMagic;
  const L r = (x - nf * T(0.693359375f)) - nf * T(-2.12194440e-4f);
  L p = fma_lanes(r, lanes_of<L>(T(1.9875691500e-4f)), lanes_of<L>(T(1.3981999507e-3f)));
  p = fma_lanes(p, r, lanes_of<L>(T(8.3334519073e-3f)));
  p = fma_lanes(p, r, lanes_of<L>(T(4.1665795894e-2f)));
  p = fma_lanes(p, r, lanes_of<L>(T(1.6666665459e-1f)));
  p = fma_lanes(p, r, lanes_of<L>(T(5.0000001201e-1f)));
  const L y = fma_lanes(p, r * r, r) + T(1);
  using I = std::conditional_t<is_scalar_lane<L>, int32_t, decltype(x > x)>;
  const I n = bits_as<I>(t) - bits_as<int32_t>(kMagic);  // in [-150, 129]
  const I n1 = n >> 1;
  const I n2 = n - n1;
  return (y * bits_as<L>((n1 + 127) << 23)) * bits_as<L>((n2 + 127) << 23);
}

// exp per lane: the polynomial for float, std::exp per lane for double.
template <typename L>
inline L exp_any(const L& x) {
  if constexpr (std::is_same_v<element_of<L>, float>)
    return exp_f32_lanes(x);
  else
    return exp_lanes(x);
}

// The forward over neurons [n0, n0 + width), time-outer.
template <typename T>
HgrnStatus forward_block(const T* x, const T* g, const T* h0, int64_t steps, int64_t n,
                         int64_t n0, int64_t width, T* h, T* h_final) {
  FiniteProbe<T> px, pg, ph0;
  MaxProbe<T> g_max;
  for_lanes<T>(width, [&](auto lane, int64_t k) {
    using L = typename decltype(lane)::type;
    ph0.add(load_lanes<L>(h0 + n0 + k));
  });
  for (int64_t t = 0; t < steps; ++t) {
    const T* x_t = x + t * n + n0;
    const T* g_t = g + t * n + n0;
    T* h_t = h + t * n + n0;
    const T* h_p = t > 0 ? h_t - n : h0 + n0;
    for_lanes<T>(width, [&](auto lane, int64_t k) {
      using L = typename decltype(lane)::type;
      const L xk = load_lanes<L>(x_t + k), gk = load_lanes<L>(g_t + k);
      px.add(xk);
      pg.add(gk);
      g_max.add(gk);
      store_lanes(h_t + k, exp_any(gk) * load_lanes<L>(h_p + k) + xk);
    });
  }
  const T* last = h + (steps - 1) * n + n0;
  std::copy(last, last + width, h_final + n0);
  if (!px.finite()) return HgrnStatus::x_nonfinite;
  if (!pg.finite()) return HgrnStatus::g_nonfinite;
  if (!ph0.finite()) return HgrnStatus::h0_nonfinite;
  if (g_max.any_positive()) return HgrnStatus::g_positive;
  return HgrnStatus::ok;
}

// The reverse pass over neurons [n0, n0 + width): carry = dL/dh_t from the steps after t.
// scratch holds 2 * width values: the carry and a zero row (a missing grad_h).
template <typename T>
void backward_block(const T* grad_h, int64_t grad_h_step, const T* grad_h_final, const T* g,
                    const T* h, const T* h0, int64_t steps, int64_t n, int64_t n0, int64_t width,
                    T* grad_x, T* grad_g, T* grad_h0, T* scratch) {
  T* carry = scratch;
  T* zeros = scratch + width;
  std::fill(scratch, scratch + 2 * width, T(0));
  if (grad_h_final) std::copy(grad_h_final + n0, grad_h_final + n0 + width, carry);
  for (int64_t t = steps - 1; t >= 0; --t) {
    const T* gh_t = grad_h ? grad_h + t * grad_h_step + n0 : zeros;
    const T* g_t = g + t * n + n0;
    const T* h_p = t > 0 ? h + (t - 1) * n + n0 : h0 + n0;
    T* gx_t = grad_x + t * n + n0;
    T* gg_t = grad_g + t * n + n0;
    for_lanes<T>(width, [&](auto lane, int64_t k) {
      using L = typename decltype(lane)::type;
      const L a = load_lanes<L>(gh_t + k) + load_lanes<L>(carry + k);
      const L e = exp_any(load_lanes<L>(g_t + k));
      store_lanes(gx_t + k, a);
      store_lanes(gg_t + k, (a * load_lanes<L>(h_p + k)) * e);  // autograd's order: (a h) e
      store_lanes(carry + k, e * a);
    });
  }
  std::copy(carry, carry + width, grad_h0 + n0);
}

int64_t block_count(int64_t n) { return (n + kNeuronBlock - 1) / kNeuronBlock; }

}  // namespace

template <typename T>
HgrnStatus hgrn_scan_forward(const T* x, const T* g, const T* h0, int64_t steps, int64_t n, T* h,
                             T* h_final, int threads) {
  const int64_t blocks = block_count(n);
  std::vector<HgrnStatus> status(blocks, HgrnStatus::ok);
#pragma omp parallel for schedule(static) num_threads(threads_for_work(threads, blocks, steps * n))
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t n0 = blk * kNeuronBlock, width = std::min(n, n0 + kNeuronBlock) - n0;
    status[blk] = forward_block(x, g, h0, steps, n, n0, width, h, h_final);
  }
  // the first argument found bad in any block, in argument order (x, g, h0)
  HgrnStatus worst = HgrnStatus::ok;
  for (HgrnStatus s : status)
    if (s != HgrnStatus::ok && (worst == HgrnStatus::ok || int(s) < int(worst))) worst = s;
  return worst;
}

template <typename T>
void hgrn_scan_backward(const T* grad_h, int64_t grad_h_step, const T* grad_h_final, const T* g,
                        const T* h, const T* h0, int64_t steps, int64_t n, T* grad_x, T* grad_g,
                        T* grad_h0, int threads) {
  const int64_t blocks = block_count(n);
#pragma omp parallel num_threads(threads_for_work(threads, blocks, steps * n))
  {
    std::vector<T> scratch(2 * kNeuronBlock);
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t n0 = blk * kNeuronBlock, width = std::min(n, n0 + kNeuronBlock) - n0;
      backward_block(grad_h, grad_h_step, grad_h_final, g, h, h0, steps, n, n0, width, grad_x,
                     grad_g, grad_h0, scratch.data());
    }
  }
}

template HgrnStatus hgrn_scan_forward<float>(const float*, const float*, const float*, int64_t,
                                             int64_t, float*, float*, int);
template HgrnStatus hgrn_scan_forward<double>(const double*, const double*, const double*, int64_t,
                                              int64_t, double*, double*, int);
template void hgrn_scan_backward<float>(const float*, int64_t, const float*, const float*,
                                        const float*, const float*, int64_t, int64_t, float*, float*,
                                        float*, int);
template void hgrn_scan_backward<double>(const double*, int64_t, const double*, const double*,
                                         const double*, const double*, int64_t, int64_t, double*,
                                         double*, double*, int);

}  // namespace sparsespike
