// Event-driven conv2d, in two phases like spike_linear:
//
// 1. Events. Every image's nonzero inputs are compacted channel plane by channel plane
//    (compact.h) into per-image event lists, grouped by input pixel (forward: a counting sort,
//    channels ascending within a pixel) or by channel (weight gradient: the compaction order).
//    A non-finite spike anywhere stops the call here, before any output is written. Each thread
//    fills its images' lists contiguously from the start of its own slice of the buffers, so only
//    the pages the events occupy are ever touched.
// 2. Forward: a scatter per output row, accumulated in an [w_out, cpad] scratch (output channels
//    contiguous, padded to whole vectors; L1-sized for the study's layers). For each kernel row ky whose input row lies inside the image, every
//    active input pixel of that row adds, for each kernel column kx that carries it inside the
//    output, the sum over its events (c, value) of value * weight[:, c, ky, kx] (one contiguous
//    row of the packed weight [c_in, kh, kw, c_out]); the events of one pixel are summed in
//    registers and the scratch row is read and written once per (pixel, tap) (adding each event
//    to the scratch separately measured ~1.5x slower at 3% density: twice the stores, and each
//    event waits for the previous one's). Border pixels reach fewer outputs; silent inputs cost
//    nothing. The finished row is transposed into NCHW. Images are independent (one per thread at
//    a time): no races, and every output sums its terms in a fixed order (ky, ix, c ascending),
//    whatever the thread count. (A gather per output pixel, all taps in registers, measured ~2x
//    slower: its short data-dependent loops per tap mispredict.)
// 3. Weight gradient: each thread owns a slice of the output channels, i.e. columns of
//    gwt[c_in * kh * kw, c_out]; for every image it transposes its slice of grad_out to
//    [h_out * w_out + 1, slice] (NHWC, plus a zero row) and, per input channel c and kernel tap,
//    sums value * grad_out[n, :, oy, ox] over c's events in registers (an event the tap carries
//    outside the output reads the zero row: no branches), then adds that into gwt's row once.
//    No atomics; sums over images ascending, deterministic.
// 4. Masked input gradient: the mask (the band-active inputs) is compacted like the forward's
//    spikes, grouped by pixel. Per image, grad_out is transposed to NHWC [h_out * w_out, cpad]
//    (padding lanes zero); every listed (c, iy, ix) gets the sum over the taps that carry it
//    inside the output of grad_out[n, :, oy, ox] . weight[:, c, ky, kx] (two rows of the packed
//    weight and the NHWC grad: contiguous). A pixel's channels go four at a time, so each grad
//    vector is loaded once for four dot products. Images are independent; each sum runs in a
//    fixed order (taps, then vector chunks, then lanes): deterministic.
#include "spike_conv2d.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>
#include <vector>

#include "compact.h"
#include "parallel.h"
#include "simd.h"
#include "transpose.h"

namespace sparsespike {

int64_t conv_padded_width(int64_t c_out, int64_t itemsize) {
  const int64_t lanes = 32 / itemsize;
  return (c_out + lanes - 1) / lanes * lanes;
}

namespace {

// For every position i along one input axis: the output position that kernel tap k carries it
// to, or -1 (out[i * taps + k]); and the valid taps in order with their output positions
// (k[i * taps + t], o[i * taps + t] for t < count[i]).
struct AxisTaps {
  int64_t taps;
  std::vector<int32_t> out, count, k, o;
  AxisTaps(int64_t n_in, int64_t taps_, int64_t stride, int64_t pad, int64_t dil, int64_t n_out)
      : taps(taps_), out(n_in * taps_, -1), count(n_in, 0), k(n_in * taps_), o(n_in * taps_) {
    for (int64_t i = 0; i < n_in; ++i)
      for (int64_t kk = 0; kk < taps; ++kk) {
        const int64_t num = i + pad - kk * dil;
        if (num >= 0 && num % stride == 0 && num / stride < n_out) {
          out[i * taps + kk] = static_cast<int32_t>(num / stride);
          k[i * taps + count[i]] = static_cast<int32_t>(kk);
          o[i * taps + count[i]] = static_cast<int32_t>(num / stride);
          ++count[i];
        }
      }
  }
};

// (event, kernel tap) pairs landing inside the output, from the events per pixel.
struct Reach {
  AxisTaps y, x;
  explicit Reach(const ConvShape& s)
      : y(s.h, s.kh, s.sh, s.ph, s.dh, s.h_out), x(s.w, s.kw, s.sw, s.pw, s.dw, s.w_out) {}
  int64_t weigh(const int32_t* per_pixel, int64_t h, int64_t w) const {
    int64_t total = 0;
    for (int64_t iy = 0; iy < h; ++iy) {
      int64_t row = 0;
      for (int64_t ix = 0; ix < w; ++ix) row += static_cast<int64_t>(per_pixel[iy * w + ix]) * x.count[ix];
      total += row * y.count[iy];
    }
    return total;
  }
};

// Events of every image: image n's are at base[n] + [beg[n][g], beg[n][g + 1]) for group g, a
// pixel p = iy * w + ix (by_pixel; idx holds channels) or a channel c (idx holds pixels). The
// buffers have room for every input active.
template <typename T>
struct ImageEvents {
  bool by_pixel = true;
  int64_t groups = 0, per_image = 0;
  std::unique_ptr<int32_t[]> idx;
  std::unique_ptr<T[]> val;
  std::unique_ptr<int32_t[]> beg;           // [n][groups + 1]
  std::unique_ptr<int64_t[]> base, count;   // per image

  bool allocate(const ConvShape& s, bool by_pixel_) {
    by_pixel = by_pixel_;
    groups = by_pixel ? s.h * s.w : s.c_in;
    per_image = s.c_in * s.h * s.w;
    idx.reset(new (std::nothrow) int32_t[s.n * per_image]);
    val.reset(new (std::nothrow) T[s.n * per_image]);
    beg.reset(new (std::nothrow) int32_t[s.n * (groups + 1)]);
    base.reset(new (std::nothrow) int64_t[s.n]);
    count.reset(new (std::nothrow) int64_t[s.n]);
    return idx && val && beg && base && count;
  }

  const int32_t* group_begin(int64_t n) const { return beg.get() + n * (groups + 1); }
  const int32_t* index(int64_t n) const { return idx.get() + base[n]; }
  const T* values(int64_t n) const { return val.get() + base[n]; }
};

// Scratch of one thread for the compaction.
template <typename T>
struct CompactScratch {
  std::unique_ptr<int32_t[]> idx, per_pixel, cursor, plane_end;
  std::unique_ptr<T[]> val;
  bool allocate(const ConvShape& s, bool by_pixel) {
    per_pixel.reset(new (std::nothrow) int32_t[s.h * s.w]);
    if (!by_pixel) return static_cast<bool>(per_pixel);
    idx.reset(new (std::nothrow) int32_t[s.c_in * s.h * s.w]);
    val.reset(new (std::nothrow) T[s.c_in * s.h * s.w]);
    cursor.reset(new (std::nothrow) int32_t[s.h * s.w]);
    plane_end.reset(new (std::nothrow) int32_t[s.c_in]);
    return idx && val && per_pixel && cursor && plane_end;
  }
};

// Phase 1 for image n, whose events go to ev at `base`. Returns the image's reach; flags
// non-finite spikes in `bad`.
template <typename S, typename T>
int64_t compact_image(const S* image, const ConvShape& s, int64_t n, int64_t base, const Reach& reach,
                      ImageEvents<T>& ev, CompactScratch<T>& tmp, bool& bad) {
  const int64_t hw = s.h * s.w;
  int32_t* beg = ev.beg.get() + n * (ev.groups + 1);
  int32_t* idx = ev.idx.get() + base;
  T* val = ev.val.get() + base;
  int32_t* per_pixel = tmp.per_pixel.get();
  std::fill(per_pixel, per_pixel + hw, 0);
  int64_t m = 0;
  if (!ev.by_pixel) {
    beg[0] = 0;
    for (int64_t c = 0; c < s.c_in; ++c) {
      m += compact_row(image + c * hw, hw, idx + m, val + m, bad);
      beg[c + 1] = static_cast<int32_t>(m);
    }
    for (int64_t j = 0; j < m; ++j) ++per_pixel[idx[j]];
  } else {
    for (int64_t c = 0; c < s.c_in; ++c) {
      m += compact_row(image + c * hw, hw, tmp.idx.get() + m, tmp.val.get() + m, bad);
      tmp.plane_end[c] = static_cast<int32_t>(m);
    }
    for (int64_t j = 0; j < m; ++j) ++per_pixel[tmp.idx[j]];
    // counting sort by pixel (stable: channels stay ascending within a pixel)
    beg[0] = 0;
    for (int64_t p = 0; p < hw; ++p) beg[p + 1] = beg[p] + per_pixel[p];
    int32_t* cursor = tmp.cursor.get();
    std::memcpy(cursor, beg, hw * sizeof(int32_t));
    int64_t j = 0;
    for (int64_t c = 0; c < s.c_in; ++c)
      for (; j < tmp.plane_end[c]; ++j) {
        const int32_t slot = cursor[tmp.idx[j]]++;
        idx[slot] = static_cast<int32_t>(c);
        val[slot] = tmp.val[j];
      }
  }
  ev.base[n] = base;
  ev.count[n] = m;
  return reach.weigh(per_pixel, s.h, s.w);
}

// Phase 1 over all images, inside a parallel region (images split by thread_range); every
// thread must call it, and a barrier must follow.
template <typename S, typename T>
void compact_images(const S* spikes, const ConvShape& s, const Reach& reach, ImageEvents<T>& ev,
                    std::atomic<int64_t>& nnz, std::atomic<int64_t>& total_reach,
                    std::atomic<bool>& any_bad, std::atomic<bool>& oom) {
  const Range rr = thread_range(s.n);
  if (rr.end <= rr.begin) return;
  CompactScratch<T> tmp;
  if (!tmp.allocate(s, ev.by_pixel)) {
    oom = true;
    return;
  }
  bool bad = false;
  int64_t my_reach = 0, base = rr.begin * ev.per_image;
  for (int64_t n = rr.begin; n < rr.end; ++n) {
    my_reach += compact_image(spikes + n * ev.per_image, s, n, base, reach, ev, tmp, bad);
    base += ev.count[n];
  }
  nnz += base - rr.begin * ev.per_image;
  total_reach += my_reach;
  if (bad) any_bad = true;
}

// Calls f(std::integral_constant<int, NV>) with NV = nv for the common widths in vectors (up to
// 16: 128 floats, 64 doubles), else NV = 0 (width known at run time only).
template <typename F>
inline void with_vectors(int64_t nv, F&& f) {
  switch (nv) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 3: return f(std::integral_constant<int, 3>{});
    case 4: return f(std::integral_constant<int, 4>{});
    case 6: return f(std::integral_constant<int, 6>{});
    case 8: return f(std::integral_constant<int, 8>{});
    case 12: return f(std::integral_constant<int, 12>{});
    case 16: return f(std::integral_constant<int, 16>{});
    default: return f(std::integral_constant<int, 0>{});
  }
}

// Register blocks of up to 8 vectors (8 accumulators + a broadcast + a load fit AVX2's 16).
constexpr int kBlockVectors = 8;

// One block of G vectors (G = 0: `g` at run time, <= kBlockVectors) at offset `off`:
// a[off:] += sum_j val[j] * rows[j][off:], j < E (E = 0: `e` at run time), the sum in registers.
template <typename T, int G, int E>
inline void accumulate_block(T* a, const T* const* rows, const T* val, int e, int64_t off, int g) {
  using V = typename Vec<T>::type;
  constexpr int L = Vec<T>::lanes;
  constexpr int GB = G > 0 ? G : kBlockVectors;
  const int gn = G > 0 ? G : g;
  const int en = E > 0 ? E : e;
  V acc[GB] = {};  // lanes past gn stay unused
#pragma GCC unroll 8
  for (int k = 0; k < GB; ++k)
    if (k < gn) acc[k] = load_vec<V>(a + off + k * L);
  for (int j = 0; j < en; ++j) {
    const V v = splat<V>(val[j]);
    const T* row = rows[j] + off;
#pragma GCC unroll 8
    for (int k = 0; k < GB; ++k)
      if (k < gn) acc[k] = fmadd(v, load_vec<V>(row + k * L), acc[k]);
  }
#pragma GCC unroll 8
  for (int k = 0; k < GB; ++k)
    if (k < gn) store_vec(a + off + k * L, acc[k]);
}

// a[0:nv vectors] += sum_j val[j] * rows[j][0:nv vectors], block by block.
template <typename T, int NV, int E>
inline void accumulate_rows(T* a, const T* const* rows, const T* val, int e, int64_t nv) {
  constexpr int L = Vec<T>::lanes;
  if constexpr (NV > 0 && NV <= kBlockVectors) {
    accumulate_block<T, NV, E>(a, rows, val, e, 0, NV);
  } else if constexpr (NV > kBlockVectors) {
    accumulate_block<T, kBlockVectors, E>(a, rows, val, e, 0, kBlockVectors);
    accumulate_block<T, NV - kBlockVectors, E>(a, rows, val, e, kBlockVectors * L, NV - kBlockVectors);
  } else {
    for (int64_t k0 = 0; k0 < nv; k0 += kBlockVectors)
      accumulate_block<T, 0, E>(a, rows, val, e, k0 * L, static_cast<int>(std::min<int64_t>(kBlockVectors, nv - k0)));
  }
}

// One input pixel's E events (channels chan[j], values val[j]) at kernel row w_ky: for each of
// its valid kernel columns, rowacc[ox] += sum_j val[j] * weight[:, chan[j], ky, kx].
template <typename T, int NV, int E>
inline void scatter_pixel(const T* w_ky, const int32_t* chan, const T* val, int e, int64_t c_stride,
                          int32_t nt, const int32_t* kxs, const int32_t* oxs, int64_t cpad,
                          T* rowacc, const T** rows) {
  const int en = E > 0 ? E : e;
  for (int j = 0; j < en; ++j) rows[j] = w_ky + chan[j] * c_stride;
  for (int32_t t = 0; t < nt; ++t) {
    const T* shifted[E > 0 ? E : 1];
    const T* const* r = rows;
    if constexpr (E > 0) {
      for (int j = 0; j < E; ++j) shifted[j] = rows[j] + kxs[t] * cpad;
      r = shifted;
    } else {
      for (int j = 0; j < en; ++j) rows[en + j] = rows[j] + kxs[t] * cpad;
      r = rows + en;
    }
    accumulate_rows<T, NV, E>(rowacc + oxs[t] * cpad, r, val, en, cpad / Vec<T>::lanes);
  }
}

// Image n's output, one output row at a time (see the file comment), into out_img
// [c_out, h_out, w_out]. `rows` is scratch for 2 * c_in row pointers.
template <typename T, int NV>
void forward_image(const ImageEvents<T>& ev, int64_t n, const ConvShape& s, const AxisTaps& tx,
                   const T* packed, int64_t cpad, const T* bias_pad, T* rowacc, const T** rows,
                   T* out_img) {
  const int64_t hw_out = s.h_out * s.w_out;
  const int64_t c_stride = s.kh * s.kw * cpad;  // packed rows are (c, ky, kx)
  const int32_t* beg = ev.group_begin(n);
  const int32_t* chan = ev.index(n);
  const T* val = ev.values(n);
  for (int64_t oy = 0; oy < s.h_out; ++oy) {
    for (int64_t ox = 0; ox < s.w_out; ++ox) std::memcpy(rowacc + ox * cpad, bias_pad, cpad * sizeof(T));
    for (int64_t ky = 0; ky < s.kh; ++ky) {
      const int64_t iy = oy * s.sh - s.ph + ky * s.dh;
      if (iy < 0 || iy >= s.h) continue;
      const T* w_ky = packed + ky * s.kw * cpad;
      const int32_t* row_beg = beg + iy * s.w;
      for (int64_t ix = 0; ix < s.w; ++ix) {
        const int32_t j0 = row_beg[ix], e = row_beg[ix + 1] - j0;
        const int32_t nt = tx.count[ix];
        if (e == 0 || nt == 0) continue;
        const int32_t* kxs = tx.k.data() + ix * tx.taps;
        const int32_t* oxs = tx.o.data() + ix * tx.taps;
        const int32_t* c = chan + j0;
        const T* v = val + j0;
        switch (e) {
          case 1: scatter_pixel<T, NV, 1>(w_ky, c, v, e, c_stride, nt, kxs, oxs, cpad, rowacc, rows); break;
          case 2: scatter_pixel<T, NV, 2>(w_ky, c, v, e, c_stride, nt, kxs, oxs, cpad, rowacc, rows); break;
          case 3: scatter_pixel<T, NV, 3>(w_ky, c, v, e, c_stride, nt, kxs, oxs, cpad, rowacc, rows); break;
          case 4: scatter_pixel<T, NV, 4>(w_ky, c, v, e, c_stride, nt, kxs, oxs, cpad, rowacc, rows); break;
          default: scatter_pixel<T, NV, 0>(w_ky, c, v, e, c_stride, nt, kxs, oxs, cpad, rowacc, rows); break;
        }
      }
    }
    transpose(rowacc, cpad, s.w_out, s.c_out, out_img + oy * s.w_out, hw_out);
  }
}

// Adds image n's terms into acc [c_in * kh * kw, width] (see the file comment); g is the image's
// grad_out slice [h_out * w_out + 1, width], its last row zero. `rows` is scratch for one row
// pointer per event of a channel.
template <typename T, int NV>
void grad_weight_image(const ImageEvents<T>& ev, int64_t n, const ConvShape& s, const AxisTaps& ty,
                       const AxisTaps& tx, const T* g, int64_t width, T* acc, const T** rows,
                       int32_t* py, int32_t* px) {
  const int64_t nv = width / Vec<T>::lanes;
  const int64_t hw_out = s.h_out * s.w_out;
  const int32_t* beg = ev.group_begin(n);
  const int32_t* pix = ev.index(n);
  const T* val = ev.values(n);
  for (int64_t c = 0; c < s.c_in; ++c) {
    const int32_t j0 = beg[c], e = beg[c + 1] - j0;
    if (e == 0) continue;
    for (int32_t j = 0; j < e; ++j) {
      py[j] = static_cast<int32_t>(pix[j0 + j] / s.w);
      px[j] = static_cast<int32_t>(pix[j0 + j] - py[j] * s.w);
    }
    for (int64_t ky = 0; ky < s.kh; ++ky)
      for (int64_t kx = 0; kx < s.kw; ++kx) {
        for (int32_t j = 0; j < e; ++j) {
          const int32_t oy = ty.out[py[j] * s.kh + ky], ox = tx.out[px[j] * s.kw + kx];
          const int64_t q = (oy >= 0 && ox >= 0) ? oy * s.w_out + ox : hw_out;  // else the zero row
          rows[j] = g + q * width;
        }
        accumulate_rows<T, NV, 0>(acc + ((c * s.kh + ky) * s.kw + kx) * width, rows, val + j0, e, nv);
      }
  }
}

// dst[c_j] for the E channels chan[j] of one input pixel: the sum over its nt valid taps
// (kernel rows kys/output rows oys, kernel columns kxs/output columns oxs) of g[(oy, ox), :] .
// packed[(c_j, ky, kx), :], in vectors, lanes summed last in order.
template <typename T, int E>
inline void pixel_dots(const int32_t* chan, const T* g, const T* packed, const ConvShape& s,
                       int64_t cpad, int32_t nty, const int32_t* kys, const int32_t* oys, int32_t ntx,
                       const int32_t* kxs, const int32_t* oxs, T* dst, int64_t hw) {
  using V = typename Vec<T>::type;
  constexpr int L = Vec<T>::lanes;
  V acc[E][2] = {};  // two chains per channel: the adds of one chain wait on each other
  const T* w[E];
  for (int e = 0; e < E; ++e) w[e] = packed + static_cast<int64_t>(chan[e]) * s.kh * s.kw * cpad;
  for (int32_t a = 0; a < nty; ++a)
    for (int32_t b = 0; b < ntx; ++b) {
      const T* gr = g + (static_cast<int64_t>(oys[a]) * s.w_out + oxs[b]) * cpad;
      const int64_t tap = (static_cast<int64_t>(kys[a]) * s.kw + kxs[b]) * cpad;
      int64_t k = 0;
      for (; k + 2 * L <= cpad; k += 2 * L) {
        const V g0 = load_vec<V>(gr + k), g1 = load_vec<V>(gr + k + L);
        for (int e = 0; e < E; ++e) {
          acc[e][0] = fmadd(g0, load_vec<V>(w[e] + tap + k), acc[e][0]);
          acc[e][1] = fmadd(g1, load_vec<V>(w[e] + tap + k + L), acc[e][1]);
        }
      }
      if (k < cpad) {
        const V g0 = load_vec<V>(gr + k);
        for (int e = 0; e < E; ++e) acc[e][0] = fmadd(g0, load_vec<V>(w[e] + tap + k), acc[e][0]);
      }
    }
  for (int e = 0; e < E; ++e) {
    const V v = acc[e][0] + acc[e][1];
    T sum = T(0);
    for (int j = 0; j < L; ++j) sum += v[j];
    dst[static_cast<int64_t>(chan[e]) * hw] = sum;
  }
}

// Image n's masked input gradient into gx_img [c_in, h, w] (zeroed first); g is the image's
// grad_out as NHWC [h_out * w_out, cpad].
template <typename T>
void grad_input_image(const ImageEvents<T>& ev, int64_t n, const ConvShape& s, const Reach& reach,
                      const T* g, const T* packed, int64_t cpad, T* gx_img) {
  const int64_t hw = s.h * s.w;
  std::fill(gx_img, gx_img + s.c_in * hw, T(0));
  const int32_t* beg = ev.group_begin(n);
  const int32_t* chan = ev.index(n);
  const AxisTaps &ty = reach.y, &tx = reach.x;
  for (int64_t iy = 0; iy < s.h; ++iy) {
    const int32_t nty = ty.count[iy];
    if (nty == 0) continue;
    const int32_t* kys = ty.k.data() + iy * ty.taps;
    const int32_t* oys = ty.o.data() + iy * ty.taps;
    for (int64_t ix = 0; ix < s.w; ++ix) {
      const int64_t p = iy * s.w + ix;
      const int32_t j0 = beg[p], e = beg[p + 1] - j0, ntx = tx.count[ix];
      if (e == 0 || ntx == 0) continue;  // an input no tap carries inside has gradient zero
      const int32_t* kxs = tx.k.data() + ix * tx.taps;
      const int32_t* oxs = tx.o.data() + ix * tx.taps;
      T* dst = gx_img + p;
      int32_t j = j0;
      for (; j + 4 <= j0 + e; j += 4)
        pixel_dots<T, 4>(chan + j, g, packed, s, cpad, nty, kys, oys, ntx, kxs, oxs, dst, hw);
      for (; j + 2 <= j0 + e; j += 2)
        pixel_dots<T, 2>(chan + j, g, packed, s, cpad, nty, kys, oys, ntx, kxs, oxs, dst, hw);
      if (j < j0 + e) pixel_dots<T, 1>(chan + j, g, packed, s, cpad, nty, kys, oys, ntx, kxs, oxs, dst, hw);
    }
  }
}

}  // namespace

template <typename T>
void conv_pack_weight(const T* weight, const ConvShape& s, int64_t cpad, T* packed, int threads) {
  const int64_t taps = s.c_in * s.kh * s.kw;
#pragma omp parallel for num_threads(clamp_threads(threads, taps)) schedule(static)
  for (int64_t r = 0; r < taps; ++r)
    for (int64_t co = 0; co < cpad; ++co)
      packed[r * cpad + co] = co < s.c_out ? weight[co * taps + r] : T(0);
}

template <typename S, typename T>
ConvResult spike_conv2d_forward(const S* spikes, const ConvShape& s, const T* packed, int64_t cpad,
                                const T* bias, T* out, int threads) {
  ConvResult result;
  ImageEvents<T> ev;
  std::unique_ptr<T[]> bias_pad(new (std::nothrow) T[cpad]);
  if (!ev.allocate(s, true) || !bias_pad) {
    result.out_of_memory = true;
    return result;
  }
  std::fill(bias_pad.get(), bias_pad.get() + cpad, T(0));
  if (bias) std::copy(bias, bias + s.c_out, bias_pad.get());
  const Reach reach(s);
  const int64_t work = s.n * (s.c_in * s.h * s.w + s.c_out * s.h_out * s.w_out);
  const int p = threads_for_work(threads, s.n, work);
  const int64_t image_out = s.c_out * s.h_out * s.w_out;
  std::atomic<bool> any_bad{false}, oom{false};
  std::atomic<int64_t> nnz{0}, total_reach{0};

#pragma omp parallel num_threads(p)
  {
    compact_images(spikes, s, reach, ev, nnz, total_reach, any_bad, oom);
    std::unique_ptr<T[]> rowacc(new (std::nothrow) T[s.w_out * cpad]);
    std::unique_ptr<const T*[]> rows(new (std::nothrow) const T*[2 * s.c_in]);
    if (!rowacc || !rows) oom = true;
    parallel_barrier();
    // Validate before writing: a non-finite spike anywhere leaves out untouched.
    if (!any_bad.load() && !oom.load()) {
      with_vectors(cpad / Vec<T>::lanes, [&](auto nv) {
#pragma omp for schedule(dynamic, 1)
        for (int64_t n = 0; n < s.n; ++n)
          forward_image<T, decltype(nv)::value>(ev, n, s, reach.x, packed, cpad, bias_pad.get(),
                                                rowacc.get(), rows.get(), out + n * image_out);
      });
    }
  }
  result.nnz = nnz.load();
  result.reach = total_reach.load();
  result.nonfinite = any_bad.load();
  result.out_of_memory = oom.load();
  return result;
}

template <typename S, typename T>
ConvResult spike_conv2d_grad_weight(const S* spikes, const ConvShape& s, const T* grad_out, T* gwt,
                                    int threads) {
  constexpr int64_t L = Vec<T>::lanes;
  ConvResult result;
  const int64_t vectors = (s.c_out + L - 1) / L;
  const int64_t taps = s.c_in * s.kh * s.kw;
  const int64_t hw_out = s.h_out * s.w_out;
  const int64_t work = s.n * (s.c_in * s.h * s.w + s.c_out * hw_out);
  const int p = threads_for_work(threads, std::max(s.n, vectors), work);
  ImageEvents<T> ev;
  if (!ev.allocate(s, false)) {
    result.out_of_memory = true;
    return result;
  }
  const Reach reach(s);
  std::atomic<bool> any_bad{false}, oom{false};
  std::atomic<int64_t> nnz{0}, total_reach{0};

#pragma omp parallel num_threads(p)
  {
    compact_images(spikes, s, reach, ev, nnz, total_reach, any_bad, oom);
    // This thread's output channels [c0, c0 + valid), `width` lanes wide (padded to vectors).
    const Range vr = thread_range(vectors);
    const int64_t c0 = vr.begin * L, width = (vr.end - vr.begin) * L;
    const int64_t valid = std::min(s.c_out, vr.end * L) - c0;
    std::unique_ptr<T[]> acc, g;
    std::unique_ptr<const T*[]> rows;
    std::unique_ptr<int32_t[]> py, px;
    if (width > 0) {
      const int64_t hw = s.h * s.w;
      acc.reset(new (std::nothrow) T[taps * width]);
      g.reset(new (std::nothrow) T[(hw_out + 1) * width]);
      rows.reset(new (std::nothrow) const T*[hw]);
      py.reset(new (std::nothrow) int32_t[hw]);
      px.reset(new (std::nothrow) int32_t[hw]);
      if (!acc || !g || !rows || !py || !px) oom = true;
    }
    parallel_barrier();
    if (!any_bad.load() && !oom.load() && width > 0) {
      std::fill(acc.get(), acc.get() + taps * width, T(0));
      std::fill(g.get(), g.get() + (hw_out + 1) * width, T(0));  // padding lanes, zero row
      with_vectors(width / L, [&](auto nv) {
        for (int64_t n = 0; n < s.n; ++n) {
          if (ev.count[n] == 0) continue;
          // grad_out[n, c0:c0+valid, :, :] -> g[hw_out, width]
          transpose(grad_out + (n * s.c_out + c0) * hw_out, hw_out, valid, hw_out, g.get(), width);
          grad_weight_image<T, decltype(nv)::value>(ev, n, s, reach.y, reach.x, g.get(), width,
                                                    acc.get(), rows.get(), py.get(), px.get());
        }
      });
      for (int64_t r = 0; r < taps; ++r)
        std::memcpy(gwt + r * s.c_out + c0, acc.get() + r * width, valid * sizeof(T));
    }
  }
  result.nnz = nnz.load();
  result.reach = total_reach.load();
  result.nonfinite = any_bad.load();
  result.out_of_memory = oom.load();
  return result;
}

template <typename T>
ConvResult spike_conv2d_grad_input_masked(const uint8_t* mask, const ConvShape& s, const T* grad_out,
                                          const T* packed, int64_t cpad, T* grad_in, int threads) {
  ConvResult result;
  ImageEvents<T> ev;
  if (!ev.allocate(s, true)) {
    result.out_of_memory = true;
    return result;
  }
  const Reach reach(s);
  const int64_t hw_out = s.h_out * s.w_out, image_in = s.c_in * s.h * s.w;
  const int64_t work = s.n * (image_in + s.c_out * hw_out);
  const int p = threads_for_work(threads, s.n, work);
  std::atomic<bool> any_bad{false}, oom{false};
  std::atomic<int64_t> nnz{0}, total_reach{0};

#pragma omp parallel num_threads(p)
  {
    compact_images(mask, s, reach, ev, nnz, total_reach, any_bad, oom);
    std::unique_ptr<T[]> g(new (std::nothrow) T[hw_out * cpad]);
    if (!g) oom = true;
    parallel_barrier();
    if (!oom.load()) {
      std::fill(g.get(), g.get() + hw_out * cpad, T(0));  // padding lanes stay zero
#pragma omp for schedule(dynamic, 1)
      for (int64_t n = 0; n < s.n; ++n) {
        T* gx_img = grad_in + n * image_in;
        if (ev.count[n] == 0) {
          std::fill(gx_img, gx_img + image_in, T(0));
          continue;
        }
        transpose(grad_out + n * s.c_out * hw_out, hw_out, s.c_out, hw_out, g.get(), cpad);
        grad_input_image(ev, n, s, reach, g.get(), packed, cpad, gx_img);
      }
    }
  }
  result.nnz = nnz.load();
  result.reach = total_reach.load();
  result.out_of_memory = oom.load();
  return result;
}

template <typename S>
ConvResult spike_conv2d_scan(const S* spikes, const ConvShape& s, int threads) {
  ConvResult result;
  const int64_t hw = s.h * s.w;
  const Reach reach(s);
  const int p = threads_for_work(threads, s.n, s.n * s.c_in * hw);
  int64_t nnz = 0, total_reach = 0;
  bool any_bad = false, oom = false;
#pragma omp parallel num_threads(p) reduction(+ : nnz, total_reach) reduction(|| : any_bad, oom)
  {
    const Range rr = thread_range(s.n);
    std::unique_ptr<int32_t[]> count(new (std::nothrow) int32_t[hw]);
    if (!count) {
      oom = true;
    } else {
      S probe = 0;  // a running sum of x - x: NaN once any x is NaN or Inf
      for (int64_t n = rr.begin; n < rr.end; ++n) {
        std::fill(count.get(), count.get() + hw, 0);
        const S* image = spikes + n * s.c_in * hw;
        int32_t* cnt = count.get();
        for (int64_t c = 0; c < s.c_in; ++c) {
          const S* plane = image + c * hw;
          if constexpr (std::is_floating_point_v<S>) {
            S pr = 0;
            for (int64_t q = 0; q < hw; ++q) {
              cnt[q] += plane[q] != S(0);
              pr += plane[q] - plane[q];
            }
            probe += pr;
          } else {
            for (int64_t q = 0; q < hw; ++q) cnt[q] += plane[q] != S(0);
          }
        }
        for (int64_t q = 0; q < hw; ++q) nnz += cnt[q];
        total_reach += reach.weigh(cnt, s.h, s.w);
      }
      if constexpr (std::is_floating_point_v<S>) any_bad = any_bad || probe != probe;
    }
  }
  result.nnz = nnz;
  result.reach = total_reach;
  result.nonfinite = any_bad;
  result.out_of_memory = oom;
  return result;
}

#define SPARSESPIKE_INSTANTIATE(S, T)                                                            \
  template ConvResult spike_conv2d_forward<S, T>(const S*, const ConvShape&, const T*, int64_t,   \
                                                 const T*, T*, int);                             \
  template ConvResult spike_conv2d_grad_weight<S, T>(const S*, const ConvShape&, const T*, T*, int);

template void conv_pack_weight<float>(const float*, const ConvShape&, int64_t, float*, int);
template void conv_pack_weight<double>(const double*, const ConvShape&, int64_t, double*, int);
SPARSESPIKE_INSTANTIATE(float, float)
SPARSESPIKE_INSTANTIATE(double, double)
SPARSESPIKE_INSTANTIATE(uint8_t, float)
SPARSESPIKE_INSTANTIATE(uint8_t, double)
template ConvResult spike_conv2d_grad_input_masked<float>(const uint8_t*, const ConvShape&,
                                                          const float*, const float*, int64_t,
                                                          float*, int);
template ConvResult spike_conv2d_grad_input_masked<double>(const uint8_t*, const ConvShape&,
                                                           const double*, const double*, int64_t,
                                                           double*, int);
template ConvResult spike_conv2d_scan<float>(const float*, const ConvShape&, int);
template ConvResult spike_conv2d_scan<double>(const double*, const ConvShape&, int);
template ConvResult spike_conv2d_scan<uint8_t>(const uint8_t*, const ConvShape&, int);

}  // namespace sparsespike
