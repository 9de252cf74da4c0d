#include "heed/nn/parameters.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "heed/core/philox.h"

namespace heed::nn {

namespace {

void fill_uniform(Tensor& t, float bound, const RandomKey& key) {
  float* p = t.data<float>();
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; i += 4) {
    float u[4];
    philox_uniform4(key, static_cast<uint64_t>(i / 4), u);
    for (int64_t j = 0; j < 4 && i + j < n; ++j) p[i + j] = bound * (2.0f * u[j] - 1.0f);
  }
}

}  // namespace

Variable ParameterStore::create(const std::string& name, const Shape& shape, Init init) {
  HEED_CHECK(!contains(name), "parameter {} created twice", name);
  Tensor value = Tensor::empty(shape);
  const RandomKey key{seed_, 0, static_cast<uint32_t>(params_.size())};
  switch (init) {
    case Init::Zeros: value.fill_(0.0f); break;
    case Init::Ones: value.fill_(1.0f); break;
    case Init::XavierUniform:
      fill_uniform(value, std::sqrt(6.0f / static_cast<float>(shape[0] + shape[1])), key);
      break;
    case Init::EmbeddingUniform:
      fill_uniform(value, std::sqrt(3.0f / static_cast<float>(shape[1])), key);
      break;
  }
  Variable v(value, true);
  params_.emplace_back(name, v);
  return v;
}

bool ParameterStore::contains(const std::string& name) const {
  for (const auto& [n, v] : params_)
    if (n == name) return true;
  return false;
}

const Variable& ParameterStore::get(const std::string& name) const {
  for (const auto& [n, v] : params_)
    if (n == name) return v;
  HEED_CHECK(false, "no parameter named {}", name);
}

int64_t ParameterStore::numel() const {
  int64_t n = 0;
  for (const auto& [name, v] : params_) n += v.value().numel();
  return n;
}

void ParameterStore::load(const io::TensorMap& tensors, const std::string& source) {
  std::vector<std::string> missing, extra, mismatched;
  std::set<std::string> known;
  for (const auto& [name, v] : params_) {
    known.insert(name);
    auto it = tensors.find(name);
    if (it == tensors.end()) missing.push_back(name);
    else if (it->second.shape() != v.shape())
      mismatched.push_back(fmt::format("{} has shape {}, expected {}", name, shape_str(it->second.shape()),
                                       shape_str(v.shape())));
  }
  for (const auto& [name, t] : tensors)
    if (!known.count(name)) extra.push_back(name);
  HEED_CHECK(missing.empty() && extra.empty() && mismatched.empty(),
             "{} does not fit the model:{}{}{}", source,
             missing.empty() ? "" : fmt::format("\n  missing parameters: {}", fmt::join(missing, ", ")),
             extra.empty() ? "" : fmt::format("\n  unexpected parameters: {}", fmt::join(extra, ", ")),
             mismatched.empty() ? "" : fmt::format("\n  {}", fmt::join(mismatched, "\n  ")));
  for (const auto& [name, v] : params_) {
    const Tensor value = tensors.at(name).to(Device::cpu()).to(DType::F32).contiguous();
    // A NaN or Inf weight turns every translation into garbage without an error: refused by name.
    const float* p = value.data<float>();
    const int64_t bad = std::find_if(p, p + value.numel(), [](float x) { return !std::isfinite(x); }) - p;
    HEED_CHECK(bad == value.numel(), "{}: parameter {} holds {} at index {}: the weights are broken (a diverged "
               "run, or a damaged file)", source, name, p[bad], bad);
    v.set_value(value.to(v.value().device()));
  }
}

io::TensorMap ParameterStore::values() const {
  io::TensorMap out;
  for (const auto& [name, v] : params_) out[name] = v.value();
  return out;
}

io::TensorMap ParameterStore::grads() const {
  io::TensorMap out;
  for (const auto& [name, v] : params_)
    out[name] = v.grad().defined() ? v.grad() : Tensor::zeros(v.shape(), DType::F32, v.value().device());
  return out;
}

void ParameterStore::to(Device device) {
  grad_buffer_.release();
  for (auto& [name, v] : params_) {
    v.set_value(v.value().to(device));
    v.zero_grad();
  }
}

void ParameterStore::zero_grads() {
  std::vector<Variable> trainable;
  for (auto it = params_.rbegin(); it != params_.rend(); ++it)
    if (it->second.requires_grad()) trainable.push_back(it->second);
  if (!grad_buffer_.holds(trainable)) {
    grad_buffer_.release();
    grad_buffer_ = autograd::GradientBuffer(std::move(trainable));
  }
  for (auto& [name, v] : params_) v.zero_grad();
}

}  // namespace heed::nn
