// The named, trainable parameters of a model, in creation order.
//
// Names are the stable contract of docs/model.md: checkpoints, gradients files and the Hugging Face
// converters all address parameters by them. Initial values are drawn from Philox keyed by
// (seed, parameter index), so a seed gives the same model on every machine.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "heed/autograd/gradient_buffer.h"
#include "heed/autograd/variable.h"
#include "heed/io/safetensors.h"

namespace heed::nn {

using autograd::Variable;

enum class Init {
  Zeros,
  Ones,
  XavierUniform,    // U(-a, a), a = sqrt(6 / (fan_in + fan_out)), for [out, in] weights
  EmbeddingUniform  // U(-a, a) with variance 1/d, so sqrt(d)-scaled embeddings have unit variance
};

class ParameterStore {
 public:
  explicit ParameterStore(uint64_t seed = 1) : seed_(seed) {}

  // Creates a parameter; a repeated name is an error.
  Variable create(const std::string& name, const Shape& shape, Init init);
  const Variable& get(const std::string& name) const;
  bool contains(const std::string& name) const;
  const std::vector<std::pair<std::string, Variable>>& all() const { return params_; }
  int64_t numel() const;

  // Replaces every value from `tensors`; missing, extra, or mis-shaped entries are errors that list them,
  // and so is a NaN or Inf value (naming the parameter).
  void load(const io::TensorMap& tensors, const std::string& source);
  io::TensorMap values() const;
  // Gradients by name; a parameter without one (e.g. unused) gets zeros.
  io::TensorMap grads() const;
  // Drops every gradient before a step's backward passes. The trainable parameters' gradients then live in
  // grad_buffer(), which the first call allocates and a call after the trainable parameters or their device
  // changed lays out anew.
  void zero_grads();
  // The trainable parameters' gradients, in reverse creation order (about the order in which backward
  // completes them, so that data-parallel training can all-reduce its leading slices while backward goes
  // on); undefined before zero_grads().
  const autograd::GradientBuffer& grad_buffer() const { return grad_buffer_; }
  // Moves every value to `device` in place (the handles the modules hold follow) and drops the gradients.
  void to(Device device);

 private:
  uint64_t seed_;
  std::vector<std::pair<std::string, Variable>> params_;
  autograd::GradientBuffer grad_buffer_;
};

}  // namespace heed::nn
