// One leaky integrate-and-fire membrane step, written once for every kernel that runs LIF
// neurons (lif.cpp's forward, its recompute and backward; spiking_hopfield.cpp's recall). L is a
// scalar or a vector of lanes (lanes.h). The expressions are those of
// sparsespike/ops/lif_reference.py, in its order; callers are compiled without FMA contraction,
// so every kernel rounds like the reference and spikes equal its spikes bit for bit.
#pragma once

#include "lanes.h"
#include "lif.h"

namespace sparsespike {

// snnTorch convention: the reset comes from the previous spike r = H(v - theta), then leak and
// input: v' = beta v + x - theta r | beta (1 - r) v + x | beta v + x (subtract | zero | none).
template <LifReset R, typename L>
inline L snntorch_step(const L& v, const L& x, const L& beta, const L& threshold) {
  const L r = step_gt(v - threshold, lanes_of<L>(element_of<L>(0)));
  if constexpr (R == LifReset::subtract)
    return beta * v + x - threshold * r;
  else if constexpr (R == LifReset::zero)
    return beta * (1 - r) * v + x;
  else
    return beta * v + x;
}

// snnTorch's spike of a membrane v: H(v - theta), strictly above the threshold.
template <typename L>
inline L snntorch_spike(const L& v, const L& threshold) {
  return step_gt(v - threshold, lanes_of<L>(element_of<L>(0)));
}

// SpikingJelly convention, charge: h = beta v + (1 - beta) x with decay_input, else beta v + x.
template <bool DECAY_INPUT, typename L>
inline L spikingjelly_charge(const L& v, const L& x, const L& beta) {
  if constexpr (DECAY_INPUT)
    return beta * v + (1 - beta) * x;
  else
    return beta * v + x;
}

// SpikingJelly's spike of a charged membrane h: H(h - theta), at or above the threshold.
template <typename L>
inline L spikingjelly_spike(const L& h, const L& threshold) {
  return step_ge(h - threshold, lanes_of<L>(element_of<L>(0)));
}

// SpikingJelly's reset of a charged membrane h given its spike s: the next step's v.
template <LifReset R, typename L>
inline L spikingjelly_reset(const L& h, const L& s, const L& threshold) {
  if constexpr (R == LifReset::subtract)
    return h - threshold * s;
  else if constexpr (R == LifReset::zero)
    return (1 - s) * h;
  else
    return h;
}

}  // namespace sparsespike
