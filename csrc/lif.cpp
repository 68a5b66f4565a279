#include "lif.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "parallel.h"

namespace sparsespike {

namespace {

constexpr int64_t kNeuronBlock = 256;

template <typename T>
inline T surrogate_grad(T u, Surrogate kind, T param) {
  switch (kind) {
    case Surrogate::fast_sigmoid: {
      const T d = T(1) + param * std::abs(u);
      return T(1) / (d * d);
    }
    case Surrogate::atan: {
      const T z = T(M_PI) * param * u / T(2);
      return (param / T(2)) / (T(1) + z * z);
    }
    case Surrogate::sigmoid: {  // s (1 - s) = e / (1 + e)^2 with e = exp(-param |u|) <= 1
      const T e = std::exp(-param * std::abs(u));
      return param * e / ((T(1) + e) * (T(1) + e));
    }
    case Surrogate::triangle:
      return param * std::max(T(0), T(1) - param * std::abs(u));
  }
  return T(0);
}

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

template <typename T>
void forward_block(const T* current, int64_t steps, int64_t n, int64_t n0, int64_t n1,
                   const T* beta, const T* threshold, const T* v0, const LifConfig& cfg,
                   T* spikes, T* trace, T* v_final, bool& nonfinite) {
  const int64_t width = n1 - n0;
  std::vector<T> v(v0 + n0, v0 + n1);
  bool bad = false;
  for (int64_t t = 0; t < steps; ++t) {
    const T* x = current + t * n + n0;
    T* s_out = spikes + t * n + n0;
    T* m_out = trace + t * n + n0;
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

// snnTorch convention, reverse pass over one block of neurons (derivation in lif_reference.py's
// recurrences: A_t = dL/dv_t, r_t = H(v_{t-1} - theta) the reset spike).
template <typename T>
void backward_block_snntorch(const T* gs, const T* gtr, const T* gvf, const T* trace,
                             int64_t steps, int64_t n, int64_t n0, int64_t n1, const T* beta,
                             const T* threshold, const T* v0, const LifConfig& cfg, T* gx, T* gb,
                             T* gth, T* gv0) {
  const T param = static_cast<T>(cfg.surrogate_param);
  const bool sub = cfg.reset == LifReset::subtract, zero = cfg.reset == LifReset::zero;
  const bool live_reset = !cfg.detach_reset && cfg.reset != LifReset::none;
  for (int64_t k = n0; k < n1; ++k) {
    const T b = beta[k], th = threshold[k];
    T a_next = T(0), dbeta = T(0), dth = T(0);
    for (int64_t t = steps - 1; t >= 0; --t) {
      const T v_t = trace[t * n + k];
      const T v_prev = t > 0 ? trace[(t - 1) * n + k] : v0[k];
      const T r_t = heaviside(v_prev - th, false);
      const T r_next = heaviside(v_t - th, false);  // the spike s_t, reset of step t + 1
      const T sig_t = surrogate_grad(v_t - th, cfg.surrogate, param);
      const T g_s = gs ? gs[t * n + k] : T(0);
      T a = (gtr ? gtr[t * n + k] : T(0)) + g_s * sig_t;
      if (t == steps - 1 && gvf) a += gvf[k];
      if (t < steps - 1) {
        a += a_next * (zero ? b * (T(1) - r_next) : b);
        if (live_reset) a += a_next * (sub ? -th : -b * v_t) * sig_t;
      }
      gx[t * n + k] = a;
      dbeta += a * (zero ? (T(1) - r_t) * v_prev : v_prev);
      dth += -g_s * sig_t;
      if (sub) dth += -a * r_t;
      if (live_reset)
        dth += a * (sub ? -th : -b * v_prev) * -surrogate_grad(v_prev - th, cfg.surrogate, param);
      a_next = a;
    }
    const T r0 = heaviside(v0[k] - th, false);
    T dv = a_next * (zero ? b * (T(1) - r0) : b);
    if (live_reset)
      dv += a_next * (sub ? -th : -b * v0[k]) * surrogate_grad(v0[k] - th, cfg.surrogate, param);
    gv0[k] = dv;
    gb[k] = dbeta;
    gth[k] = dth;
  }
}

// SpikingJelly convention: H_t = dL/dh_t (charged membrane), A_t = dL/dv_t (after reset).
template <typename T>
void backward_block_spikingjelly(const T* gs, const T* gtr, const T* gvf, const T* current,
                                 const T* trace, int64_t steps, int64_t n, int64_t n0, int64_t n1,
                                 const T* beta, const T* threshold, const T* v0,
                                 const LifConfig& cfg, T* gx, T* gb, T* gth, T* gv0) {
  const T param = static_cast<T>(cfg.surrogate_param);
  const bool sub = cfg.reset == LifReset::subtract, zero = cfg.reset == LifReset::zero;
  const bool live_reset = !cfg.detach_reset && cfg.reset != LifReset::none;
  for (int64_t k = n0; k < n1; ++k) {
    const T b = beta[k], th = threshold[k];
    T a = gvf ? gvf[k] : T(0), dbeta = T(0), dth = T(0);
    for (int64_t t = steps - 1; t >= 0; --t) {
      const T h = trace[t * n + k];
      const T s = heaviside(h - th, true);
      const T sig = surrogate_grad(h - th, cfg.surrogate, param);
      T ds = gs ? gs[t * n + k] : T(0);
      if (live_reset) ds += a * (sub ? -th : -h);
      const T dh = (gtr ? gtr[t * n + k] : T(0)) + a * (zero ? T(1) - s : T(1)) + ds * sig;
      T v_prev;
      if (t > 0) {
        const T h_prev = trace[(t - 1) * n + k];
        v_prev = sj_reset(h_prev, heaviside(h_prev - th, true), th, cfg.reset);
      } else {
        v_prev = v0[k];
      }
      gx[t * n + k] = cfg.decay_input ? dh * (T(1) - b) : dh;
      dbeta += dh * (cfg.decay_input ? v_prev - current[t * n + k] : v_prev);
      dth += -ds * sig;
      if (sub) dth += -a * s;
      a = dh * b;
    }
    gv0[k] = a;
    gb[k] = dbeta;
    gth[k] = dth;
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
    if (cfg.convention == LifConvention::snntorch)
      backward_block_snntorch(grad_spikes, grad_trace, grad_v_final, trace, steps, n, n0, n1, beta,
                              threshold, v0, cfg, grad_current, grad_beta, grad_threshold,
                              grad_v0);
    else
      backward_block_spikingjelly(grad_spikes, grad_trace, grad_v_final, current, trace, steps, n,
                                  n0, n1, beta, threshold, v0, cfg, grad_current, grad_beta,
                                  grad_threshold, grad_v0);
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
