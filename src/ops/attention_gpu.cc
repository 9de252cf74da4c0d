// Fused attention on the GPU path: kernels/attention_forward.cu and attention_backward.cu (or, where the
// options ask for it, cuDNN's: attention_cudnn.cu), reading q, k, v
// and dout through their strides and writing the results in the [B, L, H, D] storage that
// heed/ops/attention.h promises.
#include "core/kernel_args.h"
#include "kernels/attention.h"
#include "ops/attention_backends.h"
#ifdef HEED_WITH_CUDNN
#include "ops/attention_cudnn.h"
#endif

namespace heed::ops::gpu {

namespace {

kernels::AttentionStrides strides_of(const Tensor& t) { return {t.stride(0), t.stride(1), t.stride(2)}; }

// A fresh [B, H, L, D] tensor stored as [B, L, H, D].
Tensor heads_like(const Tensor& x, int64_t len) {
  return Tensor::empty({x.size(0), len, x.size(1), x.size(3)}, x.dtype(), x.device()).transpose(1, 2);
}

kernels::AttentionArgs args_of(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& opt) {
  kernels::AttentionArgs a;
  a.dtype = q.dtype() == DType::BF16 ? kernels::Half::BF16 : kernels::Half::FP16;
  a.batch = static_cast<int>(q.size(0));
  a.heads = static_cast<int>(q.size(1));
  a.len_q = static_cast<int>(q.size(2));
  a.len_k = static_cast<int>(k.size(2));
  a.head_dim = static_cast<int>(q.size(3));
  a.scale = opt.scale;
  a.causal = opt.causal;
  a.key_padding = opt.key_padding.defined() ? opt.key_padding.data<uint8_t>() : nullptr;
  a.dropout_p = opt.dropout_p;
  a.dropout_key = opt.dropout_key;
  a.deterministic = opt.deterministic;
  a.q = q.raw_data(), a.k = k.raw_data(), a.v = v.raw_data();
  a.q_strides = strides_of(q), a.k_strides = strides_of(k), a.v_strides = strides_of(v);
  return a;
}

// Whether cuDNN's attention runs instead of the kernels (AttentionBackend::Cudnn, in a build with cuDNN).
bool use_cudnn(const AttentionOptions& opt) {
#ifndef HEED_WITH_CUDNN
  HEED_CHECK(opt.backend == AttentionBackend::Fused, "training.attention: cudnn: this build of Heed has no cuDNN "
             "(use fused)");
#endif
  return opt.backend == AttentionBackend::Cudnn;
}

#ifdef HEED_WITH_CUDNN
// cuDNN's graphs are built for [B, L, H, D] storage; views of another layout (the column ranges of a fused
// projection) go through a copy in that layout, in and out.
bool has_heads_layout(const Tensor& t) {
  const int64_t len = t.size(2), heads = t.size(1), dim = t.size(3);
  return t.stride(3) == 1 && t.stride(1) == dim && t.stride(2) == heads * dim && t.stride(0) == len * heads * dim;
}

Tensor in_heads_layout(const Tensor& t) {
  if (has_heads_layout(t)) return t;
  Tensor copy = heads_like(t, t.size(2));
  copy.copy_from(t);
  return copy;
}

void cudnn_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, const AttentionResult& fwd,
                    const AttentionOptions& opt, const AttentionGrads& g) {
  auto output = [](const Tensor& t) { return has_heads_layout(t) ? t : heads_like(t, t.size(2)); };
  const AttentionGrads out{output(g.dq), output(g.dk), output(g.dv)};
  cudnn::attention_backward(in_heads_layout(dout), in_heads_layout(q), in_heads_layout(k), in_heads_layout(v), fwd,
                            opt, out);
  for (auto [dst, src] : {std::pair{g.dq, out.dq}, std::pair{g.dk, out.dk}, std::pair{g.dv, out.dv}})
    if (src.raw_data() != dst.raw_data()) dst.copy_from(src);
}
#endif

}  // namespace

AttentionResult attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& opt) {
#ifdef HEED_WITH_CUDNN
  if (use_cudnn(opt)) return cudnn::attention_forward(in_heads_layout(q), in_heads_layout(k), in_heads_layout(v), opt);
#else
  use_cudnn(opt);  // refuses the option
#endif
  AttentionResult r{heads_like(q, q.size(2)),
                    Tensor::empty({q.size(0), q.size(1), q.size(2)}, DType::F32, q.device())};
  kernels::AttentionArgs a = args_of(q, k, v, opt);
  a.out = r.out.raw_data();
  a.out_strides = strides_of(r.out);
  a.lse = r.lse.data<float>();
  HEED_RUN_KERNEL(q.device(), attention_forward, a);
  return r;
}

void attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                        const AttentionResult& fwd, const AttentionOptions& opt, const AttentionGrads& g) {
#ifdef HEED_WITH_CUDNN
  if (use_cudnn(opt)) return cudnn_backward(dout, q, k, v, fwd, opt, g);
#else
  use_cudnn(opt);  // refuses the option
#endif
  kernels::AttentionArgs a = args_of(q, k, v, opt);
  a.out = fwd.out.raw_data();
  a.out_strides = strides_of(fwd.out);
  a.lse = const_cast<float*>(fwd.lse.data<float>());  // read only by the backward pass
  a.dout = dout.raw_data();
  a.dout_strides = strides_of(dout);
  a.dq = g.dq.raw_data(), a.dk = g.dk.raw_data(), a.dv = g.dv.raw_data();
  a.dq_strides = strides_of(g.dq), a.dk_strides = strides_of(g.dk), a.dv_strides = strides_of(g.dv);
  // The workspace size is host arithmetic, the same in both builds; the simulator's is always linked.
  const Tensor workspace = Tensor::empty(
      {static_cast<int64_t>(kernels::attention_backward_workspace_bytes<kernels::Backend::Sim>(a))}, DType::U8,
      q.device());
  a.workspace = workspace.raw_data();
  HEED_RUN_KERNEL(q.device(), attention_backward, a);
}

// The host computes them: callers ask for one decoding step's rows of one layer (a few kilobytes), so a
// kernel would save nothing over the copy, and the host's fp32 arithmetic on the same 16-bit q and k gives
// what the kernel's fp32 accumulation used, within rounding.
Tensor attention_probabilities(const Tensor& q, const Tensor& k, const Tensor& lse, const AttentionOptions& opt) {
  const auto host = [](const Tensor& t) { return t.contiguous().to(Device::cpu()).to(DType::F32); };
  AttentionOptions host_opt = opt;
  if (opt.key_padding.defined()) host_opt.key_padding = opt.key_padding.to(Device::cpu());
  return cpu::attention_probabilities(host(q), host(k), lse.to(Device::cpu()), host_opt);
}

}  // namespace heed::ops::gpu

