// Multi-tensor Adam/AdamW (adam.cu): one launch updates every parameter tensor of a model, with fp32
// master weights and moments, and can write a 16-bit copy of the new weights in the same pass (the copy
// the next forward pass reads). The update is that of heed/ops/adam.h, element for element:
//   g = grad_scale * grad + coupled_decay * p
//   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
//   p = p * decay - step_size * m / (sqrt(v) / bias2_sqrt + eps)
// with the step's scalars folded on the host exactly as src/ops/adam.cc folds them (AdamStepScalars has
// the fields of ops::cpu::AdamStep).
#pragma once

#include <cmath>
#include <cstdint>

#include "common/backend.h"

namespace heed::kernels {

struct AdamStepScalars {
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  float decay = 1.0f;          // AdamW: 1 - lr * weight_decay; 1 otherwise
  float coupled_decay = 0.0f;  // Adam: weight_decay; 0 otherwise
  float step_size = 0.0f;      // lr / (1 - beta1^step)
  float bias2_sqrt = 1.0f;     // sqrt(1 - beta2^step)
  float grad_scale = 1.0f;
};

#if defined(__CUDACC__)
#define HEED_HOST_DEVICE __host__ __device__
#else
#define HEED_HOST_DEVICE
#endif

// What clipping makes of the sum of squares of the loss-scaled gradients: the factor each gradient is
// multiplied by (1 / loss_scale, times clip_norm / norm where clip_norm > 0 and the unscaled norm exceeds
// it), or `skip` when the norm is not finite (NaN or infinite: the update must leave everything as it
// is). The same float arithmetic on the host and in the kernels, so the CPU op and the GPU path agree.
struct ClipResult {
  bool skip = false;
  float grad_scale = 1.0f;
};

HEED_HOST_DEVICE inline ClipResult clip_gradients(float squares, float clip_norm, float loss_scale) {
  const float norm = sqrtf(squares) / loss_scale;
  ClipResult r;
  r.skip = !(norm <= 3.402823466e38f);  // false for NaN too
  r.grad_scale = (clip_norm > 0.0f && norm > clip_norm ? clip_norm / norm : 1.0f) / loss_scale;
  return r;
}

// One parameter tensor: contiguous fp32 arrays of numel elements in device memory.
struct AdamTensor {
  float* param = nullptr;
  const float* grad = nullptr;
  float* m = nullptr;
  float* v = nullptr;
  int64_t numel = 0;
  void* half_param = nullptr;  // optional: the updated param, rounded to AdamArgs::half_dtype
  int64_t first_chunk = 0;     // set by adam_assign_chunks
};

// Elements a block updates: tensors are cut into chunks of this many, and a launch has one block a chunk.
inline constexpr int64_t kAdamChunkElements = 4096;

// Numbers the chunks of all tensors consecutively (first_chunk of an AdamTensor or a GradCopy) and returns
// their count.
template <typename Tensors>
inline int64_t adam_assign_chunks(Tensors* tensors, int count) {
  int64_t chunks = 0;
  for (int i = 0; i < count; ++i) {
    tensors[i].first_chunk = chunks;
    chunks += (tensors[i].numel + kAdamChunkElements - 1) / kAdamChunkElements;
  }
  return chunks;
}

struct AdamArgs {
  // `count` tensors in device memory, their chunks assigned; a trainer uploads this array once, as the
  // tensors' addresses do not change between steps.
  const AdamTensor* tensors = nullptr;
  int count = 0;
  int64_t chunks = 0;  // adam_assign_chunks' result
  AdamStepScalars step;
  // Optional, in device memory: the sum of squares that grad_squares left. Then every block clips from it
  // (clip_gradients(*grad_squares, clip_norm, loss_scale), times step.grad_scale), and does nothing when
  // it says skip, so that neither the norm nor the decision has to visit the host.
  const float* grad_squares = nullptr;
  float clip_norm = 0.0f;
  float loss_scale = 1.0f;
  Half half_dtype = Half::BF16;  // of the tensors' half_param copies
  Stream stream = nullptr;
};

template <Backend B>
void adam_update(const AdamArgs& args);

// The first pass of clipping: the sum of squares of every tensor's grad (AdamTensor's grad and numel; the
// chunks as adam_assign_chunks numbered them) into *sum, in device memory. Two launches: block b sums
// chunk b into partials[b]; one block sums the partials in double, in a fixed order, so the result is the
// same bits on every run.
struct GradSquaresArgs {
  const AdamTensor* tensors = nullptr;
  int count = 0;
  int64_t chunks = 0;
  float* partials = nullptr;  // `chunks` floats of scratch
  float* sum = nullptr;
  Stream stream = nullptr;
};

template <Backend B>
void grad_squares(const GradSquaresArgs& args);

// The 16-bit copies a 16-bit forward pass reads of the fp32 parameters: every tensor's param rounded to
// nearest even into its half_param, in one launch, chunked as adam_assign_chunks numbered them (one
// block a chunk), where a cast per weight would take a launch each.
struct HalfCopiesArgs {
  const AdamTensor* tensors = nullptr;
  int count = 0;
  int64_t chunks = 0;
  Half half_dtype = Half::BF16;
  Stream stream = nullptr;
};

template <Backend B>
void half_copies(const HalfCopiesArgs& args);

// Gradients into their homes (autograd::settle_grads): each entry's grad, or zeros where it is null, copied
// into its home, numel contiguous fp32 elements, chunked as adam_assign_chunks numbers them (one block a
// chunk). The table travels in the launch's parameters, not in device memory: its grads are first
// contributions of a backward pass, wherever the allocator put them, and a device table would need an
// upload, which blocks the host, whenever one moved. kGradCopiesPerLaunch entries keep the parameters
// (3.2 KB) under the 4 KiB that every CUDA version takes; more entries take more launches.
struct GradCopy {
  const float* grad = nullptr;
  float* home = nullptr;
  int64_t numel = 0;
  int64_t first_chunk = 0;  // set by adam_assign_chunks
};

inline constexpr int kGradCopiesPerLaunch = 100;

struct CopyGradsArgs {
  GradCopy copies[kGradCopiesPerLaunch];
  int count = 0;
  int64_t chunks = 0;
  Stream stream = nullptr;
};

template <Backend B>
void copy_grads(const CopyGradsArgs& args);

}  // namespace heed::kernels
