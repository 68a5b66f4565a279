#include "lif.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <type_traits>
#include <vector>

#include "parallel.h"

namespace sparsespike {

namespace {

constexpr int64_t kNeuronBlock = 256;

// d spike / d u for u = membrane - threshold (formulas in lif_reference.surrogate_grad).
template <Surrogate S, typename T>
inline T surrogate_grad(T u, T param) {
  if constexpr (S == Surrogate::fast_sigmoid) {
    const T d = T(1) + param * std::abs(u);
    return T(1) / (d * d);
  } else if constexpr (S == Surrogate::atan) {
    const T z = T(M_PI) * param * u / T(2);
    return (param / T(2)) / (T(1) + z * z);
  } else if constexpr (S == Surrogate::sigmoid) {  // s (1 - s) = e / (1 + e)^2, e = exp(-param|u|)
    const T e = std::exp(-param * std::abs(u));
    return param * e / ((T(1) + e) * (T(1) + e));
  } else {
    const T tri = T(1) - param * std::abs(u);
    return param * (tri > T(0) ? tri : T(0));
  }
}

// A select between constants (compare + and-mask), not a bool-to-float conversion: cvtsi2ss
// carries a false dependency that measured 2.5x slower here.
template <typename T>
inline T heaviside(T u, bool inclusive) {
  return (inclusive ? u >= T(0) : u > T(0)) ? T(1) : T(0);
}

// spikingjelly's reset of a charged membrane h given its spike s.
template <typename T>
inline T sj_reset(T h, T s, T theta, LifReset reset) {
  switch (reset) {
    case LifReset::subtract:
      return h - theta * s;
    case LifReset::zero:
      return (T(1) - s) * h;
    case LifReset::none:
      return h;
  }
  return h;
}

// Time-outer over one block of neurons; the inner loop runs over contiguous neurons. (With
// convention and reset as template parameters GCC vectorised it, and it measured 2.5x slower.)
template <typename T>
void forward_block(const T* current, int64_t steps, int64_t n, int64_t n0, int64_t n1,
                   const T* beta, const T* threshold, const T* v0, const LifConfig& cfg,
                   T* spikes, T* trace, T* v_final, bool& nonfinite) {
  const int64_t width = n1 - n0;
  std::vector<T> v(v0 + n0, v0 + n1);
  std::vector<T> unused_trace(trace ? 0 : width);  // a sink row when no trace is wanted
  bool bad = false;
  for (int64_t t = 0; t < steps; ++t) {
    const T* x = current + t * n + n0;
    T* s_out = spikes + t * n + n0;
    T* m_out = trace ? trace + t * n + n0 : unused_trace.data();
    for (int64_t k = 0; k < width; ++k) {
      const T b = beta[n0 + k], th = threshold[n0 + k], xk = x[k];
      bad |= !std::isfinite(xk);
      T vk = v[k];
      if (cfg.convention == LifConvention::snntorch) {
        const T r = heaviside(vk - th, false);
        if (cfg.reset == LifReset::subtract)
          vk = b * vk + xk - th * r;
        else if (cfg.reset == LifReset::zero)
          vk = b * (T(1) - r) * vk + xk;
        else
          vk = b * vk + xk;
        s_out[k] = heaviside(vk - th, false);
        m_out[k] = vk;
      } else {
        const T h = b * vk + (cfg.decay_input ? (T(1) - b) * xk : xk);
        const T s = heaviside(h - th, true);
        s_out[k] = s;
        m_out[k] = h;
        vk = sj_reset(h, s, th, cfg.reset);
      }
      v[k] = vk;
    }
  }
  std::copy(v.begin(), v.end(), v_final + n0);
  nonfinite |= bad;
}

// Reverse passes over one block of neurons, time-outer so that every inner loop runs over
// contiguous neurons (vectorisable); `carry[k]` is dL/dv of the membrane state entering the
// step from the one after it (gvf at the end), and ends as dL/dv0. Surrogate and reset are
// template parameters so the inner loops have no switches.

// snnTorch convention: v_t = f(v_{t-1}, r_t), r_t = H(v_{t-1} - theta), s_t = H(v_t - theta).
// gs/gtr are never null here (a zero row stands in for a missing gradient).
template <typename T, Surrogate S, LifReset R, bool LIVE>
void backward_block_snntorch(const T* gs, const T* gtr, int64_t gs_step, int64_t gtr_step,
                             const T* trace, int64_t steps, int64_t n, int64_t n0, int64_t width,
                             const T* beta, const T* threshold, const T* v0, T param, T* carry,
                             T* gx, T* gb, T* gth) {
  const T* b = beta + n0;
  const T* th = threshold + n0;
  for (int64_t t = steps - 1; t >= 0; --t) {
    const T* v_t = trace + t * n + n0;
    const T* v_p = t > 0 ? trace + (t - 1) * n + n0 : v0 + n0;
    const T* g_s = gs + t * gs_step;
    const T* g_tr = gtr + t * gtr_step;
    T* g_x = gx + t * n + n0;
    for (int64_t k = 0; k < width; ++k) {
      const T vp = v_p[k];
      const T sig_t = surrogate_grad<S>(v_t[k] - th[k], param);
      const T a = g_tr[k] + g_s[k] * sig_t + carry[k];
      g_x[k] = a;
      const T r = heaviside(vp - th[k], false);
      T c, db, dt = -g_s[k] * sig_t;
      if constexpr (R == LifReset::zero) {
        db = a * ((T(1) - r) * vp);
        c = a * (b[k] * (T(1) - r));
      } else {
        db = a * vp;
        c = a * b[k];
      }
      if constexpr (R == LifReset::subtract) dt += -a * r;
      if constexpr (LIVE && R != LifReset::none) {
        const T sig_p = surrogate_grad<S>(vp - th[k], param);
        const T dvdr = R == LifReset::subtract ? -th[k] : -b[k] * vp;
        dt += a * dvdr * -sig_p;
        c += a * dvdr * sig_p;
      }
      gb[k] += db;
      gth[k] += dt;
      carry[k] = c;
    }
  }
}

// SpikingJelly convention: h_t = beta v_{t-1} + c x_t, s_t = H(h_t - theta), v_t = reset(h_t, s_t).
// v_prev is a scratch row: the membrane after reset of the step before (v0 at the first step).
template <typename T, Surrogate S, LifReset R, bool LIVE>
void backward_block_spikingjelly(const T* gs, const T* gtr, int64_t gs_step, int64_t gtr_step,
                                 const T* current, const T* trace, int64_t steps, int64_t n,
                                 int64_t n0, int64_t width, const T* beta, const T* threshold,
                                 const T* v0, bool decay_input, T param, T* carry, T* v_prev,
                                 const T* zeros, T* gx, T* gb, T* gth) {
  const T* b = beta + n0;
  const T* th = threshold + n0;
  for (int64_t t = steps - 1; t >= 0; --t) {
    const T* h_t = trace + t * n + n0;
    if (t > 0) {
      const T* h_p = trace + (t - 1) * n + n0;
      for (int64_t k = 0; k < width; ++k)
        v_prev[k] = sj_reset(h_p[k], heaviside(h_p[k] - th[k], true), th[k], R);
    } else {
      std::copy(v0 + n0, v0 + n0 + width, v_prev);
    }
    const T* g_s = gs + t * gs_step;
    const T* g_tr = gtr + t * gtr_step;
    T* g_x = gx + t * n + n0;
    // with decay_input h holds (1 - beta) x, so dbeta reads x; without it a zero row stands in
    const T* x = decay_input ? current + t * n + n0 : zeros;
    for (int64_t k = 0; k < width; ++k) {
      const T h = h_t[k], a = carry[k];
      const T s = heaviside(h - th[k], true);
      const T sig = surrogate_grad<S>(h - th[k], param);
      T ds = g_s[k];
      if constexpr (LIVE && R != LifReset::none) ds += a * (R == LifReset::subtract ? -th[k] : -h);
      const T dh = g_tr[k] + a * (R == LifReset::zero ? T(1) - s : T(1)) + ds * sig;
      g_x[k] = decay_input ? dh * (T(1) - b[k]) : dh;
      gb[k] += dh * (v_prev[k] - x[k]);
      T dt = -ds * sig;
      if constexpr (R == LifReset::subtract) dt += -a * s;
      gth[k] += dt;
      carry[k] = dh * b[k];
    }
  }
}

template <typename T, Surrogate S, LifReset R, bool LIVE>
void backward_block(const T* gs, const T* gtr, const T* gvf, const T* current, const T* trace,
                    int64_t steps, int64_t n, int64_t n0, int64_t n1, const T* beta,
                    const T* threshold, const T* v0, const LifConfig& cfg, T* gx, T* gb, T* gth,
                    T* gv0) {
  const int64_t width = n1 - n0;
  const T param = static_cast<T>(cfg.surrogate_param);
  // carry | zero row (for a missing gradient) | v_prev scratch
  std::vector<T> scratch(3 * width, T(0));
  T* carry = scratch.data();
  const T* zeros = scratch.data() + width;
  T* v_prev = scratch.data() + 2 * width;
  if (gvf) std::copy(gvf + n0, gvf + n1, carry);
  const T* g_s = gs ? gs + n0 : zeros;
  const T* g_tr = gtr ? gtr + n0 : zeros;
  const int64_t gs_step = gs ? n : 0, gtr_step = gtr ? n : 0;
  std::fill(gb + n0, gb + n1, T(0));
  std::fill(gth + n0, gth + n1, T(0));
  if (cfg.convention == LifConvention::snntorch)
    backward_block_snntorch<T, S, R, LIVE>(g_s, g_tr, gs_step, gtr_step, trace, steps, n, n0, width,
                                           beta, threshold, v0, param, carry, gx, gb + n0, gth + n0);
  else
    backward_block_spikingjelly<T, S, R, LIVE>(g_s, g_tr, gs_step, gtr_step, current, trace, steps,
                                               n, n0, width, beta, threshold, v0, cfg.decay_input,
                                               param, carry, v_prev, zeros, gx, gb + n0, gth + n0);
  std::copy(carry, carry + width, gv0 + n0);
}

template <typename T, Surrogate S, LifReset R>
void backward_block_live(const T* gs, const T* gtr, const T* gvf, const T* current,
                         const T* trace, int64_t steps, int64_t n, int64_t n0, int64_t n1,
                         const T* beta, const T* threshold, const T* v0, const LifConfig& cfg,
                         T* gx, T* gb, T* gth, T* gv0) {
  if (cfg.detach_reset)
    backward_block<T, S, R, false>(gs, gtr, gvf, current, trace, steps, n, n0, n1, beta,
                                   threshold, v0, cfg, gx, gb, gth, gv0);
  else
    backward_block<T, S, R, true>(gs, gtr, gvf, current, trace, steps, n, n0, n1, beta, threshold,
                                  v0, cfg, gx, gb, gth, gv0);
}

template <typename T, Surrogate S>
void backward_block_reset(LifReset reset, const T* gs, const T* gtr, const T* gvf,
                          const T* current, const T* trace, int64_t steps, int64_t n, int64_t n0,
                          int64_t n1, const T* beta, const T* threshold, const T* v0,
                          const LifConfig& cfg, T* gx, T* gb, T* gth, T* gv0) {
  switch (reset) {
    case LifReset::subtract:
      return backward_block_live<T, S, LifReset::subtract>(gs, gtr, gvf, current, trace, steps, n,
                                                           n0, n1, beta, threshold, v0, cfg, gx,
                                                           gb, gth, gv0);
    case LifReset::zero:
      return backward_block_live<T, S, LifReset::zero>(gs, gtr, gvf, current, trace, steps, n, n0,
                                                       n1, beta, threshold, v0, cfg, gx, gb, gth,
                                                       gv0);
    case LifReset::none:
      return backward_block_live<T, S, LifReset::none>(gs, gtr, gvf, current, trace, steps, n, n0,
                                                       n1, beta, threshold, v0, cfg, gx, gb, gth,
                                                       gv0);
  }
}

}  // namespace

template <typename T>
bool lif_forward(const T* current, int64_t steps, int64_t n, const T* beta, const T* threshold,
                 const T* v0, const LifConfig& cfg, T* spikes, T* trace, T* v_final,
                 int threads) {
  const int64_t blocks = (n + kNeuronBlock - 1) / kNeuronBlock;
  std::atomic<bool> any_bad{false};
#pragma omp parallel for num_threads(threads_for_work(threads, blocks, steps * n)) \
    schedule(static)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    bool bad = false;
    forward_block(current, steps, n, blk * kNeuronBlock, std::min(n, (blk + 1) * kNeuronBlock),
                  beta, threshold, v0, cfg, spikes, trace, v_final, bad);
    if (bad) any_bad = true;
  }
  return !any_bad.load();
}

template <typename T>
void lif_backward(const T* grad_spikes, const T* grad_trace, const T* grad_v_final,
                  const T* current, const T* trace, int64_t steps, int64_t n, const T* beta,
                  const T* threshold, const T* v0, const LifConfig& cfg, T* grad_current,
                  T* grad_beta, T* grad_threshold, T* grad_v0, int threads) {
  const int64_t blocks = (n + kNeuronBlock - 1) / kNeuronBlock;
#pragma omp parallel for num_threads(threads_for_work(threads, blocks, steps * n)) \
    schedule(static)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t n0 = blk * kNeuronBlock, n1 = std::min(n, (blk + 1) * kNeuronBlock);
    auto run = [&](auto surrogate) {
      backward_block_reset<T, decltype(surrogate)::value>(
          cfg.reset, grad_spikes, grad_trace, grad_v_final, current, trace, steps, n, n0, n1,
          beta, threshold, v0, cfg, grad_current, grad_beta, grad_threshold, grad_v0);
    };
    switch (cfg.surrogate) {
      case Surrogate::fast_sigmoid:
        run(std::integral_constant<Surrogate, Surrogate::fast_sigmoid>{});
        break;
      case Surrogate::atan:
        run(std::integral_constant<Surrogate, Surrogate::atan>{});
        break;
      case Surrogate::sigmoid:
        run(std::integral_constant<Surrogate, Surrogate::sigmoid>{});
        break;
      case Surrogate::triangle:
        run(std::integral_constant<Surrogate, Surrogate::triangle>{});
        break;
    }
  }
}

template bool lif_forward<float>(const float*, int64_t, int64_t, const float*, const float*,
                                 const float*, const LifConfig&, float*, float*, float*, int);
template bool lif_forward<double>(const double*, int64_t, int64_t, const double*, const double*,
                                  const double*, const LifConfig&, double*, double*, double*, int);
template void lif_backward<float>(const float*, const float*, const float*, const float*,
                                  const float*, int64_t, int64_t, const float*, const float*,
                                  const float*, const LifConfig&, float*, float*, float*, float*,
                                  int);
template void lif_backward<double>(const double*, const double*, const double*, const double*,
                                   const double*, int64_t, int64_t, const double*, const double*,
                                   const double*, const LifConfig&, double*, double*, double*,
                                   double*, int);

}  // namespace sparsespike
