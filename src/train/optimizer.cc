#include "heed/train/optimizer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

#include "heed/ops/elementwise.h"

namespace heed::train {

AdamOptimizer::AdamOptimizer(const nn::ParameterStore& params, ops::AdamHyper hyper, dist::Communicator* shards)
    : hyper_(hyper), shards_(shards && shards->world() > 1 ? shards : nullptr) {
  int64_t total = 0;
  for (const auto& [name, p] : params.all()) {
    if (!p.requires_grad()) continue;
    Slot slot{name, p, Tensor(), Tensor(), total};
    if (!shards_) {
      const Device device = p.value().device();
      slot.m = Tensor::zeros(p.shape(), DType::F32, device);
      slot.v = Tensor::zeros(p.shape(), DType::F32, device);
    }
    total += p.value().numel();
    slots_.push_back(std::move(slot));
  }
  if (shards_) {
    shard_ = (total + shards_->world() - 1) / shards_->world();
    m_ = Tensor::zeros({shard_});
    v_ = Tensor::zeros({shard_});
    // Every rank's range, since only rank 0 logs info lines: the log shows that the state is sharded.
    std::vector<std::string> ranges;
    for (int64_t r = 0; r < shards_->world(); ++r)
      ranges.push_back(
          fmt::format("rank {} [{}, {})", r, std::min(total, r * shard_), std::min(total, (r + 1) * shard_)));
    spdlog::info("optimizer: Adam's moments of the {} trainable values sharded over {} ranks: {}", total,
                 shards_->world(), fmt::join(ranges, ", "));
  }
}

Tensor AdamOptimizer::flatten(const std::function<Tensor(const Slot&)>& pick) const {
  Tensor flat = Tensor::zeros({shard_ * shards_->world()});
  for (const Slot& s : slots_)
    if (const Tensor t = pick(s); t.defined()) flat.narrow(0, s.offset, t.numel()).view(t.shape()).copy_from(t);
  return flat;
}

Tensor AdamOptimizer::reduce_gradients() {
  HEED_CHECK(shards_, "reduce_gradients() is for a sharded optimizer");
  grad_ = shards_->reduce_scatter(flatten([](const Slot& s) { return s.param.grad(); }), dist::ReduceOp::Sum);
  std::vector<double> squares{static_cast<double>(ops::grad_squares({grad_}).to(Device::cpu()).item())};
  shards_->all_reduce(squares, dist::ReduceOp::Sum);
  return Tensor::full({}, static_cast<float>(squares[0]), grad_.device());
}

Tensor AdamOptimizer::grad_squares() const {
  HEED_CHECK(!shards_, "a sharded optimizer's norm comes from reduce_gradients()");
  std::vector<Tensor> grads;
  for (const Slot& s : slots_)
    if (s.param.grad().defined()) grads.push_back(s.param.grad());
  HEED_CHECK(!grads.empty(), "no trainable parameter has a gradient");
  return ops::grad_squares(grads);
}

void AdamOptimizer::step(const ops::GradScaling& scaling) {
  ++step_;
  if (!shards_) {
    std::vector<ops::AdamSlot> batch;
    batch.reserve(slots_.size());
    for (const Slot& s : slots_)
      if (s.param.grad().defined()) batch.push_back({s.param.value(), s.param.grad(), s.m, s.v});
    ops::adam_update(batch, hyper_, step_, scaling);
    return;
  }
  // Every rank updates its range; the gather gives each rank every range.
  HEED_CHECK(grad_.defined(), "a sharded optimizer steps after reduce_gradients()");
  const Tensor flat = flatten([](const Slot& s) { return s.param.value(); });
  const Tensor mine = flat.narrow(0, shards_->rank() * shard_, shard_).contiguous();
  ops::adam_update({{mine, grad_, m_, v_}}, hyper_, step_, scaling);
  const Tensor all = shards_->all_gather(mine).reshape({-1});
  for (const Slot& s : slots_) {
    Tensor value = s.param.value();
    value.copy_from(all.narrow(0, s.offset, value.numel()).view(value.shape()));
  }
  grad_ = Tensor();
}

io::TensorMap AdamOptimizer::state() const {
  io::TensorMap out;
  if (!shards_) {
    for (const Slot& s : slots_) {
      out["exp_avg." + s.name] = s.m;
      out["exp_avg_sq." + s.name] = s.v;
    }
    return out;
  }
  for (auto [prefix, moment] : {std::pair{"exp_avg.", &m_}, {"exp_avg_sq.", &v_}}) {
    const Tensor all = shards_->all_gather(*moment).reshape({-1});
    for (const Slot& s : slots_)
      out[prefix + s.name] = all.narrow(0, s.offset, s.param.value().numel()).view(s.param.shape()).clone();
  }
  return out;
}

void AdamOptimizer::load_state(const io::TensorMap& state, int64_t steps, const std::string& source) {
  HEED_CHECK(state.size() == 2 * slots_.size(), "{}: holds {} optimizer moments, expected {} (2 per trainable "
             "parameter); was it written with other frozen parameters?", source, state.size(), 2 * slots_.size());
  auto moment = [&](const std::string& prefix, const Slot& s) {
    auto it = state.find(prefix + s.name);
    HEED_CHECK(it != state.end(), "{}: no optimizer moment {}{}", source, prefix, s.name);
    HEED_CHECK(it->second.shape() == s.param.shape(), "{}: optimizer moment {}{} has shape {}, expected {}", source,
               prefix, s.name, shape_str(it->second.shape()), shape_str(s.param.shape()));
    return it->second;
  };
  step_ = steps;
  if (shards_) {  // this rank's range of the whole moments
    const int64_t begin = shards_->rank() * shard_;
    m_.copy_from(flatten([&](const Slot& s) { return moment("exp_avg.", s); }).narrow(0, begin, shard_));
    v_.copy_from(flatten([&](const Slot& s) { return moment("exp_avg_sq.", s); }).narrow(0, begin, shard_));
    return;
  }
  for (Slot& s : slots_) {
    s.m.copy_from(moment("exp_avg.", s));
    s.v.copy_from(moment("exp_avg_sq.", s));
  }
}

}  // namespace heed::train
