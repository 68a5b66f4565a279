// Spiking Hopfield recall (CPU): LIF neurons driven by event-driven recurrent input through a
// stored weight matrix, the propagation and the LIF update fused in one kernel over time.
//
// Dynamics, per batch row (sparsespike/ops/spiking_hopfield.py has the reference loop):
//   s_0 = cue (the spike state entering step 1), v = 0
//   for t = 1..steps:
//     A_i   = sum_{j : s_{t-1, j} != 0} weight[j, i]     (active rows, increasing j)
//     I_i   = 2 A_i - total_i,  total_i = sum_j weight[j, i]  (increasing j): the bipolar field
//     r     = H(v - theta)                               (snnTorch convention: previous spike)
//     v     = beta v + I - theta r | beta (1 - r) v + I | beta v + I   (subtract | zero | none)
//     s_t   = H(v - theta)
// Every sum runs over j in increasing order from 0 and every LIF expression is evaluated in the
// reference's order (this file is compiled without FMA contraction), so spikes and membranes
// equal the reference's bit for bit. weight[j] is neuron j's outgoing row: a spike of j reads
// one contiguous row (for a symmetric Hopfield matrix, row j == column j).
#pragma once

#include <cstdint>

#include "lif.h"

namespace sparsespike {

enum class HopfieldStatus : int { ok = 0, nonfinite_weight = 1, nonbinary_cue = 2, out_of_memory = 3 };

struct HopfieldResult {
  HopfieldStatus status = HopfieldStatus::ok;
  int64_t events = 0;  // presynaptic spikes propagated: nonzeros of the cue and of steps 1..steps-1
};

// weight [n, n], cue [batch, n] in {0, 1}, spikes [steps, batch, n] (written 0/1), v_final
// [batch, n] (the membrane after the last step). All C-contiguous. Nothing is written unless
// the weight is finite and the cue binary (checked first). Deterministic for any thread count:
// threads split batch rows (and, with fewer rows than threads, column blocks of a row), never a
// sum.
template <typename T>
HopfieldResult spiking_hopfield_recall(const T* weight, int64_t n, const T* cue, int64_t batch,
                                       int64_t steps, T beta, T threshold, LifReset reset,
                                       T* spikes, T* v_final, int threads);

}  // namespace sparsespike
