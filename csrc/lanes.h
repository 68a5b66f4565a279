// Lane-generic arithmetic: a kernel body written once over `L`, either a scalar T or its
// vector-extension type (simd.h), runs on full vectors and then on a scalar tail with the same
// IEEE operations in the same order, so both round identically (the extension is compiled
// without FMA contraction).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "simd.h"

namespace sparsespike {

template <typename L>
constexpr bool is_scalar_lane = std::is_floating_point_v<L>;

template <typename L>
struct LaneTag {
  using type = L;
};

// The element type of a lane type (itself for a scalar).
template <typename L, bool = is_scalar_lane<L>>
struct ElementOf {
  using type = L;
};

template <typename L>
struct ElementOf<L, false> {
  using type = std::remove_reference_t<decltype(std::declval<L&>()[0])>;
};

template <typename L>
using element_of = typename ElementOf<L>::type;

// The same bits seen as another type of the same size.
template <typename To, typename From>
inline std::remove_cv_t<To> bits_as(const From& from) {
  static_assert(sizeof(To) == sizeof(From));
  std::remove_cv_t<To> to;
  std::memcpy(&to, &from, sizeof(To));
  return to;
}

template <typename L, typename T>
inline L lanes_of(T x) {
  if constexpr (is_scalar_lane<L>)
    return x;
  else
    return splat<L>(x);
}

template <typename L, typename T>
inline L load_lanes(const T* p) {
  if constexpr (is_scalar_lane<L>)
    return *p;
  else
    return load_vec<L>(p);
}

template <typename L, typename T>
inline void store_lanes(T* p, const L& v) {
  if constexpr (is_scalar_lane<L>)
    *p = v;
  else
    store_vec(p, v);
}

// 1 where the comparison holds, else 0: a select between constants (compare + and-mask). A
// bool-to-float conversion would carry cvtsi2ss's false dependency (measured 2.5x slower).
template <typename L>
inline L step_gt(const L& a, const L& b) {
  if constexpr (is_scalar_lane<L>) {
    return a > b ? L(1) : L(0);
  } else {
    const auto mask = a > b;
    return bits_as<L>(mask & bits_as<decltype(mask)>(lanes_of<L>(element_of<L>(1))));
  }
}

template <typename L>
inline L step_ge(const L& a, const L& b) {
  if constexpr (is_scalar_lane<L>) {
    return a >= b ? L(1) : L(0);
  } else {
    const auto mask = a >= b;
    return bits_as<L>(mask & bits_as<decltype(mask)>(lanes_of<L>(element_of<L>(1))));
  }
}

// |a| by clearing the sign bit (also for -0.0, like std::abs).
template <typename L>
inline L abs_lanes(const L& a) {
  if constexpr (is_scalar_lane<L>) {
    return std::abs(a);
  } else {
    using M = decltype(a > a);
    const M sign = bits_as<M>(lanes_of<L>(element_of<L>(-0.0)));
    return bits_as<L>(bits_as<M>(a) & ~sign);
  }
}

// exp per lane through the scalar std::exp, so vector and tail agree bit for bit.
template <typename L>
inline L exp_lanes(const L& a) {
  if constexpr (is_scalar_lane<L>) {
    return std::exp(a);
  } else {
    L r;
    for (int i = 0; i < int(sizeof(L) / sizeof(a[0])); ++i) r[i] = std::exp(a[i]);
    return r;
  }
}

// A running sum of x - x is NaN once any x was NaN or Inf, and 0 otherwise.
template <typename L>
inline bool all_lanes_finite(const L& acc) {
  if constexpr (is_scalar_lane<L>) {
    return acc == acc;
  } else {
    for (int i = 0; i < int(sizeof(L) / sizeof(acc[0])); ++i)
      if (acc[i] != acc[i]) return false;
    return true;
  }
}

// Running sums of v - v over a block: NaN once any v was NaN or Inf.
template <typename T>
struct FiniteProbe {
  typename Vec<T>::type vec{};
  T scalar = 0;

  template <typename L>
  void add(const L& v) {
    if constexpr (is_scalar_lane<L>)
      scalar += v - v;
    else
      vec += v - v;
  }
  bool finite() const { return all_lanes_finite(scalar) && all_lanes_finite(vec); }
};

// Running maximum of max(v, 0) over a block: positive once any v was > 0 (NaN compares false
// and is left to the FiniteProbe).
template <typename T>
struct MaxProbe {
  typename Vec<T>::type vec{};
  T scalar = 0;

  template <typename L>
  void add(const L& v) {
    if constexpr (is_scalar_lane<L>)
      scalar = v > scalar ? v : scalar;
    else
      vec = v > vec ? v : vec;
  }
  bool any_positive() const {
    bool positive = scalar > T(0);
    for (int i = 0; i < Vec<T>::lanes; ++i) positive |= vec[i] > T(0);
    return positive;
  }
};

// Runs body(LaneTag<V>{}, k) over full vectors of [0, width), then body(LaneTag<T>{}, k) over
// the tail.
template <typename T, typename Body>
inline void for_lanes(int64_t width, Body&& body) {
  using V = typename Vec<T>::type;
  constexpr int64_t W = Vec<T>::lanes;
  int64_t k = 0;
  for (; k + W <= width; k += W) body(LaneTag<V>{}, k);
  for (; k < width; ++k) body(LaneTag<T>{}, k);
}

}  // namespace sparsespike
