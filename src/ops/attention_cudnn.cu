// cuDNN's fused attention (attention_cudnn.h): the graphs, their plans, and their execution.
//
// A graph is a list of backend operations over tensor descriptors; cuDNN recognises the list as scaled
// dot-product attention by its shape, so each builder below writes it op for op as cuDNN's frontend
// lowers its SDPA nodes (virtual fp32 intermediates, Kᵀ and Vᵀ as strided views, the probabilities cast
// to the input type before the second product, dQ accumulated in fp32 and converted at the end). A
// graph that deviates is refused at plan time; tests/test_attention_cudnn.cc asks cuDNN's heuristics,
// without a GPU, for configurations for every variant and requires at least one.
#include <cudnn.h>

#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "core/per_device.h"
#include "heed/core/error.h"
#include "heed/core/stream.h"
#include "heed/ops/elementwise.h"
#include "kernels/common/cuda_check.h"
#include "ops/attention_cudnn.h"

#define HEED_CUDNN_CHECK(call) HEED_CHECK_CALL("cuDNN", #call, call, CUDNN_STATUS_SUCCESS, cudnnGetErrorString)

namespace heed::ops::cudnn {

namespace {

// A backend descriptor, destroyed with its last owner.
class Desc {
 public:
  explicit Desc(cudnnBackendDescriptorType_t type) {
    cudnnBackendDescriptor_t d = nullptr;
    HEED_CUDNN_CHECK(cudnnBackendCreateDescriptor(type, &d));
    // A failed destroy leaves nothing to undo, and a destructor cannot report it.
    ptr_ = std::shared_ptr<void>(
        d, [](void* p) { (void)cudnnBackendDestroyDescriptor(static_cast<cudnnBackendDescriptor_t>(p)); });
  }
  cudnnBackendDescriptor_t get() const { return static_cast<cudnnBackendDescriptor_t>(ptr_.get()); }
  Desc& set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, int64_t count, const void* values) {
    HEED_CUDNN_CHECK(cudnnBackendSetAttribute(get(), name, type, count, values));
    return *this;
  }
  Desc& set(cudnnBackendAttributeName_t name, const Desc& d) {
    cudnnBackendDescriptor_t raw = d.get();
    return set(name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &raw);
  }
  Desc& finalize() {
    HEED_CUDNN_CHECK(cudnnBackendFinalize(get()));
    return *this;
  }

 private:
  std::shared_ptr<void> ptr_;
};

// The non-virtual tensors, by the ids the variant pack gives their addresses under.
enum Uid : int64_t {
  kQ = 1, kK, kV, kO, kStats, kScale, kBias, kNegInf, kDO, kDQ, kDK, kDV, kSoftmaxSum, kDQAccum, kSeed, kOffset,
  kDropoutScale, kKeepScale, kFirstVirtual = 100
};

using Dims = std::vector<int64_t>;

class GraphBuilder {
 public:
  Desc tensor(const Dims& dims, const Dims& strides, cudnnDataType_t type, int64_t uid) {
    return make_tensor(dims, strides, type, uid, false, false);
  }
  Desc virtual_tensor(const Dims& dims, const Dims& strides, cudnnDataType_t type) {
    return make_tensor(dims, strides, type, next_virtual_++, true, false);
  }
  // A host scalar passed by value at execution.
  Desc scalar(cudnnDataType_t type, int64_t uid) { return make_tensor({1, 1, 1, 1}, {1, 1, 1, 1}, type, uid, false, true); }

  void pointwise(cudnnPointwiseMode_t mode, const Desc& x, const Desc* b, const Desc* t, const Desc& y,
                 int64_t axis = -1) {
    const cudnnDataType_t precision = CUDNN_DATA_FLOAT;
    Desc pw(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    pw.set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode)
        .set(CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &precision);
    if (axis >= 0) pw.set(CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis);
    pw.finalize();
    Desc op(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
    op.set(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw).set(CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x);
    if (b) op.set(CUDNN_ATTR_OPERATION_POINTWISE_BDESC, *b);
    if (t) op.set(CUDNN_ATTR_OPERATION_POINTWISE_TDESC, *t);
    ops_.push_back(op.set(CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y).finalize());
  }
  void reduction(cudnnReduceTensorOp_t mode, const Desc& x, const Desc& y) {
    const cudnnDataType_t precision = CUDNN_DATA_FLOAT;
    Desc r(CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
    r.set(CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &mode)
        .set(CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &precision)
        .finalize();
    Desc op(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
    ops_.push_back(op.set(CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x)
                       .set(CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y)
                       .set(CUDNN_ATTR_OPERATION_REDUCTION_DESC, r)
                       .finalize());
  }
  void matmul(const Desc& a, const Desc& b, const Desc& c) {
    const cudnnDataType_t precision = CUDNN_DATA_FLOAT;
    Desc m(CUDNN_BACKEND_MATMUL_DESCRIPTOR);
    m.set(CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &precision).finalize();
    Desc op(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
    ops_.push_back(op.set(CUDNN_ATTR_OPERATION_MATMUL_ADESC, a)
                       .set(CUDNN_ATTR_OPERATION_MATMUL_BDESC, b)
                       .set(CUDNN_ATTR_OPERATION_MATMUL_CDESC, c)
                       .set(CUDNN_ATTR_OPERATION_MATMUL_DESC, m)
                       .finalize());
  }
  // y: x's elements under y's dims and strides (a transpose, for cuDNN's pattern).
  void reshape(const Desc& x, const Desc& y) {
    Desc op(CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR);
    ops_.push_back(op.set(CUDNN_ATTR_OPERATION_RESHAPE_XDESC, x).set(CUDNN_ATTR_OPERATION_RESHAPE_YDESC, y).finalize());
  }
  void bernoulli(const Desc& y, const Desc& seed, const Desc& offset, double keep) {
    const cudnnRngDistribution_t distribution = CUDNN_RNG_DISTRIBUTION_BERNOULLI;
    Desc r(CUDNN_BACKEND_RNG_DESCRIPTOR);
    r.set(CUDNN_ATTR_RNG_DISTRIBUTION, CUDNN_TYPE_RNG_DISTRIBUTION, 1, &distribution)
        .set(CUDNN_ATTR_RNG_BERNOULLI_DIST_PROBABILITY, CUDNN_TYPE_DOUBLE, 1, &keep)
        .finalize();
    Desc op(CUDNN_BACKEND_OPERATION_RNG_DESCRIPTOR);
    ops_.push_back(op.set(CUDNN_ATTR_OPERATION_RNG_YDESC, y)
                       .set(CUDNN_ATTR_OPERATION_RNG_SEED, seed)
                       .set(CUDNN_ATTR_OPERATION_RNG_OFFSET_DESC, offset)
                       .set(CUDNN_ATTR_OPERATION_RNG_DESC, r)
                       .finalize());
  }

  Desc finalize() const {
    std::vector<cudnnBackendDescriptor_t> raw;
    for (const Desc& op : ops_) raw.push_back(op.get());
    Desc graph(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    return graph.set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, static_cast<int64_t>(raw.size()), raw.data())
        .finalize();
  }

 private:
  Desc make_tensor(const Dims& dims, const Dims& strides, cudnnDataType_t type, int64_t uid, bool is_virtual,
                   bool by_value) {
    const int64_t alignment = 16;
    Desc d(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    d.set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type)
        .set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, static_cast<int64_t>(dims.size()), dims.data())
        .set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, static_cast<int64_t>(strides.size()), strides.data())
        .set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid)
        .set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment)
        .set(CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual);
    if (by_value) d.set(CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &by_value);
    return d.finalize();
  }

  std::vector<Desc> ops_;
  int64_t next_virtual_ = kFirstVirtual;
};

// The shapes every graph of a problem shares.
struct Layout {
  int64_t b, h, sq, skv, d;
  cudnnDataType_t io;
  Dims q_strides() const { return {sq * h * d, d, h * d, 1}; }   // [B, Lq, H, D] storage
  Dims kv_strides() const { return {skv * h * d, d, h * d, 1}; }  // [B, Lk, H, D] storage
  Dims kt_strides() const { return {skv * h * d, d, 1, h * d}; }  // the same storage seen as [B, H, D, Lk]
  Dims scores() const { return {b, h, sq, skv}; }
  Dims score_strides() const { return {h * sq * skv, sq * skv, skv, 1}; }
  Dims rows() const { return {b, h, sq, 1}; }
  Dims row_strides() const { return {h * sq, sq, 1, 1}; }
};

Layout layout_of(const SdpaProblem& p) {
  return {p.batch, p.heads, p.len_q, p.len_k, p.head_dim, p.dtype == DType::BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_HALF};
}

// scale * Q Kᵀ, the padding bias and the causal mask: the scores both passes start from.
Desc masked_scores(GraphBuilder& g, const SdpaProblem& p, const Layout& l, const Desc& q, const Desc& kt,
                   const Desc& scale, bool subtract_stats) {
  const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
  auto scores = [&] { return g.virtual_tensor(l.scores(), l.score_strides(), f32); };
  Desc s = scores();
  g.matmul(q, kt, s);
  Desc last = scores();
  g.pointwise(CUDNN_POINTWISE_MUL, s, &scale, nullptr, last);
  if (p.padding) {
    const Desc bias = g.tensor({l.b, 1, 1, l.skv}, {l.skv, l.skv, l.skv, 1}, f32, kBias);
    Desc biased = scores();
    g.pointwise(CUDNN_POINTWISE_ADD, last, &bias, nullptr, biased);
    last = biased;
  }
  if (subtract_stats) {  // the backward pass: S - logsumexp, whose exp is P
    const Desc stats = g.tensor(l.rows(), l.row_strides(), f32, kStats);
    Desc shifted = scores();
    g.pointwise(CUDNN_POINTWISE_SUB, last, &stats, nullptr, shifted);
    last = shifted;
  }
  if (p.causal) {  // keep key j <= query i (len_q == len_k, so the diagonal starts at the top left)
    const Desc row = g.virtual_tensor(l.scores(), l.score_strides(), CUDNN_DATA_INT32);
    const Desc col = g.virtual_tensor(l.scores(), l.score_strides(), CUDNN_DATA_INT32);
    g.pointwise(CUDNN_POINTWISE_GEN_INDEX, last, nullptr, nullptr, row, 2);
    g.pointwise(CUDNN_POINTWISE_GEN_INDEX, last, nullptr, nullptr, col, 3);
    const Desc keep = g.virtual_tensor(l.scores(), l.score_strides(), CUDNN_DATA_BOOLEAN);
    g.pointwise(CUDNN_POINTWISE_CMP_GE, row, &col, nullptr, keep);
    const Desc neg_inf = g.scalar(f32, kNegInf);
    Desc masked = scores();
    g.pointwise(CUDNN_POINTWISE_BINARY_SELECT, last, &neg_inf, &keep, masked);
    last = masked;
  }
  return last;
}

struct DropoutTensors {
  Desc mask, scale;
};

std::optional<DropoutTensors> dropout_mask(GraphBuilder& g, const SdpaProblem& p, const Layout& l, double keep) {
  if (!p.dropout) return std::nullopt;
  const Desc seed = g.tensor({1, 1, 1, 1}, {1, 1, 1, 1}, CUDNN_DATA_INT64, kSeed);
  const Desc offset = g.tensor({1, 1, 1, 1}, {1, 1, 1, 1}, CUDNN_DATA_INT64, kOffset);
  Desc mask = g.virtual_tensor(l.scores(), l.score_strides(), CUDNN_DATA_FLOAT);
  g.bernoulli(mask, seed, offset, keep);
  return DropoutTensors{mask, g.scalar(CUDNN_DATA_FLOAT, kDropoutScale)};
}

// O = dropout(softmax(masked scores)) V, with the row logsumexp saved as Stats.
Desc forward_graph(const SdpaProblem& p, double keep) {
  const Layout l = layout_of(p);
  const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
  GraphBuilder g;
  const Desc q = g.tensor({l.b, l.h, l.sq, l.d}, l.q_strides(), l.io, kQ);
  const Desc kt = g.tensor({l.b, l.h, l.d, l.skv}, l.kt_strides(), l.io, kK);
  const Desc v = g.tensor({l.b, l.h, l.skv, l.d}, l.kv_strides(), l.io, kV);
  const Desc o = g.tensor({l.b, l.h, l.sq, l.d}, l.q_strides(), l.io, kO);
  const Desc stats = g.tensor(l.rows(), l.row_strides(), f32, kStats);
  const Desc scale = g.scalar(f32, kScale);
  const Desc s = masked_scores(g, p, l, q, kt, scale, false);

  const Desc max = g.virtual_tensor(l.rows(), l.row_strides(), f32);
  g.reduction(CUDNN_REDUCE_TENSOR_MAX, s, max);
  const Desc shifted = g.virtual_tensor(l.scores(), l.score_strides(), f32);
  g.pointwise(CUDNN_POINTWISE_SUB, s, &max, nullptr, shifted);
  const Desc e = g.virtual_tensor(l.scores(), l.score_strides(), f32);
  g.pointwise(CUDNN_POINTWISE_EXP, shifted, nullptr, nullptr, e);
  const Desc sum = g.virtual_tensor(l.rows(), l.row_strides(), f32);
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, e, sum);
  const Desc log_sum = g.virtual_tensor(l.rows(), l.row_strides(), f32);
  g.pointwise(CUDNN_POINTWISE_LOG, sum, nullptr, nullptr, log_sum);
  g.pointwise(CUDNN_POINTWISE_ADD, max, &log_sum, nullptr, stats);

  const std::optional<DropoutTensors> drop = dropout_mask(g, p, l, keep);
  // The second product reads P in the input type, as the tensor cores do.
  const Desc probs = g.virtual_tensor(l.scores(), l.score_strides(), drop ? f32 : l.io);
  g.pointwise(CUDNN_POINTWISE_DIV, e, &sum, nullptr, probs);
  Desc last = probs;
  if (drop) {
    const Desc kept = g.virtual_tensor(l.scores(), l.score_strides(), f32);
    g.pointwise(CUDNN_POINTWISE_MUL, probs, &drop->mask, nullptr, kept);
    last = g.virtual_tensor(l.scores(), l.score_strides(), l.io);
    g.pointwise(CUDNN_POINTWISE_MUL, kept, &drop->scale, nullptr, last);
  }
  g.matmul(last, v, o);
  return g.finalize();
}

// dQ, dK, dV from dO, with P recomputed from Stats. softmax_sum = rowsum(dO o O) * keep (the D of
// FlashAttention-2, undoing dropout's scale) and dQ's fp32 accumulator live in the workspace Heed hands in.
Desc backward_graph(const SdpaProblem& p, double keep) {
  const Layout l = layout_of(p);
  const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
  GraphBuilder g;
  const Desc q = g.tensor({l.b, l.h, l.sq, l.d}, l.q_strides(), l.io, kQ);
  const Desc kt = g.tensor({l.b, l.h, l.d, l.skv}, l.kt_strides(), l.io, kK);
  const Desc vt = g.tensor({l.b, l.h, l.d, l.skv}, l.kt_strides(), l.io, kV);
  const Desc o = g.tensor({l.b, l.h, l.sq, l.d}, l.q_strides(), l.io, kO);
  const Desc d_o = g.tensor({l.b, l.h, l.sq, l.d}, l.q_strides(), l.io, kDO);
  const Desc dq = g.tensor({l.b, l.h, l.sq, l.d}, l.q_strides(), l.io, kDQ);
  const Desc dk = g.tensor({l.b, l.h, l.skv, l.d}, l.kv_strides(), l.io, kDK);
  const Desc dv = g.tensor({l.b, l.h, l.skv, l.d}, l.kv_strides(), l.io, kDV);
  const Desc softmax_sum = g.tensor(l.rows(), l.row_strides(), f32, kSoftmaxSum);
  const Desc dq_accum = g.tensor({l.b, l.h, l.sq, l.d}, {l.h * l.sq * l.d, l.sq * l.d, l.d, 1}, f32, kDQAccum);
  const Desc scale = g.scalar(f32, kScale);
  const Desc keep_scale = g.scalar(f32, kKeepScale);
  const std::optional<DropoutTensors> drop = dropout_mask(g, p, l, keep);
  auto scores = [&] { return g.virtual_tensor(l.scores(), l.score_strides(), f32); };

  const Desc d_o_o = g.virtual_tensor({l.b, l.h, l.sq, l.d}, {l.h * l.sq * l.d, l.sq * l.d, l.h * l.d, 1}, f32);
  g.pointwise(CUDNN_POINTWISE_MUL, d_o, &o, nullptr, d_o_o);
  const Desc row_dot = g.virtual_tensor(l.rows(), l.row_strides(), f32);
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, d_o_o, row_dot);
  g.pointwise(CUDNN_POINTWISE_MUL, row_dot, &keep_scale, nullptr, softmax_sum);

  const Desc shifted = masked_scores(g, p, l, q, kt, scale, true);
  const Desc probs = scores();
  g.pointwise(CUDNN_POINTWISE_EXP, shifted, nullptr, nullptr, probs);
  Desc dropped = probs;
  if (drop) {
    const Desc kept = scores();
    g.pointwise(CUDNN_POINTWISE_MUL, probs, &drop->mask, nullptr, kept);
    dropped = scores();
    g.pointwise(CUDNN_POINTWISE_MUL, kept, &drop->scale, nullptr, dropped);
  }
  const Dims transposed_strides = {l.h * l.sq * l.skv, l.sq * l.skv, 1, l.skv};
  const Desc probs_t = g.virtual_tensor({l.b, l.h, l.skv, l.sq}, transposed_strides, l.io);
  g.reshape(dropped, probs_t);
  g.matmul(probs_t, d_o, dv);

  Desc dp = scores();
  g.matmul(d_o, vt, dp);
  if (drop) {
    const Desc kept = scores();
    g.pointwise(CUDNN_POINTWISE_MUL, dp, &drop->mask, nullptr, kept);
    dp = kept;
  }
  const Desc centred = scores();
  g.pointwise(CUDNN_POINTWISE_SUB, dp, &softmax_sum, nullptr, centred);
  Desc ds = scores();
  g.pointwise(CUDNN_POINTWISE_MUL, centred, &probs, nullptr, ds);
  if (drop) {
    const Desc rescaled = scores();
    g.pointwise(CUDNN_POINTWISE_MUL, ds, &drop->scale, nullptr, rescaled);
    ds = rescaled;
  }
  const Desc ds_scaled = scores();
  g.pointwise(CUDNN_POINTWISE_MUL, ds, &scale, nullptr, ds_scaled);
  const Desc ds_t = g.virtual_tensor({l.b, l.h, l.skv, l.sq}, transposed_strides, l.io);
  g.reshape(ds_scaled, ds_t);
  g.matmul(ds_t, q, dk);
  const Desc k = g.virtual_tensor({l.b, l.h, l.skv, l.d}, l.kv_strides(), f32);
  g.reshape(kt, k);
  g.matmul(ds_scaled, k, dq_accum);
  g.pointwise(CUDNN_POINTWISE_IDENTITY, dq_accum, nullptr, nullptr, dq);
  return g.finalize();
}

double keep_probability(const AttentionOptions& opt) { return 1.0 - static_cast<double>(opt.dropout_p); }

Desc graph_for(const SdpaProblem& p, bool backward, double keep) {
  return backward ? backward_graph(p, keep) : forward_graph(p, keep);
}

// Engine configurations cuDNN's heuristics offer for `graph` on `device` (a device-properties descriptor);
// only those cuDNN can build a plan from are returned.
std::vector<Desc> engine_configs(const Desc& graph, const Desc& device) {
  const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
  Desc heuristics(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
  heuristics.set(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph)
      .set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode)
      .set(CUDNN_ATTR_ENGINEHEUR_DEVICEPROP, device)
      .finalize();
  int64_t offered = 0, returned = 0;
  HEED_CUDNN_CHECK(cudnnBackendGetAttribute(heuristics.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                            CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &offered, nullptr));
  std::vector<Desc> configs;
  std::vector<cudnnBackendDescriptor_t> raw;
  for (int64_t i = 0; i < offered; ++i) {
    configs.emplace_back(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    raw.push_back(configs.back().get());
  }
  HEED_CUDNN_CHECK(cudnnBackendGetAttribute(heuristics.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                            CUDNN_TYPE_BACKEND_DESCRIPTOR, offered, &returned, raw.data()));
  configs.erase(configs.begin() + returned, configs.end());
  return configs;
}

// An execution plan and the workspace it asks for.
struct Plan {
  Desc plan;
  int64_t workspace_bytes = 0;
};

// Everything a device needs to run the graphs: a handle, its properties, and the plans made so far.
struct DeviceState {
  cudnnHandle_t handle = nullptr;
  std::optional<Desc> properties;
  std::map<std::string, Plan> plans;
  std::mutex mutex;
};

DeviceState& state_for(int device) {
  static auto& states = *new PerDevice<DeviceState>([](int index) {
    auto s = std::make_unique<DeviceState>();
    HEED_CUDA_CHECK(cudaSetDevice(index));
    HEED_CUDNN_CHECK(cudnnCreate(&s->handle));
    // Its graphs run on the compute stream, where every kernel goes.
    const Stream compute = Stream::compute(Device::cuda(index));
    HEED_CUDNN_CHECK(cudnnSetStream(s->handle, static_cast<cudaStream_t>(compute.handle())));
    Desc properties(CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR);
    s->properties = properties.set(CUDNN_ATTR_DEVICEPROP_HANDLE, CUDNN_TYPE_HANDLE, 1, &s->handle).finalize();
    return s;
  });
  return states.get(device);
}

const Plan& plan_for(DeviceState& s, const SdpaProblem& p, bool backward, double keep) {
  const std::string key = fmt::format("{} {} {} {} {} {} {} {} {} {} {}", backward, p.batch, p.heads, p.len_q, p.len_k,
                                      p.head_dim, dtype_name(p.dtype), p.causal, p.padding, p.dropout, keep);
  if (auto it = s.plans.find(key); it != s.plans.end()) return it->second;
  const Desc graph = graph_for(p, backward, keep);
  std::optional<Plan> chosen;
  for (const Desc& config : engine_configs(graph, *s.properties)) {
    Desc plan(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
    plan.set(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &s.handle)
        .set(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, config);
    if (cudnnBackendFinalize(plan.get()) != CUDNN_STATUS_SUCCESS) continue;  // try the next configuration
    int64_t workspace = 0, count = 0;
    HEED_CUDNN_CHECK(cudnnBackendGetAttribute(plan.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1,
                                              &count, &workspace));
    chosen = Plan{plan, workspace};
    break;
  }
  HEED_CHECK(chosen.has_value(), "training.attention: cudnn: cuDNN {} has no engine for the attention {} pass of B={} "
             "H={} Lq={} Lk={} D={} {}{}{}{} (use fused)", cudnnGetVersion(), backward ? "backward" : "forward",
             p.batch, p.heads, p.len_q, p.len_k, p.head_dim, dtype_name(p.dtype), p.causal ? " causal" : "",
             p.padding ? " padded" : "", p.dropout ? " dropout" : "");
  return s.plans.emplace(key, *chosen).first->second;
}

// (uid, address) pairs for a variant pack; by-value scalars give the address of the host value.
using Bindings = std::vector<std::pair<int64_t, const void*>>;

void execute(DeviceState& s, const Plan& plan, const Bindings& bindings, Device device) {
  std::vector<int64_t> uids;
  std::vector<void*> pointers;
  for (const auto& [uid, ptr] : bindings) {
    uids.push_back(uid);
    pointers.push_back(const_cast<void*>(ptr));
  }
  const Tensor workspace = Tensor::empty({std::max<int64_t>(plan.workspace_bytes, 1)}, DType::U8, device);
  void* workspace_ptr = workspace.raw_data();
  Desc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
  pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, static_cast<int64_t>(uids.size()), uids.data())
      .set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, static_cast<int64_t>(pointers.size()), pointers.data())
      .set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace_ptr)
      .finalize();
  HEED_CUDNN_CHECK(cudnnBackendExecute(s.handle, plan.plan.get(), pack.get()));
}

SdpaProblem problem_of(const Tensor& q, const Tensor& k, const AttentionOptions& opt) {
  return {q.size(0), q.size(1), q.size(2), k.size(2), q.size(3), q.dtype(), opt.causal, opt.key_padding.defined(),
          opt.dropout_p > 0};
}

// The storage layout the graphs assume ([B, L, H, D] seen as [B, H, L, D]), checked rather than copied into.
void check_heads_layout(const Tensor& t, const char* what) {
  const int64_t len = t.size(2), heads = t.size(1), dim = t.size(3);
  HEED_CHECK(t.stride(3) == 1 && t.stride(1) == dim && t.stride(2) == heads * dim && t.stride(0) == len * heads * dim,
             "attention (cudnn): {} must be [B, L, H, D] storage seen as [B, H, L, D], got strides ({}, {}, {}, {})",
             what, t.stride(0), t.stride(1), t.stride(2), t.stride(3));
}

void check_problem(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& opt) {
  HEED_CHECK(q.device().is_cuda(), "training.attention: cudnn runs on a CUDA device, not {} (use fused)", q.device().str());
  HEED_CHECK(q.dtype() == DType::BF16 || q.dtype() == DType::F16,
             "training.attention: cudnn needs bf16 or fp16 activations, got {}", dtype_name(q.dtype()));
  HEED_CHECK(q.size(3) % 8 == 0 && q.size(3) <= 128, "training.attention: cudnn needs a head dim that is a multiple "
             "of 8, at most 128, got {}", q.size(3));
  HEED_CHECK(!opt.causal || q.size(2) == k.size(2), "training.attention: cudnn masks causally only when queries and "
             "keys have one length (got {} and {})", q.size(2), k.size(2));
  check_heads_layout(q, "q");
  check_heads_layout(k, "k");
  check_heads_layout(v, "v");
}

// The padding bias [B, Lk]: 0 for a key, -1e30 for padding (finite, so that no row turns into NaN).
Tensor padding_bias(const AttentionOptions& opt) { return ops::scale(opt.key_padding.to(DType::F32), -1e30f); }

// cuDNN's generator state from Heed's dropout key: the same key (a forward pass and its backward) gives
// the same mask.
Tensor dropout_seed(const AttentionOptions& opt, Device device) {
  const uint64_t seed = opt.dropout_key.seed * 0x9E3779B97F4A7C15ull ^ opt.dropout_key.step * 0xC2B2AE3D27D4EB4Full ^
                        opt.dropout_key.tensor_id;
  return Tensor::from_vector(std::vector<int64_t>{static_cast<int64_t>(seed >> 1)}, {1}).to(device);
}

Tensor heads_like(const Tensor& x, int64_t len) {
  return Tensor::empty({x.size(0), len, x.size(1), x.size(3)}, x.dtype(), x.device()).transpose(1, 2);
}


// The inputs both passes share beyond q, k, v: the scale and whatever the mask and dropout need. By-value
// scalars are read at execution, so they live here until then.
struct SharedInputs {
  SharedInputs(const SdpaProblem& p, const AttentionOptions& opt, Device device)
      : scale(opt.scale), dropout_scale(1.0f / (1.0f - opt.dropout_p)) {
    if (p.padding) bias = padding_bias(opt);
    if (p.dropout) {
      seed = dropout_seed(opt, device);
      offset = Tensor::from_vector(std::vector<int64_t>{0}, {1}).to(device);
    }
  }
  void bind(const SdpaProblem& p, Bindings& b) const {
    b.emplace_back(kScale, &scale);
    if (p.padding) b.emplace_back(kBias, bias.raw_data());
    if (p.causal) b.emplace_back(kNegInf, &neg_inf);
    if (p.dropout) {
      b.emplace_back(kSeed, seed.raw_data());
      b.emplace_back(kOffset, offset.raw_data());
      b.emplace_back(kDropoutScale, &dropout_scale);
    }
  }
  float scale, dropout_scale, neg_inf = -INFINITY;
  Tensor bias, seed, offset;
};

}  // namespace

AttentionResult attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& opt) {
  check_problem(q, k, v, opt);
  const SdpaProblem p = problem_of(q, k, opt);
  DeviceState& s = state_for(q.device().index);
  std::lock_guard lock(s.mutex);
  const Plan& plan = plan_for(s, p, false, keep_probability(opt));
  AttentionResult r{heads_like(q, q.size(2)), Tensor::empty({q.size(0), q.size(1), q.size(2)}, DType::F32, q.device())};
  const SharedInputs shared(p, opt, q.device());
  Bindings bindings = {{kQ, q.raw_data()}, {kK, k.raw_data()}, {kV, v.raw_data()}, {kO, r.out.raw_data()},
                       {kStats, r.lse.raw_data()}};
  shared.bind(p, bindings);
  execute(s, plan, bindings, q.device());
  return r;
}

void attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                        const AttentionResult& fwd, const AttentionOptions& opt, const AttentionGrads& g) {
  check_problem(q, k, v, opt);
  check_heads_layout(dout, "dout");
  check_heads_layout(fwd.out, "out");
  check_heads_layout(g.dq, "dq");
  check_heads_layout(g.dk, "dk");
  check_heads_layout(g.dv, "dv");
  const SdpaProblem p = problem_of(q, k, opt);
  DeviceState& s = state_for(q.device().index);
  std::lock_guard lock(s.mutex);
  const Plan& plan = plan_for(s, p, true, keep_probability(opt));
  const Tensor softmax_sum = Tensor::empty({q.size(0), q.size(1), q.size(2)}, DType::F32, q.device());
  const Tensor dq_accum = Tensor::zeros({q.size(0), q.size(1), q.size(2), q.size(3)}, DType::F32, q.device());
  const float keep_scale = 1.0f - opt.dropout_p;
  const SharedInputs shared(p, opt, q.device());
  Bindings bindings = {{kQ, q.raw_data()},       {kK, k.raw_data()},           {kV, v.raw_data()},
                       {kO, fwd.out.raw_data()}, {kStats, fwd.lse.raw_data()}, {kDO, dout.raw_data()},
                       {kDQ, g.dq.raw_data()},   {kDK, g.dk.raw_data()},       {kDV, g.dv.raw_data()},
                       {kSoftmaxSum, softmax_sum.raw_data()}, {kDQAccum, dq_accum.raw_data()},
                       {kKeepScale, &keep_scale}};
  shared.bind(p, bindings);
  execute(s, plan, bindings, q.device());
}

int64_t deviceless_engine_configs(const SdpaProblem& problem, bool backward, const std::string& device_json) {
  Desc device(CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR);
  device.set(CUDNN_ATTR_DEVICEPROP_JSON_REPRESENTATION, CUDNN_TYPE_CHAR, static_cast<int64_t>(device_json.size()),
             device_json.data())
      .finalize();
  return static_cast<int64_t>(engine_configs(graph_for(problem, backward, problem.dropout ? 0.9 : 1.0), device).size());
}

}  // namespace heed::ops::cudnn
