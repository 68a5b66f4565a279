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

// Reverse passes over one block of neurons, time-outer so that every inner loop runs over
// contiguous neurons (vectorisable); `carry[k]` is dL/dv of the membrane state entering the
// step from the one after it (gvf at the end), and ends as dL/dv0. Surrogate and reset are
// template parameters so the inner loops have no switches.

// snnTorch convention: v_t = f(v_{t-1}, r_t), r_t = H(v_{t-1} - theta), s_t = H(v_t - theta).
template <typename T, Surrogate S, LifReset R>
void backward_block_snntorch(const T* gs, const T* gtr, const T* trace, int64_t steps, int64_t n,
                             int64_t n0, int64_t width, const T* beta, const T* threshold,
                             const T* v0, bool live_reset, T param, T* carry, T* gx, T* gb,
                             T* gth) {
  for (int64_t t = steps - 1; t >= 0; --t) {
    const T* v_t = trace + t * n + n0;
    const T* v_p = t > 0 ? trace + (t - 1) * n + n0 : v0 + n0;
    const T* g_s = gs ? gs + t * n + n0 : nullptr;
    const T* g_tr = gtr ? gtr + t * n + n0 : nullptr;
    T* g_x = gx + t * n + n0;
    for (int64_t k = 0; k < width; ++k) {
      const T b = beta[n0 + k], th = threshold[n0 + k], vp = v_p[k];
      const T sig_t = surrogate_grad(v_t[k] - th, S, param);
      const T gsk = g_s ? g_s[k] : T(0);
      const T a = (g_tr ? g_tr[k] : T(0)) + gsk * sig_t + carry[k];
      g_x[k] = a;
      const T r = heaviside(vp - th, false);
      T c, db, dt = -gsk * sig_t;
      if (R == LifReset::zero) {
        db = a * ((T(1) - r) * vp);
        c = a * (b * (T(1) - r));
      } else {
        db = a * vp;
        c = a * b;
      }
      if (R == LifReset::subtract) dt += -a * r;
      if (R != LifReset::none && live_reset) {
        const T sig_p = surrogate_grad(vp - th, S, param);
        const T dvdr = R == LifReset::subtract ? -th : -b * vp;
        dt += a * dvdr * -sig_p;
        c += a * dvdr * sig_p;
      }
      gb[n0 + k] += db;
      gth[n0 + k] += dt;
      carry[k] = c;
    }
  }
}

// SpikingJelly convention: h_t = beta v_{t-1} + c x_t, s_t = H(h_t - theta), v_t = reset(h_t, s_t).
template <typename T, Surrogate S, LifReset R>
void backward_block_spikingjelly(const T* gs, const T* gtr, const T* current, const T* trace,
                                 int64_t steps, int64_t n, int64_t n0, int64_t width,
                                 const T* beta, const T* threshold, const T* v0, bool live_reset,
                                 bool decay_input, T param, T* carry, T* gx, T* gb, T* gth) {
  for (int64_t t = steps - 1; t >= 0; --t) {
    const T* h_t = trace + t * n + n0;
    const T* h_p = t > 0 ? trace + (t - 1) * n + n0 : nullptr;
    const T* g_s = gs ? gs + t * n + n0 : nullptr;
    const T* g_tr = gtr ? gtr + t * n + n0 : nullptr;
    const T* x = decay_input ? current + t * n + n0 : nullptr;
    T* g_x = gx + t * n + n0;
    for (int64_t k = 0; k < width; ++k) {
      const T b = beta[n0 + k], th = threshold[n0 + k], h = h_t[k], a = carry[k];
      const T s = heaviside(h - th, true);
      const T sig = surrogate_grad(h - th, S, param);
      T ds = g_s ? g_s[k] : T(0);
      if (R != LifReset::none && live_reset) ds += a * (R == LifReset::subtract ? -th : -h);
      const T dh = (g_tr ? g_tr[k] : T(0)) + a * (R == LifReset::zero ? T(1) - s : T(1)) + ds * sig;
      const T v_prev = h_p ? sj_reset(h_p[k], heaviside(h_p[k] - th, true), th, R) : v0[n0 + k];
      g_x[k] = decay_input ? dh * (T(1) - b) : dh;
      gb[n0 + k] += dh * (decay_input ? v_prev - x[k] : v_prev);
      T dt = -ds * sig;
      if (R == LifReset::subtract) dt += -a * s;
      gth[n0 + k] += dt;
      carry[k] = dh * b;
    }
  }
}

template <typename T, Surrogate S, LifReset R>
void backward_block(const T* gs, const T* gtr, const T* gvf, const T* current, const T* trace,
                    int64_t steps, int64_t n, int64_t n0, int64_t n1, const T* beta,
                    const T* threshold, const T* v0, const LifConfig& cfg, T* gx, T* gb, T* gth,
                    T* gv0) {
  const int64_t width = n1 - n0;
  const T param = static_cast<T>(cfg.surrogate_param);
  std::vector<T> carry(width, T(0));
  if (gvf) std::copy(gvf + n0, gvf + n1, carry.begin());
  std::fill(gb + n0, gb + n1, T(0));
  std::fill(gth + n0, gth + n1, T(0));
  if (cfg.convention == LifConvention::snntorch)
    backward_block_snntorch<T, S, R>(gs, gtr, trace, steps, n, n0, width, beta, threshold, v0,
                                     !cfg.detach_reset, param, carry.data(), gx, gb, gth);
  else
    backward_block_spikingjelly<T, S, R>(gs, gtr, current, trace, steps, n, n0, width, beta,
                                         threshold, v0, !cfg.detach_reset, cfg.decay_input,
                                         param, carry.data(), gx, gb, gth);
  std::copy(carry.begin(), carry.end(), gv0 + n0);
}

template <typename T, Surrogate S>
void backward_block_reset(LifReset reset, const T* gs, const T* gtr, const T* gvf,
                          const T* current, const T* trace, int64_t steps, int64_t n, int64_t n0,
                          int64_t n1, const T* beta, const T* threshold, const T* v0,
                          const LifConfig& cfg, T* gx, T* gb, T* gth, T* gv0) {
  switch (reset) {
    case LifReset::subtract:
      return backward_block<T, S, LifReset::subtract>(gs, gtr, gvf, current, trace, steps, n, n0,
                                                      n1, beta, threshold, v0, cfg, gx, gb, gth, gv0);
    case LifReset::zero:
      return backward_block<T, S, LifReset::zero>(gs, gtr, gvf, current, trace, steps, n, n0, n1,
                                                  beta, threshold, v0, cfg, gx, gb, gth, gv0);
    case LifReset::none:
      return backward_block<T, S, LifReset::none>(gs, gtr, gvf, current, trace, steps, n, n0, n1,
                                                  beta, threshold, v0, cfg, gx, gb, gth, gv0);
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
