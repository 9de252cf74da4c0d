// Kernels with known counts for the simulator's counters (tests/test_sim_counters.cc), built only in the
// counting build (src/sim/counters.h). Each entry point launches one kernel on host memory.
#pragma once

#include <cstdint>

namespace heed::counter_tests {

// One warp: lane i loads in[i * stride] (floats) and stores it at out[i]. With stride 1 a warp-wide
// load touches 4 sectors (128 contiguous bytes, `in` 128-byte aligned); with stride 8 or more, 32.
void strided_load(const float* in, float* out, int stride);

// One warp: lane i stores to and loads from word i * stride of a static __shared__ array, then stores
// the value at out[i]. Stride 1 and 33 are conflict-free (1 wavefront each way); stride 32 puts every
// lane in bank 0 (32 wavefronts each way); stride 0 is a broadcast (1 wavefront each way).
void shared_access(float* out, int stride);

// One warp: lane i loads bf16 elements 8i .. 8i + 7 (`in` as bits) in one 16-byte load (load_floats) and
// stores the sum of the first and the last at out[i]: one request of 16 sectors.
void load_16(const uint16_t* in, float* out);

// One warp: lane i loads in[i], the warp adds the 32 values in 5 __shfl_xor_sync and votes once, and lane
// i stores the sum at out[i]. The collectives move registers: one global load and one store a lane.
void warp_sum(const float* in, float* out);

// `blocks` blocks of 64 threads, each passing `barriers` __syncthreads.
void barriers(int blocks, int barriers);

}  // namespace heed::counter_tests
