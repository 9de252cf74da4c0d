// Inference-time decoding of a Transformer one target position at a time.
//
// The decoder state is a set of rows (hypotheses), each tied to one source sentence. The source batch is
// encoded once; each decoder layer's cross-attention keys and values are projected from the encoder output
// once, and its self-attention keys and values are appended to a per-layer cache at every step, so a step
// computes only the new position: its cost grows with the prefix length through attention alone.
//
// Beam search reorders rows between steps (a surviving hypothesis continues from its parent's cache). The
// reorder is a gather done in place that copies only the rows whose content changes: none for the identity,
// and for the cross-attention cache only rows whose source sentence changes (beams of one sentence share
// it). Caches grow in the time dimension by doubling, so memory follows the longest live prefix rather
// than the maximum length.
//
// Everything runs without the autograd tape. The log-probabilities equal those of the teacher-forced
// Transformer::decode + logits at every position, within fp32 rounding.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "heed/nn/transformer.h"

namespace heed::nn {

class IncrementalDecoder {
 public:
  // Encodes `src` (int32 [B, Ls], right-padded with pad_id) and prepares caches for up to `max_rows` rows.
  // Initially there are B rows, row i decoding source sentence i.
  // `compute`: the activations' and caches' type, as in ForwardContext (fp32 on the CPU; bf16 or fp16 on
  // a GPU, whose attention kernel is 16-bit).
  // `probe` (heed translate --attention-plots, --alignment): with kind EncoderSelf, the constructor keeps
  // that encoder layer's self-attention; with DecoderCross, every step() keeps that decoder layer's
  // cross-attention for the rows it ran. Without one nothing extra is computed.
  IncrementalDecoder(const Transformer& model, const Tensor& src, int64_t max_rows, DType compute = DType::F32,
                     std::optional<AttentionProbe> probe = std::nullopt);

  int64_t rows() const { return rows_; }
  // Positions decoded so far (the next step reads position `steps()`).
  int64_t steps() const { return steps_; }
  // The source sentence of each current row.
  const std::vector<int64_t>& row_sources() const { return row_source_; }

  // Feeds one token per row (the start token at step 0, then the previously chosen token) and returns the
  // logits of the next token, [rows, V] on the model's device in the compute type (beam search selects on
  // the device with ops::log_softmax_top_k).
  Tensor step(const std::vector<int32_t>& tokens);
  // step(), then log_softmax: fp32 [rows, V] on the CPU, every token's log-probability.
  Tensor step_log_probs(const std::vector<int32_t>& tokens);

  // The probe's latest probabilities, fp32 on the CPU: [B, H, Ls, Ls] for EncoderSelf (row i: source
  // sentence i), [rows, H, 1, Ls] of the last step() for DecoderCross; undefined without a probe.
  const Tensor& attention() const;

  // Row j of the new state continues old row from[j]; rows may be dropped or repeated. from.size() may be
  // anything from 0 to max_rows.
  void reorder(const std::vector<int64_t>& from);

 private:
  struct LayerCache {
    Tensor self_k, self_v;    // [max_rows, capacity, H, Dh]: positions [0, steps) are filled
    Tensor cross_k, cross_v;  // [max_rows, Ls, H, Dh]: row r holds the projection of source slot_source_[r]
  };

  // Views of the caches for the live rows, as the decoder layers read and write them (DecoderLayerCache).
  std::vector<DecoderLayerCache> live_caches() const;
  // Grows the self-attention caches (doubling) so that position `steps_` fits.
  void reserve_step();
  void update_row_padding();

  const Transformer& model_;
  int64_t max_rows_, rows_, steps_ = 0, capacity_ = 0, source_length_, head_dim_;
  DType compute_;
  std::optional<AttentionProbe> probe_;
  std::vector<LayerCache> layers_;
  std::vector<uint8_t> source_padding_;  // [B, Ls] host copy of the encoder's key-padding mask
  std::vector<int64_t> row_source_;      // source sentence of each live row
  std::vector<int64_t> slot_source_;     // source sentence whose cross K/V each of the max_rows slots holds
  Tensor row_padding_;                   // U8 [rows, Ls]: cross-attention key padding of the live rows
};

}  // namespace heed::nn
