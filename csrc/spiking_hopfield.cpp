#include "spiking_hopfield.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <new>

#include "compact.h"
#include "lanes.h"
#include "lif_step.h"
#include "parallel.h"

namespace sparsespike {

namespace {

// Columns per register tile: kTileVectors vectors of accumulators stay in registers while the
// active rows stream past (64 floats, 32 doubles).
constexpr int kTileVectors = 8;

template <typename T>
constexpr int64_t tile_width() {
  return kTileVectors * Vec<T>::lanes;
}

// Columns per block of the column-sum pre-pass.
constexpr int64_t kColumnBlock = 256;

// total[c0, c1) = sum_j weight[j, c0:c1) over j = 0, 1, ..., n - 1 from 0, each element in
// that order (the reference's). Returns false if that slab of the weight holds NaN or Inf.
template <typename T>
bool column_sums(const T* weight, int64_t n, int64_t c0, int64_t c1, T* total) {
  std::fill(total + c0, total + c1, T(0));
  FiniteProbe<T> probe;
  T* out = total + c0;
  for (int64_t j = 0; j < n; ++j) {
    const T* row = weight + j * n + c0;
    for_lanes<T>(c1 - c0, [&](auto lane, int64_t k) {
      using L = typename decltype(lane)::type;
      const L w = load_lanes<L>(row + k);
      probe.add(w);
      store_lanes(out + k, load_lanes<L>(out + k) + w);
    });
  }
  return probe.finite();
}

// One LIF step (lif_step.h, snnTorch convention) for the lanes at `k` of a row, driven by the
// bipolar field of the summed active rows `acc`.
template <LifReset R, typename L, typename T>
inline void lif_update(const L& acc, const T* total, T beta, T threshold, T* v, T* s_out) {
  const L th = lanes_of<L>(threshold), b = lanes_of<L>(beta);
  const L current = T(2) * acc - load_lanes<L>(total);
  const L vk = snntorch_step<R>(load_lanes<L>(v), current, b, th);
  store_lanes(s_out, snntorch_spike(vk, th));
  store_lanes(v, vk);
}

template <typename T>
struct Args {
  const T* weight;
  const T* total;
  int64_t n;
  T beta, threshold;
  T* v;  // [batch, n] membrane state, ends as v_final
};

// One tile of columns [c, c + width) (width <= tile_width) of one row at one step: sum the
// weight rows of the `count` active neurons idx[0..count) (increasing), in registers for a full
// tile, then the LIF update; spikes to s_out (the row's output, indexed by column).
template <typename T, LifReset R>
void step_tile(const Args<T>& a, int64_t row, int64_t c, int64_t width, const int32_t* idx,
               int64_t count, T* s_out, T* scratch) {
  using V = typename Vec<T>::type;
  constexpr int64_t W = Vec<T>::lanes;
  const int64_t n = a.n;
  T* v = a.v + row * n;
  if (width == tile_width<T>()) {
    V acc[kTileVectors];
    for (int q = 0; q < kTileVectors; ++q) acc[q] = V{};
    for (int64_t e = 0; e < count; ++e) {
      const T* w = a.weight + int64_t(idx[e]) * n + c;
      for (int q = 0; q < kTileVectors; ++q) acc[q] += load_vec<V>(w + q * W);
    }
    for (int q = 0; q < kTileVectors; ++q) {
      const int64_t k = c + q * W;
      lif_update<R>(acc[q], a.total + k, a.beta, a.threshold, v + k, s_out + k);
    }
    return;
  }
  // the last, partial tile: the same sums through a scratch row, vectors then scalars
  std::fill(scratch, scratch + width, T(0));
  for (int64_t e = 0; e < count; ++e) {
    const T* w = a.weight + int64_t(idx[e]) * n + c;
    for_lanes<T>(width, [&](auto lane, int64_t k) {
      using L = typename decltype(lane)::type;
      store_lanes(scratch + k, load_lanes<L>(scratch + k) + load_lanes<L>(w + k));
    });
  }
  for_lanes<T>(width, [&](auto lane, int64_t k) {
    using L = typename decltype(lane)::type;
    lif_update<R>(load_lanes<L>(scratch + k), a.total + c + k, a.beta, a.threshold, v + c + k,
                  s_out + c + k);
  });
}

// Event lists of up to kGroupBytes / (4 n) rows are kept at once, so that each tile of the
// weight (n rows x one tile of columns) is read from cache by every row of the group.
constexpr int64_t kGroupBytes = 256 * 1024;
constexpr int64_t kMaxGroupRows = 64;

// The time loop. Work items are (row, column chunk) pairs: one chunk per row when there are at
// least as many rows as threads (each thread owns whole rows and runs them in groups, all steps
// of a group before the next, with no synchronisation), else a row is split into column chunks
// of whole tiles and the team steps in lockstep (a barrier per step, since every chunk reads
// the whole previous spike row). Each output element is summed by one thread in event order,
// so the split never changes a result.
template <typename T, LifReset R>
HopfieldResult run_steps(const Args<T>& a, const T* cue, int64_t batch, int64_t steps, T* spikes,
                         int threads) {
  const int64_t n = a.n, tw = tile_width<T>();
  const int64_t tiles = (n + tw - 1) / tw;
  // the work: about half the rows active, each adding n values per step
  const int64_t work = steps * batch * n * std::max<int64_t>(1, n / 2);
  const int wanted = threads_for_work(threads, batch * tiles, work);
  const int64_t chunks = batch >= wanted ? 1 : std::min<int64_t>((wanted + batch - 1) / batch, tiles);
  const int64_t items = batch * chunks;
  const int team = clamp_threads(wanted, items);
  const bool lockstep = chunks > 1;
  // rows per group: lockstep threads hold at most a few items (items < 2 x team), all at once
  const int64_t group_rows =
      lockstep ? items : std::clamp<int64_t>(kGroupBytes / (4 * n), 1, kMaxGroupRows);
  int64_t events = 0;
  std::atomic<bool> out_of_memory{false};
#pragma omp parallel num_threads(team) reduction(+ : events)
  {
    const Range mine = thread_range(items);
    const int64_t list_rows = std::min<int64_t>(group_rows, mine.end - mine.begin) + 1;
    std::unique_ptr<int32_t[]> lists(new (std::nothrow) int32_t[list_rows * n]);
    std::unique_ptr<int64_t[]> counts(new (std::nothrow) int64_t[list_rows]);
    std::unique_ptr<T[]> val(new (std::nothrow) T[n]);
    std::unique_ptr<T[]> scratch(new (std::nothrow) T[tw]);
    if (!lists || !counts || !val || !scratch) out_of_memory = true;
    parallel_barrier();
    if (!out_of_memory.load()) {  // the same answer on every thread after the barrier
      auto columns = [&](int64_t chunk) {
        return Range{std::min(n, chunk * tiles / chunks * tw),
                     std::min(n, (chunk + 1) * tiles / chunks * tw)};
      };
      // a group is a run of whole rows of mine (lockstep: all of mine, possibly empty)
      for (int64_t g0 = mine.begin; g0 < mine.end || (lockstep && g0 == mine.begin);) {
        const int64_t g1 = lockstep ? mine.end : std::min(mine.end, g0 + group_rows);
        const int64_t first_row = g0 / chunks;
        for (int64_t item = g0; item < g1; ++item) {
          const Range cols = columns(item % chunks);
          T* v = a.v + (item / chunks) * n;
          std::fill(v + cols.begin, v + cols.end, T(0));
        }
        for (int64_t t = 0; t < steps; ++t) {
          // each row's previous spikes as an increasing list of active neurons
          for (int64_t item = g0; item < g1; ++item) {
            const int64_t row = item / chunks;
            if (item > g0 && row == (item - 1) / chunks) continue;  // compacted already
            const T* prev = t == 0 ? cue + row * n : spikes + ((t - 1) * batch + row) * n;
            bool nonfinite = false;  // 0/1 by construction (the cue was checked)
            const int64_t count = compact_row(prev, n, lists.get() + (row - first_row) * n,
                                              val.get(), nonfinite);
            counts[row - first_row] = count;
            if (item % chunks == 0) events += count;
          }
          for (int64_t tile = 0; tile < tiles; ++tile) {
            const int64_t c = tile * tw, width = std::min(tw, n - c);
            for (int64_t item = g0; item < g1; ++item) {
              const Range cols = columns(item % chunks);
              if (c < cols.begin || c >= cols.end) continue;
              const int64_t row = item / chunks, local = row - first_row;
              step_tile<T, R>(a, row, c, width, lists.get() + local * n, counts[local],
                              spikes + (t * batch + row) * n, scratch.get());
            }
          }
          if (lockstep) parallel_barrier();
        }
        g0 = g1 > g0 ? g1 : g0 + 1;
      }
    }
  }
  HopfieldResult result;
  if (out_of_memory.load()) result.status = HopfieldStatus::out_of_memory;
  result.events = events;
  return result;
}

}  // namespace

template <typename T>
HopfieldResult spiking_hopfield_recall(const T* weight, int64_t n, const T* cue, int64_t batch,
                                       int64_t steps, T beta, T threshold, LifReset reset,
                                       T* spikes, T* v_final, int threads) {
  HopfieldResult result;
  bool nonbinary = false;
  for (int64_t i = 0; i < batch * n; ++i) nonbinary |= !(cue[i] == T(0) || cue[i] == T(1));
  if (nonbinary) {
    result.status = HopfieldStatus::nonbinary_cue;
    return result;
  }
  std::unique_ptr<T[]> total(new (std::nothrow) T[n > 0 ? n : 1]);
  if (!total) {
    result.status = HopfieldStatus::out_of_memory;
    return result;
  }
  const int64_t blocks = (n + kColumnBlock - 1) / kColumnBlock;
  std::atomic<bool> nonfinite{false};
#pragma omp parallel for num_threads(threads_for_work(threads, blocks, n * n)) schedule(static)
  for (int64_t blk = 0; blk < blocks; ++blk)
    if (!column_sums(weight, n, blk * kColumnBlock, std::min(n, (blk + 1) * kColumnBlock), total.get()))
      nonfinite = true;
  if (nonfinite.load()) {
    result.status = HopfieldStatus::nonfinite_weight;
    return result;
  }
  if (batch == 0 || steps == 0 || n == 0) return result;
  const Args<T> args{weight, total.get(), n, beta, threshold, v_final};
  switch (reset) {
    case LifReset::subtract:
      return run_steps<T, LifReset::subtract>(args, cue, batch, steps, spikes, threads);
    case LifReset::zero:
      return run_steps<T, LifReset::zero>(args, cue, batch, steps, spikes, threads);
    case LifReset::none:
      return run_steps<T, LifReset::none>(args, cue, batch, steps, spikes, threads);
  }
  return result;
}

template HopfieldResult spiking_hopfield_recall<float>(const float*, int64_t, const float*,
                                                       int64_t, int64_t, float, float, LifReset,
                                                       float*, float*, int);
template HopfieldResult spiking_hopfield_recall<double>(const double*, int64_t, const double*,
                                                        int64_t, int64_t, double, double, LifReset,
                                                        double*, double*, int);

}  // namespace sparsespike
