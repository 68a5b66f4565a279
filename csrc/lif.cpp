#include "lif.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <type_traits>
#include <vector>

#include "lanes.h"
#include "lif_step.h"
#include "parallel.h"

namespace sparsespike {

namespace {

constexpr int64_t kNeuronBlock = 256;

// d spike / d u for u = membrane - threshold (formulas in lif_reference.surrogate_grad); L is a
// scalar or a vector of lanes (lanes.h).
template <Surrogate S, typename L, typename T>
inline L surrogate_shape(const L& u, T param) {
  if constexpr (S == Surrogate::fast_sigmoid) {
    const L d = T(1) + param * abs_lanes(u);
    return T(1) / (d * d);
  } else if constexpr (S == Surrogate::atan) {
    const L z = T(M_PI) * param * u / T(2);
    return (param / T(2)) / (T(1) + z * z);
  } else if constexpr (S == Surrogate::sigmoid) {  // s (1 - s) = e / (1 + e)^2, e = exp(-param|u|)
    const L e = exp_lanes<L>(-param * abs_lanes(u));
    return param * e / ((T(1) + e) * (T(1) + e));
  } else {
    const L tri = T(1) - param * abs_lanes(u);
    return param * (tri * step_gt(tri, lanes_of<L>(T(0))));
  }
}

// ... times 1 where |u| < band, 0 outside (band = inf: no band; the product by 1 is exact)
template <Surrogate S, typename L, typename T>
inline L surrogate_grad(const L& u, T param, T band) {
  return surrogate_shape<S>(u, param) * step_gt(lanes_of<L>(band) - abs_lanes(u), lanes_of<L>(T(0)));
}

// Rows of a [steps, ...] array restricted to one block of neurons: row t starts at base + t *
// stride. A stride of 0 repeats one row: a gradient broadcast over time, or a sink row for an
// output nobody wants.
template <typename T>
struct Rows {
  T* base;
  int64_t stride;
  T* operator[](int64_t t) const { return base + t * stride; }
};

// The band-active set of one step: band[k] = 1 where |m - threshold| < band_width, else 0 (the
// neuron-steps whose surrogate has compact support and is nonzero), one byte per neuron.
template <typename L, typename T>
inline void store_band(uint8_t* band, const L& m, const L& th, T band_width) {
  const L ones = step_gt(lanes_of<L>(band_width) - abs_lanes(m - th), lanes_of<L>(T(0)));
  if constexpr (is_scalar_lane<L>) {
    *band = ones != T(0);
  } else {
    for (size_t j = 0; j < sizeof(L) / sizeof(T); ++j) band[j] = ones[j] != T(0);
  }
}

// Time-outer over one block of `width` neurons; the inner loop runs over contiguous neurons in
// vectors (lanes.h). v holds the membrane state and ends as the final one; band (rows of
// band_stride bytes, or null) gets each step's band-active set. Returns false if x holds NaN or
// Inf.
template <typename T, LifConvention C, LifReset R, bool DECAY_INPUT>
bool forward_rows(Rows<const T> x, int64_t steps, int64_t width, const T* beta,
                  const T* threshold, const T* v0, Rows<T> spikes, Rows<T> trace, T* v,
                  uint8_t* band, int64_t band_stride, T band_width) {
  std::copy(v0, v0 + width, v);
  FiniteProbe<T> probe;
  for (int64_t t = 0; t < steps; ++t) {
    const T* x_t = x[t];
    T* s_out = spikes[t];
    T* m_out = trace[t];
    for_lanes<T>(width, [&](auto lane, int64_t k) {
      using L = typename decltype(lane)::type;
      const L b = load_lanes<L>(beta + k), th = load_lanes<L>(threshold + k);
      const L xk = load_lanes<L>(x_t + k);
      probe.add(xk);
      L vk = load_lanes<L>(v + k);
      if constexpr (C == LifConvention::snntorch) {
        vk = snntorch_step<R>(vk, xk, b, th);
        store_lanes(s_out + k, snntorch_spike(vk, th));
        store_lanes(m_out + k, vk);
        if (band) store_band(band + t * band_stride + k, vk, th, band_width);
      } else {
        const L h = spikingjelly_charge<DECAY_INPUT>(vk, xk, b);
        const L s = spikingjelly_spike(h, th);
        store_lanes(s_out + k, s);
        store_lanes(m_out + k, h);
        if (band) store_band(band + t * band_stride + k, h, th, band_width);
        vk = spikingjelly_reset<R>(h, s, th);
      }
      store_lanes(v + k, vk);
    });
  }
  return probe.finite();
}

// forward_rows for a runtime configuration.
template <typename T>
bool forward_rows_any(const LifConfig& cfg, Rows<const T> x, int64_t steps, int64_t width,
                      const T* beta, const T* threshold, const T* v0, Rows<T> spikes,
                      Rows<T> trace, T* v, uint8_t* band = nullptr, int64_t band_stride = 0,
                      T band_width = T(0)) {
  auto run = [&](auto convention, auto reset, auto decay) {
    return forward_rows<T, decltype(convention)::value, decltype(reset)::value,
                        decltype(decay)::value>(x, steps, width, beta, threshold, v0, spikes,
                                                trace, v, band, band_stride, band_width);
  };
  using Sn = std::integral_constant<LifConvention, LifConvention::snntorch>;
  using Sj = std::integral_constant<LifConvention, LifConvention::spikingjelly>;
  using Sub = std::integral_constant<LifReset, LifReset::subtract>;
  using Zero = std::integral_constant<LifReset, LifReset::zero>;
  using None = std::integral_constant<LifReset, LifReset::none>;
  using Yes = std::true_type;
  using No = std::false_type;
  if (cfg.convention == LifConvention::snntorch) {
    switch (cfg.reset) {
      case LifReset::subtract: return run(Sn{}, Sub{}, No{});
      case LifReset::zero: return run(Sn{}, Zero{}, No{});
      case LifReset::none: return run(Sn{}, None{}, No{});
    }
  }
  const bool d = cfg.decay_input;
  switch (cfg.reset) {
    case LifReset::subtract: return d ? run(Sj{}, Sub{}, Yes{}) : run(Sj{}, Sub{}, No{});
    case LifReset::zero: return d ? run(Sj{}, Zero{}, Yes{}) : run(Sj{}, Zero{}, No{});
    case LifReset::none: return d ? run(Sj{}, None{}, Yes{}) : run(Sj{}, None{}, No{});
  }
  return true;
}

// Reverse passes over one block of neurons, time-outer so that every inner loop runs over
// contiguous neurons in vectors; `carry` is dL/dv of the membrane state entering the step from
// the one after it (gvf at the end), and ends as dL/dv0. Surrogate and reset are template
// parameters so the inner loops have no switches. All pointers are offset to the block's first
// neuron.

// snnTorch convention: v_t = f(v_{t-1}, r_t), r_t = H(v_{t-1} - theta), s_t = H(v_t - theta).
template <typename T, Surrogate S, LifReset R, bool LIVE>
void backward_rows_snntorch(Rows<const T> gs, Rows<const T> gtr, Rows<const T> trace,
                            int64_t steps, int64_t width, const T* beta, const T* threshold,
                            const T* v0, T param, T band, T* carry, Rows<T> gx, T* gb, T* gth) {
  for (int64_t t = steps - 1; t >= 0; --t) {
    const T* v_t = trace[t];
    const T* v_p = t > 0 ? trace[t - 1] : v0;
    const T* g_s = gs[t];
    const T* g_tr = gtr[t];
    T* g_x = gx[t];
    for_lanes<T>(width, [&](auto lane, int64_t k) {
      using L = typename decltype(lane)::type;
      const L b = load_lanes<L>(beta + k), th = load_lanes<L>(threshold + k);
      const L vp = load_lanes<L>(v_p + k), gsk = load_lanes<L>(g_s + k);
      const L sig_t = surrogate_grad<S>(load_lanes<L>(v_t + k) - th, param, band);
      const L a = load_lanes<L>(g_tr + k) + gsk * sig_t + load_lanes<L>(carry + k);
      store_lanes(g_x + k, a);
      const L r = snntorch_spike(vp, th);  // this step's reset: the spike of the membrane before it
      L c, db, dt = -gsk * sig_t;
      if constexpr (R == LifReset::zero) {
        db = a * ((1 - r) * vp);
        c = a * (b * (1 - r));
      } else {
        db = a * vp;
        c = a * b;
      }
      if constexpr (R == LifReset::subtract) dt += -a * r;
      if constexpr (LIVE && R != LifReset::none) {
        const L sig_p = surrogate_grad<S>(vp - th, param, band);
        const L dvdr = R == LifReset::subtract ? -th : -b * vp;
        dt += a * dvdr * -sig_p;
        c += a * dvdr * sig_p;
      }
      store_lanes(gb + k, load_lanes<L>(gb + k) + db);
      store_lanes(gth + k, load_lanes<L>(gth + k) + dt);
      store_lanes(carry + k, c);
    });
  }
}

// SpikingJelly convention: h_t = beta v_{t-1} + c x_t, s_t = H(h_t - theta), v_t = reset(h_t, s_t).
// v_prev is a scratch row: the membrane after reset of the step before (v0 at the first step).
// x is read only with decay_input (h holds (1 - beta) x, so dbeta reads it); else a zero row.
template <typename T, Surrogate S, LifReset R, bool LIVE>
void backward_rows_spikingjelly(Rows<const T> gs, Rows<const T> gtr, Rows<const T> trace,
                                Rows<const T> x, int64_t steps, int64_t width, const T* beta,
                                const T* threshold, const T* v0, bool decay_input, T param, T band,
                                T* carry, T* v_prev, Rows<T> gx, T* gb, T* gth) {
  for (int64_t t = steps - 1; t >= 0; --t) {
    const T* h_t = trace[t];
    if (t > 0) {
      const T* h_p = trace[t - 1];
      for_lanes<T>(width, [&](auto lane, int64_t k) {
        using L = typename decltype(lane)::type;
        const L h = load_lanes<L>(h_p + k), th = load_lanes<L>(threshold + k);
        store_lanes(v_prev + k, spikingjelly_reset<R>(h, spikingjelly_spike(h, th), th));
      });
    } else {
      std::copy(v0, v0 + width, v_prev);
    }
    const T* g_s = gs[t];
    const T* g_tr = gtr[t];
    const T* x_t = x[t];
    T* g_x = gx[t];
    for_lanes<T>(width, [&](auto lane, int64_t k) {
      using L = typename decltype(lane)::type;
      const L b = load_lanes<L>(beta + k), th = load_lanes<L>(threshold + k);
      const L h = load_lanes<L>(h_t + k), a = load_lanes<L>(carry + k);
      const L s = spikingjelly_spike(h, th);
      const L sig = surrogate_grad<S>(h - th, param, band);
      L ds = load_lanes<L>(g_s + k);
      if constexpr (LIVE && R != LifReset::none) ds += a * (R == LifReset::subtract ? -th : -h);
      L dh;
      if constexpr (R == LifReset::zero)
        dh = load_lanes<L>(g_tr + k) + a * (1 - s) + ds * sig;
      else
        dh = load_lanes<L>(g_tr + k) + a * T(1) + ds * sig;
      store_lanes(g_x + k, decay_input ? dh * (1 - b) : dh);
      store_lanes(gb + k, load_lanes<L>(gb + k) + dh * (load_lanes<L>(v_prev + k) - load_lanes<L>(x_t + k)));
      L dt = -ds * sig;
      if constexpr (R == LifReset::subtract) dt += -a * s;
      store_lanes(gth + k, load_lanes<L>(gth + k) + dt);
      store_lanes(carry + k, dh * b);
    });
  }
}

// Everything one backward call shares across its neuron blocks.
template <typename T>
struct BackwardArgs {
  const T* gs;
  int64_t gs_step;
  const T* gtr;
  int64_t gtr_step;
  const T* gvf;
  const T* current;
  const T* trace;  // null: recomputed per block from current
  int64_t steps, n;
  const T *beta, *threshold, *v0;
  const LifConfig* cfg;
  T *gx, *gb, *gth, *gv0;
};

// Neurons per block. A recomputed trace lives in a per-thread scratch of steps x width values
// that should stay in the core's L2 cache between the forward recompute and the reverse pass.
constexpr int64_t kRecomputeScratchBytes = 192 * 1024;

template <typename T>
int64_t block_width(const BackwardArgs<T>& a) {
  if (a.trace || a.steps < 1) return kNeuronBlock;
  const int64_t fit = kRecomputeScratchBytes / (a.steps * int64_t(sizeof(T)));
  return std::clamp<int64_t>(fit / 16 * 16, 16, kNeuronBlock);
}

// Returns false if the recompute met a non-finite current.
template <typename T, Surrogate S, LifReset R, bool LIVE>
bool backward_block(const BackwardArgs<T>& a, int64_t n0, int64_t n1, std::vector<T>& scratch) {
  const int64_t width = n1 - n0, n = a.n, steps = a.steps;
  const LifConfig& cfg = *a.cfg;
  const T param = static_cast<T>(cfg.surrogate_param);
  const T band = static_cast<T>(cfg.grad_band);
  // carry | zero row (a missing gradient or input) | v_prev | sink row | recomputed trace
  const int64_t rows_before_trace = 4 * width;
  // the recompute overwrites its rows, so only the first rows need zeros
  scratch.resize(rows_before_trace + (a.trace ? 0 : steps * width));
  std::fill(scratch.begin(), scratch.begin() + rows_before_trace, T(0));
  T* carry = scratch.data();
  const T* zeros = carry + width;
  T* v_prev = carry + 2 * width;
  T* sink = carry + 3 * width;
  T* recomputed = carry + rows_before_trace;
  bool finite = true;
  if (!a.trace) {
    // the same forward as lif_forward, so the recomputed trace equals the one it would have saved
    finite = forward_rows_any<T>(cfg, {a.current + n0, n}, steps, width, a.beta + n0,
                                 a.threshold + n0, a.v0 + n0, {sink, 0}, {recomputed, width},
                                 v_prev);
  }
  Rows<const T> trace = a.trace ? Rows<const T>{a.trace + n0, n} : Rows<const T>{recomputed, width};
  if (a.gvf) std::copy(a.gvf + n0, a.gvf + n1, carry);
  Rows<const T> gs = a.gs ? Rows<const T>{a.gs + n0, a.gs_step} : Rows<const T>{zeros, 0};
  Rows<const T> gtr = a.gtr ? Rows<const T>{a.gtr + n0, a.gtr_step} : Rows<const T>{zeros, 0};
  Rows<T> gx{a.gx + n0, n};
  T* gb = a.gb + n0;
  T* gth = a.gth + n0;
  std::fill(gb, gb + width, T(0));
  std::fill(gth, gth + width, T(0));
  const T* beta = a.beta + n0;
  const T* threshold = a.threshold + n0;
  const T* v0 = a.v0 + n0;
  if (cfg.convention == LifConvention::snntorch) {
    backward_rows_snntorch<T, S, R, LIVE>(gs, gtr, trace, steps, width, beta, threshold, v0,
                                          param, band, carry, gx, gb, gth);
  } else {
    const bool with_x = cfg.decay_input;
    Rows<const T> x = with_x ? Rows<const T>{a.current + n0, n} : Rows<const T>{zeros, 0};
    backward_rows_spikingjelly<T, S, R, LIVE>(gs, gtr, trace, x, steps, width, beta, threshold,
                                              v0, with_x, param, band, carry, v_prev, gx, gb, gth);
  }
  std::copy(carry, carry + width, a.gv0 + n0);
  return finite;
}

template <typename T, Surrogate S, LifReset R>
bool backward_block_live(const BackwardArgs<T>& a, int64_t n0, int64_t n1, std::vector<T>& scratch) {
  return a.cfg->detach_reset ? backward_block<T, S, R, false>(a, n0, n1, scratch)
                              : backward_block<T, S, R, true>(a, n0, n1, scratch);
}

template <typename T, Surrogate S>
bool backward_block_reset(const BackwardArgs<T>& a, int64_t n0, int64_t n1, std::vector<T>& scratch) {
  switch (a.cfg->reset) {
    case LifReset::subtract:
      return backward_block_live<T, S, LifReset::subtract>(a, n0, n1, scratch);
    case LifReset::zero:
      return backward_block_live<T, S, LifReset::zero>(a, n0, n1, scratch);
    case LifReset::none:
      return backward_block_live<T, S, LifReset::none>(a, n0, n1, scratch);
  }
  return true;
}

template <typename T>
bool backward_block_any(const BackwardArgs<T>& a, int64_t n0, int64_t n1, std::vector<T>& scratch) {
  switch (a.cfg->surrogate) {
    case Surrogate::fast_sigmoid:
      return backward_block_reset<T, Surrogate::fast_sigmoid>(a, n0, n1, scratch);
    case Surrogate::atan:
      return backward_block_reset<T, Surrogate::atan>(a, n0, n1, scratch);
    case Surrogate::sigmoid:
      return backward_block_reset<T, Surrogate::sigmoid>(a, n0, n1, scratch);
    case Surrogate::triangle:
      return backward_block_reset<T, Surrogate::triangle>(a, n0, n1, scratch);
  }
  return true;
}

}  // namespace

template <typename T>
bool lif_forward(const T* current, int64_t steps, int64_t n, const T* beta, const T* threshold,
                 const T* v0, const LifConfig& cfg, T* spikes, T* trace, T* v_final,
                 uint8_t* band, double band_width, int threads) {
  const int64_t blocks = (n + kNeuronBlock - 1) / kNeuronBlock;
  std::atomic<bool> any_bad{false};
#pragma omp parallel num_threads(threads_for_work(threads, blocks, steps * n))
  {
    std::vector<T> sink(trace ? 0 : kNeuronBlock);  // the trace row nobody wants (inference)
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t n0 = blk * kNeuronBlock, n1 = std::min(n, n0 + kNeuronBlock);
      Rows<T> trace_rows = trace ? Rows<T>{trace + n0, n} : Rows<T>{sink.data(), 0};
      if (!forward_rows_any<T>(cfg, {current + n0, n}, steps, n1 - n0, beta + n0, threshold + n0,
                               v0 + n0, {spikes + n0, n}, trace_rows, v_final + n0,
                               band ? band + n0 : nullptr, n, static_cast<T>(band_width)))
        any_bad = true;
    }
  }
  return !any_bad.load();
}

template <typename T>
bool lif_backward(const T* grad_spikes, int64_t grad_spikes_step, const T* grad_trace,
                  int64_t grad_trace_step, const T* grad_v_final, const T* current,
                  const T* trace, int64_t steps, int64_t n, const T* beta, const T* threshold,
                  const T* v0, const LifConfig& cfg, T* grad_current, T* grad_beta,
                  T* grad_threshold, T* grad_v0, int threads) {
  const BackwardArgs<T> args{grad_spikes, grad_spikes_step, grad_trace, grad_trace_step,
                             grad_v_final, current, trace, steps, n, beta, threshold, v0, &cfg,
                             grad_current, grad_beta, grad_threshold, grad_v0};
  const int64_t width = block_width(args);
  const int64_t blocks = (n + width - 1) / width;
  std::atomic<bool> any_bad{false};
#pragma omp parallel num_threads(threads_for_work(threads, blocks, steps * n))
  {
    std::vector<T> scratch;
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < blocks; ++blk)
      if (!backward_block_any(args, blk * width, std::min(n, (blk + 1) * width), scratch))
        any_bad = true;
  }
  return !any_bad.load();
}

template bool lif_forward<float>(const float*, int64_t, int64_t, const float*, const float*,
                                 const float*, const LifConfig&, float*, float*, float*, uint8_t*,
                                 double, int);
template bool lif_forward<double>(const double*, int64_t, int64_t, const double*, const double*,
                                  const double*, const LifConfig&, double*, double*, double*,
                                  uint8_t*, double, int);
template bool lif_backward<float>(const float*, int64_t, const float*, int64_t, const float*,
                                  const float*, const float*, int64_t, int64_t, const float*,
                                  const float*, const float*, const LifConfig&, float*, float*,
                                  float*, float*, int);
template bool lif_backward<double>(const double*, int64_t, const double*, int64_t, const double*,
                                   const double*, const double*, int64_t, int64_t, const double*,
                                   const double*, const double*, const LifConfig&, double*,
                                   double*, double*, double*, int);

}  // namespace sparsespike
