// The attention probabilities that heed translate --attention-plots and --alignment show: the op that
// recomputes them from the fused op's lse, and the probe that records them during decoding.
//
// The op is checked against a double-precision softmax of the same q and k, and against the fused op itself:
// P V must give the op's own output, so these are the probabilities the op used. The probe is checked on a
// model: every step of incremental decoding records the same cross-attention as one teacher-forced pass of
// the decoder over the whole target (two different code paths of MultiHeadAttention).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include "gradcheck.h"
#include "heed/decode/beam_search.h"
#include "heed/nn/incremental_decoder.h"
#include "heed/ops/attention.h"
#include "kernel_testing.h"
#include "worst.h"

using namespace heed;
using heed::testing::random_tensor;

namespace {

// P [B, H, Lq, Lk] of softmax(q k^T scale + mask) in double; a row that sees no key is all zero.
std::vector<double> reference_probabilities(const Tensor& q, const Tensor& k, const ops::AttentionOptions& opt) {
  const int64_t B = q.size(0), H = q.size(1), Lq = q.size(2), Lk = k.size(2), D = q.size(3);
  const Tensor qc = q.contiguous(), kc = k.contiguous();
  std::vector<double> p(B * H * Lq * Lk, 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < Lq; ++i) {
        double* row = &p[((b * H + h) * Lq + i) * Lk];
        std::vector<bool> seen(Lk);
        double max = -INFINITY;
        for (int64_t j = 0; j < Lk; ++j) {
          seen[j] = !(opt.key_padding.defined() && opt.key_padding.data<uint8_t>()[b * Lk + j]) &&
                    !(opt.causal && j > i + Lk - Lq);
          if (!seen[j]) continue;
          double s = 0;
          for (int64_t d = 0; d < D; ++d)
            s += double(qc.data<float>()[((b * H + h) * Lq + i) * D + d]) *
                 kc.data<float>()[((b * H + h) * Lk + j) * D + d];
          row[j] = s * opt.scale;
          max = std::max(max, row[j]);
        }
        double sum = 0;
        for (int64_t j = 0; j < Lk; ++j) sum += row[j] = seen[j] ? std::exp(row[j] - max) : 0.0;
        for (int64_t j = 0; j < Lk; ++j) row[j] = sum > 0 ? row[j] / sum : 0.0;
      }
  return p;
}

// The largest |row sum - 1| over the rows of P [.., Lk] that see a key, and the largest |P V - out|.
struct Consistency {
  double row_sum = 0, output = 0;
};

Consistency consistency(const Tensor& p, const Tensor& v, const Tensor& out) {
  const int64_t B = v.size(0), H = v.size(1), Lk = v.size(2), D = v.size(3), Lq = p.size(2);
  const Tensor vc = testing::to_host_f32(v).contiguous(), oc = testing::to_host_f32(out).contiguous();
  Consistency c;
  for (int64_t bh = 0; bh < B * H; ++bh)
    for (int64_t i = 0; i < Lq; ++i) {
      const float* row = p.data<float>() + (bh * Lq + i) * Lk;
      double sum = 0;
      for (int64_t j = 0; j < Lk; ++j) sum += row[j];
      if (sum != 0) testing::raise_worst(c.row_sum, std::abs(sum - 1));
      for (int64_t d = 0; d < D; ++d) {
        double o = 0;
        for (int64_t j = 0; j < Lk; ++j) o += row[j] * double(vc.data<float>()[(bh * Lk + j) * D + d]);
        testing::raise_worst(c.output, std::abs(o - oc.data<float>()[(bh * Lq + i) * D + d]));
      }
    }
  return c;
}

}  // namespace

TEST_CASE("attention probabilities sum to one and are those the fused op used", "[ops][attention]") {
  // 70 keys: two key tiles, so the lse comes out of the online softmax's rescaling. Batch row 1 pads its
  // last 20 keys and key 3; with causal masking and more keys than queries, every query sees a prefix.
  // Tolerances: the fused op's exp is accurate to a few fp32 ulps and its lse to ~1e-7 relative, so each
  // probability (at most 1) is within ~1e-6 of the double softmax and a row of 70 sums within ~1e-5; P V
  // sums 70 products of O(1) values. 1e-5 holds all three; a wrong mask or scale is off by 1e-2 or more.
  const int64_t B = 2, H = 3, Lq = 5, Lk = 70, D = 16;
  const Tensor q = random_tensor({B, Lq, H, D}, 1).transpose(1, 2), k = random_tensor({B, Lk, H, D}, 2).transpose(1, 2),
               v = random_tensor({B, Lk, H, D}, 3).transpose(1, 2);
  std::vector<uint8_t> padding(B * Lk, 0);
  for (int64_t j = Lk - 20; j < Lk; ++j) padding[Lk + j] = 1;
  padding[Lk + 3] = 1;
  for (bool causal : {false, true}) {
    INFO("causal: " << causal);
    ops::AttentionOptions opt;
    opt.scale = 0.9f;
    opt.causal = causal;
    opt.key_padding = Tensor::from_vector(padding, {B, Lk});
    const ops::AttentionResult fwd = ops::attention_forward(q, k, v, opt);
    const Tensor p = ops::attention_probabilities(q, k, fwd.lse, opt);
    REQUIRE(p.shape() == Shape{B, H, Lq, Lk});
    const std::vector<double> want = reference_probabilities(q, k, opt);
    double worst = 0;
    for (size_t n = 0; n < want.size(); ++n) testing::raise_worst(worst, std::abs(p.data<float>()[n] - want[n]));
    CHECK(worst <= 1e-5);
    const Consistency c = consistency(p, v, fwd.out);
    CHECK(c.row_sum <= 1e-5);
    CHECK(c.output <= 1e-5);
    CHECK(p.data<float>()[((1 * H + 0) * Lq + 0) * Lk + 3] == 0.0f);  // a padded key gets exactly 0
  }
}

TEST_CASE("attention probabilities on the simulated GPU match the CPU's for the same bf16 inputs",
          "[ops][attention][sim]") {
  // The GPU path copies the rows to the host and recomputes there from the kernel's lse. Inputs are
  // bf16-exact, so both sides multiply the same values in fp32; they differ by the kernel's lse (fp32
  // accumulation in another order, exp2-based), ~1e-6 relative. 1e-4 leaves room; a wrong lse row or head
  // (a stride mistake) is off by 1e-2 or more.
  const Device sim = Device::sim();
  const int64_t B = 2, H = 2, Lq = 3, Lk = 11, D = 32;
  auto heads = [&](int64_t L, uint32_t seed) {
    return random_tensor({B, L, H, D}, seed).to(DType::BF16).to(DType::F32);
  };
  const Tensor q = heads(Lq, 4), k = heads(Lk, 5), v = heads(Lk, 6);
  ops::AttentionOptions opt;
  opt.scale = 0.5f;
  opt.key_padding = Tensor::from_vector<uint8_t>(std::vector<uint8_t>(B * Lk, 0), {B, Lk});
  opt.key_padding.data<uint8_t>()[Lk + 7] = 1;
  const auto cpu_view = [](const Tensor& t) { return t.transpose(1, 2); };
  const auto sim_view = [&](const Tensor& t) { return t.to(DType::BF16).to(sim).transpose(1, 2); };
  const Tensor want = ops::attention_probabilities(
      cpu_view(q), cpu_view(k), ops::attention_forward(cpu_view(q), cpu_view(k), cpu_view(v), opt).lse, opt);
  ops::AttentionOptions sim_opt = opt;
  sim_opt.key_padding = opt.key_padding.to(sim);
  const ops::AttentionResult fwd = ops::attention_forward(sim_view(q), sim_view(k), sim_view(v), sim_opt);
  const Tensor got = ops::attention_probabilities(sim_view(q), sim_view(k), fwd.lse, sim_opt);
  REQUIRE(got.device().is_cpu());
  REQUIRE(got.shape() == want.shape());
  double worst = 0;
  for (int64_t n = 0; n < got.numel(); ++n)
    testing::raise_worst(worst, std::abs(got.data<float>()[n] - want.data<float>()[n]));
  CHECK(worst <= 1e-4);
}

TEST_CASE("attention probabilities refuse an lse of the wrong shape", "[ops][attention]") {
  const Tensor q = random_tensor({1, 2, 3, 8}, 1), k = random_tensor({1, 2, 4, 8}, 2);
  CHECK_THROWS_WITH(ops::attention_probabilities(q, k, Tensor::empty({1, 2, 4}), {}),
                    Catch::Contains("lse must be [1, 2, 3], got [1, 2, 4]"));
}

namespace {

constexpr int32_t kPad = 0, kEos = 2;

struct ProbeModel {
  nn::ModelConfig config;
  nn::ParameterStore store{7};
  nn::Transformer model;

  explicit ProbeModel(int64_t d_model = 16) : config(make_config(d_model)), model(config, store) {
    // Larger weights than the initialisation, and larger still for the cross-attention's queries and keys:
    // with the others alone, its rows come out nearly uniform and nearly equal for every prefix, so rows
    // of different hypotheses or steps could not be told apart.
    uint32_t seed = 40;
    for (const auto& [name, p] : store.all()) {
      const bool scores = name.find("encoder_attn.q_proj.weight") != std::string::npos ||
                          name.find("encoder_attn.k_proj.weight") != std::string::npos;
      p.set_value(random_tensor(p.shape(), seed++, scores ? -2.0f : -0.6f, scores ? 2.0f : 0.6f));
    }
  }

  static nn::ModelConfig make_config(int64_t d_model) {
    nn::ModelConfig c;
    c.vocab_size = 19;
    c.pad_id = kPad;
    c.eos_id = kEos;
    c.decoder_start_id = kPad;
    c.d_model = d_model;
    c.heads = 2;
    c.ffn_dim = 2 * d_model;
    c.encoder_layers = 2;
    c.decoder_layers = 3;
    c.final_logits_bias = true;
    return c;
  }
};

}  // namespace

TEST_CASE("the probe records the chosen layer's cross-attention at every incremental step", "[decode][attention]") {
  // Two sources of different lengths (the shorter padded), decoded for 5 steps with fixed tokens. Each
  // step's record must equal the row of one teacher-forced decoder pass over the same tokens (the uncached
  // attention path), for the probed layer and not another. Both are fp32 on the CPU through different
  // summation orders: 1e-5 holds probabilities at most 1; another layer differs by 1e-2 or more.
  ProbeModel m;
  const Tensor src = Tensor::from_vector<int32_t>({5, 9, 13, 4, kEos, 11, 3, kEos, kPad, kPad}, {2, 5});
  const std::vector<std::vector<int32_t>> targets = {{kPad, 7, 8, 9, 10}, {kPad, 12, 6, 6, 3}};
  for (int64_t layer : {0, 2}) {
    INFO("decoder layer " << layer);
    nn::IncrementalDecoder decoder(m.model, src, 2, DType::F32,
                                   nn::AttentionProbe{nn::AttentionProbe::Kind::DecoderCross, layer, {}});
    std::vector<Tensor> steps;
    for (size_t t = 0; t < targets[0].size(); ++t) {
      decoder.step({targets[0][t], targets[1][t]});
      steps.push_back(decoder.attention());
      REQUIRE(steps.back().shape() == Shape{2, 2, 1, 5});
    }
    autograd::NoGradGuard no_grad;
    nn::ForwardContext ctx;
    Tensor padding;
    const autograd::Variable memory = m.model.encode(src, &padding, ctx);
    std::vector<int32_t> tgt_in;
    for (const auto& t : targets) tgt_in.insert(tgt_in.end(), t.begin(), t.end());
    nn::AttentionProbe whole{nn::AttentionProbe::Kind::DecoderCross, layer, {}};
    m.model.decode(Tensor::from_vector(tgt_in, {2, 5}), memory, padding, ctx, {}, 0, &whole);
    REQUIRE(whole.probabilities.shape() == Shape{2, 2, 5, 5});
    double worst = 0, worst_sum = 0;
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t h = 0; h < 2; ++h)
        for (int64_t t = 0; t < 5; ++t) {
          double sum = 0;
          for (int64_t j = 0; j < 5; ++j) {
            const float got = steps[t].data<float>()[(b * 2 + h) * 5 + j];
            sum += got;
            testing::raise_worst(worst,
                                 std::abs(got - whole.probabilities.data<float>()[((b * 2 + h) * 5 + t) * 5 + j]));
            if (b == 1 && j >= 3) CHECK(got == 0.0f);  // padding is never attended
          }
          testing::raise_worst(worst_sum, std::abs(sum - 1));
        }
    CHECK(worst <= 1e-5);
    CHECK(worst_sum <= 1e-5);
  }
}

TEST_CASE("the probe records encoder self-attention, and refuses a layer that does not exist", "[decode][attention]") {
  ProbeModel m;
  const Tensor src = Tensor::from_vector<int32_t>({5, 9, 13, kEos, 11, kEos, kPad, kPad}, {2, 4});
  nn::IncrementalDecoder decoder(m.model, src, 2, DType::F32,
                                 nn::AttentionProbe{nn::AttentionProbe::Kind::EncoderSelf, 1, {}});
  const Tensor p = decoder.attention();
  REQUIRE(p.shape() == Shape{2, 2, 4, 4});
  double worst_sum = 0;
  for (int64_t row = 0; row < 2 * 2 * 4; ++row) {
    double sum = 0;
    for (int64_t j = 0; j < 4; ++j) sum += p.data<float>()[row * 4 + j];
    testing::raise_worst(worst_sum, std::abs(sum - 1));
  }
  CHECK(worst_sum <= 1e-5);                              // fp32 sums of 4 probabilities
  CHECK(p.data<float>()[(1 * 2 + 0) * 16 + 2] == 0.0f);  // sentence 1's padding
  decoder.step({kPad, kPad});
  CHECK(decoder.attention().shape() == Shape{2, 2, 4, 4});  // steps leave an encoder record alone

  CHECK_THROWS_WITH(nn::IncrementalDecoder(m.model, src, 2, DType::F32,
                                           nn::AttentionProbe{nn::AttentionProbe::Kind::EncoderSelf, 2, {}}),
                    Catch::Contains("encoder layer 2 does not exist; the encoder has layers 0 to 1"));
  CHECK_THROWS_WITH(nn::IncrementalDecoder(m.model, src, 2, DType::F32,
                                           nn::AttentionProbe{nn::AttentionProbe::Kind::DecoderCross, 3, {}}),
                    Catch::Contains("decoder layer 3 does not exist; the decoder has layers 0 to 2"));
  nn::IncrementalDecoder without(m.model, src, 2);
  without.step({kPad, kPad});
  CHECK_FALSE(without.attention().defined());
}

TEST_CASE("the probe on the simulated GPU in bf16 records the CPU's probabilities through reorders",
          "[decode][attention][sim]") {
  // The GPU path end to end: the kernel's lse, the cached keys as strided views copied to the host, and
  // rows regrouped between steps (sentences swapped and repeated). d_model 64 over 2 heads: the kernel's
  // head dim 32. The tolerance, 0.05 on probabilities at most 1, is bf16's: a 16-bit forward pass leaves
  // q and k a few units of 2^-8 off, this model's cross-attention scores reach ~10 (its q and k weights
  // are large), so scores move by ~0.1 and a probability p by about p (1 - p) 0.1 <= 0.025 (measured:
  // 0.023). Dropping the key padding on the GPU path alone gives 0.4 and more.
  ProbeModel cpu(64), sim(64);
  sim.store.to(Device::sim());
  const Tensor src = Tensor::from_vector<int32_t>({5, 9, 13, 4, kEos, 11, 3, kEos, kPad, kPad}, {2, 5});
  for (const auto kind : {nn::AttentionProbe::Kind::EncoderSelf, nn::AttentionProbe::Kind::DecoderCross}) {
    const nn::AttentionProbe probe{kind, 1, {}};
    nn::IncrementalDecoder on_cpu(cpu.model, src, 3, DType::F32, probe), on_sim(sim.model, src, 3, DType::BF16, probe);
    std::vector<int32_t> tokens = {kPad, kPad};
    const std::vector<std::vector<int64_t>> reorders = {{1, 0}, {0, 0, 1}, {2, 1}};
    double worst = 0;
    for (size_t t = 0; t <= reorders.size(); ++t) {
      if (t > 0) {
        on_cpu.reorder(reorders[t - 1]);
        on_sim.reorder(reorders[t - 1]);
        tokens.assign(reorders[t - 1].size(), static_cast<int32_t>(5 + t));
      }
      on_cpu.step(tokens);
      on_sim.step(tokens);
      const Tensor want = on_cpu.attention(), got = on_sim.attention();
      REQUIRE(got.device().is_cpu());
      REQUIRE(got.shape() == want.shape());
      for (int64_t n = 0; n < got.numel(); ++n)
        testing::raise_worst(worst, std::abs(got.data<float>()[n] - want.data<float>()[n]));
    }
    INFO("worst difference " << worst);
    CHECK(worst <= 0.05);
    CHECK(worst > 0);  // the 16-bit path really ran
  }
}

namespace {

// The teacher-forced cross-attention of decoder layer `layer` for `source` and decoder inputs `tgt_in`:
// rows [Lt][Ls] of head `head`, or of the mean over heads when head < 0.
std::vector<std::vector<double>> teacher_forced_attention(const nn::Transformer& model,
                                                          const std::vector<int32_t>& source,
                                                          const std::vector<int32_t>& tgt_in, int64_t layer,
                                                          int64_t head) {
  autograd::NoGradGuard no_grad;
  nn::ForwardContext ctx;
  Tensor padding;
  const int64_t Ls = static_cast<int64_t>(source.size()), Lt = static_cast<int64_t>(tgt_in.size());
  const autograd::Variable memory = model.encode(Tensor::from_vector(source, {1, Ls}), &padding, ctx);
  nn::AttentionProbe probe{nn::AttentionProbe::Kind::DecoderCross, layer, {}};
  model.decode(Tensor::from_vector(tgt_in, {1, Lt}), memory, padding, ctx, {}, 0, &probe);
  const int64_t H = probe.probabilities.size(1);
  std::vector<std::vector<double>> rows(Lt, std::vector<double>(Ls, 0.0));
  for (int64_t h = 0; h < H; ++h) {
    if (head >= 0 && h != head) continue;
    for (int64_t t = 0; t < Lt; ++t)
      for (int64_t j = 0; j < Ls; ++j)
        rows[t][j] += probe.probabilities.data<float>()[(h * Lt + t) * Ls + j] / (head >= 0 ? 1.0 : double(H));
  }
  return rows;
}

}  // namespace

TEST_CASE("beam search gives each hypothesis the attention of its own decoding steps", "[decode][attention]") {
  // Every hypothesis of the n-best lists (beam 3, so rows are reordered and hypotheses of one sentence
  // share prefixes) must carry exactly the rows of a teacher-forced pass over its own tokens: another
  // hypothesis's rows, a row of the wrong step or of another sentence would differ. Tolerance as in the
  // probe test (fp32, different summation orders: 1e-5). Decoder layer 0: its queries depend most directly
  // on the tokens, so rows of different prefixes differ by 1e-3 and more.
  //
  // The untrained model repeats one token in every beam, whose rows would be alike. So the output bias
  // makes two tokens nearly equally likely everywhere (hypotheses then differ in their first token and
  // continue from different parents), and in a second run favours eos (hypotheses end with it, and carry
  // its row). Both situations are checked to have occurred.
  ProbeModel m;
  const std::vector<std::vector<int32_t>> sources = {{5, 9, 13, 4, 17, 8, kEos}, {11, 3, kEos}, {6, 6, 14, kEos}};
  float* bias = m.store.get("final_logits_bias").value().data<float>();
  const std::vector<float> original(bias, bias + m.config.vocab_size);
  size_t hypotheses = 0, ended_by_eos = 0, diverging_sentences = 0;
  for (const std::vector<std::pair<int32_t, float>>& push :
       {std::vector<std::pair<int32_t, float>>{{10, 4.0f}, {11, 5.0f}},
        std::vector<std::pair<int32_t, float>>{{11, 5.0f}, {kEos, 3.0f}}}) {
    std::copy(original.begin(), original.end(), bias);
    for (const auto& [token, value] : push) bias[token] += value;
    for (int64_t head : {-1, 1}) {
      INFO("head " << head << ", eos pushed: " << (push.back().first == kEos));
      decode::SearchOptions options;
      options.beam_size = 3;
      options.n_best = 3;
      options.max_length = 9;
      const auto plain = decode::beam_search(m.model, sources, options);
      options.attention = decode::AttentionRecord{nn::AttentionProbe::Kind::DecoderCross, 0, head};
      const auto recorded = decode::beam_search(m.model, sources, options);
      REQUIRE(recorded.size() == sources.size());
      double worst = 0;
      for (size_t i = 0; i < sources.size(); ++i) {
        REQUIRE(recorded[i].size() == plain[i].size());
        std::set<int32_t> first_tokens;
        for (size_t k = 0; k < recorded[i].size(); ++k) {
          const decode::Hypothesis& h = recorded[i][k];
          CHECK(h.tokens == plain[i][k].tokens);  // recording changes nothing in the search
          CHECK(h.score == plain[i][k].score);
          CHECK(plain[i][k].attention.empty());
          // One row per generated token, plus eos's when the hypothesis ended with it.
          REQUIRE((h.attention.size() == h.tokens.size() || h.attention.size() == h.tokens.size() + 1));
          ended_by_eos += h.attention.size() > h.tokens.size();
          if (!h.tokens.empty()) first_tokens.insert(h.tokens.front());
          std::vector<int32_t> tgt_in{kPad};
          tgt_in.insert(tgt_in.end(), h.tokens.begin(), h.tokens.end());
          tgt_in.resize(h.attention.size());  // the inputs of the steps that produced the rows
          const auto want = teacher_forced_attention(m.model, sources[i], tgt_in, 0, head);
          for (size_t t = 0; t < want.size(); ++t) {
            REQUIRE(h.attention[t].size() == sources[i].size());
            for (size_t j = 0; j < want[t].size(); ++j)
              testing::raise_worst(worst, std::abs(h.attention[t][j] - want[t][j]));
          }
          ++hypotheses;
        }
        diverging_sentences += first_tokens.size() > 1;
      }
      CHECK(worst <= 1e-5);
    }
  }
  CHECK(hypotheses == 36);
  CHECK(ended_by_eos > 0);  // both kinds of hypotheses were checked
  CHECK(ended_by_eos < hypotheses);
  CHECK(diverging_sentences > 0);
}

TEST_CASE("beam search records encoder self-attention per sentence, without its padding", "[decode][attention]") {
  ProbeModel m;
  const std::vector<std::vector<int32_t>> sources = {{5, 9, 13, 4, kEos}, {11, kEos}};
  decode::SearchOptions options;
  options.beam_size = 2;
  options.max_length = 4;
  options.attention = decode::AttentionRecord{nn::AttentionProbe::Kind::EncoderSelf, 0, -1};
  const auto found = decode::beam_search(m.model, sources, options);
  for (size_t i = 0; i < sources.size(); ++i) {
    const auto& rows = found[i].front().attention;
    REQUIRE(rows.size() == sources[i].size());
    for (const auto& row : rows) {
      REQUIRE(row.size() == sources[i].size());
      double sum = 0;
      for (float w : row) sum += w;
      CHECK(std::abs(sum - 1) <= 1e-5);  // fp32 sums of at most 5 probabilities
    }
  }
  options.attention->head = 2;
  CHECK_THROWS_WITH(decode::beam_search(m.model, sources, options),
                    Catch::Contains("attention head 2 does not exist; the model has 2"));
}
