// The incremental decoder: Transformer::decode run one new position per call over the decoder layers'
// key/value caches. The layers are the training path's own (DecoderLayer); this file only owns the cache
// buffers: their growth, the reorder between steps and the rows' key padding.
#include "heed/nn/incremental_decoder.h"

#include "heed/ops/log_softmax.h"

namespace heed::nn {

namespace {

// An in-place gather over dimension 0 of [slots, L, ...] buffers, limited to positions [0, length): new row
// j takes old row from[j] where copy[j] is set. Old rows that are overwritten before being read are saved
// first, so a permutation needs no second buffer.
class RowGather {
 public:
  RowGather(const std::vector<int64_t>& from, const std::vector<bool>& copy) {
    std::vector<int64_t> saved_slot(from.size(), -1);
    for (size_t j = 0; j < from.size(); ++j) {
      if (!copy[j]) continue;
      const int64_t source = from[j];
      const bool overwritten = source < static_cast<int64_t>(from.size()) && copy[source];
      if (overwritten && saved_slot[source] < 0) {
        saved_slot[source] = static_cast<int64_t>(saved_.size());
        saved_.push_back(source);
      }
      moves_.push_back({static_cast<int64_t>(j), overwritten ? saved_slot[source] : source, overwritten});
    }
  }

  void apply(Tensor& buffer, int64_t length) const {
    if (moves_.empty() || length == 0) return;
    auto row = [length](const Tensor& t, int64_t r) { return t.narrow(0, r, 1).narrow(1, 0, length); };
    Tensor saved;
    if (!saved_.empty()) {
      Shape shape = buffer.shape();
      shape[0] = static_cast<int64_t>(saved_.size());
      shape[1] = length;
      saved = Tensor::empty(shape, buffer.dtype(), buffer.device());
      for (size_t i = 0; i < saved_.size(); ++i) row(saved, static_cast<int64_t>(i)).copy_from(row(buffer, saved_[i]));
    }
    for (const Move& move : moves_)
      row(buffer, move.to).copy_from(move.from_saved ? row(saved, move.from) : row(buffer, move.from));
  }

 private:
  struct Move {
    int64_t to, from;
    bool from_saved;  // `from` indexes the saved rows rather than the buffer
  };
  std::vector<int64_t> saved_;  // old rows to save, in order
  std::vector<Move> moves_;
};

}  // namespace

IncrementalDecoder::IncrementalDecoder(const Transformer& model, const Tensor& src, int64_t max_rows, DType compute,
                                       std::optional<AttentionProbe> probe)
    : model_(model),
      max_rows_(max_rows),
      head_dim_(model.config().head_dim()),
      compute_(compute),
      probe_(std::move(probe)) {
  const ModelConfig& config = model.config();
  HEED_CHECK(src.defined() && src.dtype() == DType::I32 && src.dim() == 2 && src.size(0) > 0 && src.size(1) > 0,
             "incremental decoder: the source must be a non-empty int32 [batch, length] tensor");
  const std::vector<int32_t> ids = src.to_vector<int32_t>();
  for (size_t i = 0; i < ids.size(); ++i)
    HEED_CHECK(ids[i] >= 0 && ids[i] < config.vocab_size,
               "source sentence {} holds id {} at position {}, outside the vocabulary [0, {})", i / src.size(1), ids[i],
               i % src.size(1), config.vocab_size);
  rows_ = src.size(0);
  source_length_ = src.size(1);
  HEED_CHECK(max_rows >= rows_, "incremental decoder: max_rows {} is below the {} source sentences", max_rows, rows_);

  autograd::NoGradGuard no_grad;
  ForwardContext ctx;  // training = false: no dropout
  ctx.compute = compute;
  Tensor padding;
  const Variable memory = model.encode(src, &padding, ctx, probe_ ? &*probe_ : nullptr);
  source_padding_ = padding.to_vector<uint8_t>();
  const Shape cross_shape{max_rows, source_length_, config.heads, head_dim_};
  for (int64_t i = 0; i < config.decoder_layers; ++i) {
    LayerCache cache;
    cache.cross_k = Tensor::empty(cross_shape, compute, memory.value().device());
    cache.cross_v = Tensor::empty(cross_shape, compute, memory.value().device());
    layers_.push_back(std::move(cache));
  }
  model.cache_memory(memory, live_caches());
  slot_source_.assign(max_rows, -1);
  for (int64_t i = 0; i < rows_; ++i) {
    row_source_.push_back(i);
    slot_source_[i] = i;
  }
  update_row_padding();
}

void IncrementalDecoder::update_row_padding() {
  if (rows_ == 0) return;
  Tensor padding = Tensor::empty({rows_, source_length_}, DType::U8);
  uint8_t* p = padding.data<uint8_t>();
  for (int64_t r = 0; r < rows_; ++r)
    std::copy_n(source_padding_.begin() + row_source_[r] * source_length_, source_length_, p + r * source_length_);
  row_padding_ = padding.to(model_.device());
}

void IncrementalDecoder::reserve_step() {
  if (steps_ < capacity_) return;
  const ModelConfig& config = model_.config();
  const int64_t capacity = std::max<int64_t>(16, 2 * capacity_);
  for (LayerCache& cache : layers_) {
    for (Tensor* buffer : {&cache.self_k, &cache.self_v}) {
      Tensor grown = Tensor::empty({max_rows_, capacity, config.heads, head_dim_}, compute_, cache.cross_k.device());
      if (steps_ > 0)
        grown.narrow(0, 0, rows_).narrow(1, 0, steps_).copy_from(buffer->narrow(0, 0, rows_).narrow(1, 0, steps_));
      *buffer = grown;
    }
  }
  capacity_ = capacity;
}

std::vector<DecoderLayerCache> IncrementalDecoder::live_caches() const {
  std::vector<DecoderLayerCache> caches;
  for (const LayerCache& cache : layers_) {
    DecoderLayerCache live;
    live.encoder_attn = {cache.cross_k.narrow(0, 0, rows_), cache.cross_v.narrow(0, 0, rows_)};
    // Once reserve_step has made room: the positions so far and the one this step decodes.
    if (capacity_ > steps_)
      live.self_attn = {cache.self_k.narrow(0, 0, rows_).narrow(1, 0, steps_ + 1),
                        cache.self_v.narrow(0, 0, rows_).narrow(1, 0, steps_ + 1)};
    caches.push_back(std::move(live));
  }
  return caches;
}

Tensor IncrementalDecoder::step(const std::vector<int32_t>& tokens) {
  HEED_CHECK(rows_ > 0, "incremental decoder: step() with no rows left");
  HEED_CHECK(static_cast<int64_t>(tokens.size()) == rows_, "incremental decoder: {} tokens for {} rows", tokens.size(),
             rows_);
  autograd::NoGradGuard no_grad;
  reserve_step();
  ForwardContext ctx;  // training = false: no dropout
  ctx.compute = compute_;
  // The encoder output is already in the caches (cache_memory), so the layers get no memory.
  const Variable y = model_.decode(Tensor::from_vector(tokens, {rows_, 1}), Variable(), row_padding_, ctx,
                                   live_caches(), steps_, probe_ ? &*probe_ : nullptr);
  ++steps_;
  return model_.logits(autograd::reshape(y, {rows_, model_.config().d_model})).value();
}

const Tensor& IncrementalDecoder::attention() const {
  static const Tensor none;
  return probe_ ? probe_->probabilities : none;
}

Tensor IncrementalDecoder::step_log_probs(const std::vector<int32_t>& tokens) {
  return ops::log_softmax(step(tokens).to(Device::cpu()).to(DType::F32));
}

void IncrementalDecoder::reorder(const std::vector<int64_t>& from) {
  const int64_t n = static_cast<int64_t>(from.size());
  HEED_CHECK(n <= max_rows_, "incremental decoder: reorder to {} rows exceeds max_rows {}", n, max_rows_);
  for (int64_t j = 0; j < n; ++j)
    HEED_CHECK(from[j] >= 0 && from[j] < rows_, "incremental decoder: reorder row {} takes row {}, outside [0, {})", j,
               from[j], rows_);

  std::vector<bool> self_copy(n), cross_copy(n);
  for (int64_t j = 0; j < n; ++j) {
    self_copy[j] = from[j] != j;
    cross_copy[j] = slot_source_[from[j]] != slot_source_[j];
  }
  const RowGather self_gather(from, self_copy), cross_gather(from, cross_copy);
  for (LayerCache& cache : layers_) {
    self_gather.apply(cache.self_k, steps_);
    self_gather.apply(cache.self_v, steps_);
    cross_gather.apply(cache.cross_k, source_length_);
    cross_gather.apply(cache.cross_v, source_length_);
  }

  std::vector<int64_t> row_source(n), slot_source = slot_source_;
  for (int64_t j = 0; j < n; ++j) {
    row_source[j] = row_source_[from[j]];
    slot_source[j] = slot_source_[from[j]];
  }
  const bool sources_changed = row_source != row_source_;
  row_source_ = std::move(row_source);
  slot_source_ = std::move(slot_source);
  rows_ = n;
  if (sources_changed) update_row_padding();
}

}  // namespace heed::nn
