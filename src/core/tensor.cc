#include "heed/core/tensor.h"

#include <cstring>

#include "heed/core/allocator.h"
#include "heed/core/half.h"
#include "core/kernel_args.h"
#include "kernels/elementwise.h"
#ifdef HEED_WITH_CUDA
#include "core/cuda_runtime.h"
#endif

namespace heed {

std::string shape_str(const Shape& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t stride = 1;
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    strides[d] = stride;
    stride *= shape[d];
  }
  return strides;
}

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  data_ = allocator_for(device).allocate(nbytes == 0 ? 1 : nbytes);
}

Storage::~Storage() { allocator_for(device_).deallocate(data_, nbytes_ == 0 ? 1 : nbytes_); }

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t s : shape) HEED_CHECK(s >= 0, "negative dimension in shape {}", shape_str(shape));
  Tensor t;
  t.storage_ = std::make_shared<Storage>(static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype), device);
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.dtype_ = dtype;
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.zero_();
  return t;
}

Tensor Tensor::full(const Shape& shape, float value, Device device) {
  Tensor t = empty(shape, DType::F32, device);
  t.fill_(value);
  return t;
}

template <typename T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape) {
  HEED_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "{} values do not fill shape {}",
             values.size(), shape_str(shape));
  Tensor t = empty(shape, dtype_of<T>());
  std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(T));
  return t;
}
template Tensor Tensor::from_vector(const std::vector<float>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<int32_t>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<int64_t>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<uint8_t>&, const Shape&);

template <typename T>
std::vector<T> Tensor::to_vector() const {
  Tensor c = to(Device::cpu()).contiguous();
  const T* p = c.data<T>();
  return std::vector<T>(p, p + numel());
}
template std::vector<float> Tensor::to_vector() const;
template std::vector<int32_t> Tensor::to_vector() const;
template std::vector<int64_t> Tensor::to_vector() const;
template std::vector<uint8_t> Tensor::to_vector() const;

void* Tensor::raw_data() const {
  HEED_CHECK(defined(), "access to an undefined tensor");
  return static_cast<char*>(storage_->data()) + offset_ * static_cast<int64_t>(dtype_size(dtype_));
}

float Tensor::item(int64_t i) const {
  HEED_CHECK(device().is_cpu() && is_contiguous(), "item() needs a contiguous CPU tensor");
  HEED_CHECK(i >= 0 && i < numel(), "item({}) out of range for {} elements", i, numel());
  return data<float>()[i];
}

int Tensor::wrap_dim(int d) const {
  int n = dim();
  HEED_CHECK(d >= -n && d < n, "dimension {} out of range for a {}-d tensor", d, n);
  return d < 0 ? d + n : d;
}

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int d = dim() - 1; d >= 0; --d) {
    if (shape_[d] != 1 && strides_[d] != expected) return false;
    expected *= shape_[d];
  }
  return true;
}

Tensor Tensor::view(const Shape& shape) const {
  HEED_CHECK(is_contiguous(), "view() of a non-contiguous tensor of shape {}", shape_str(shape_));
  Shape resolved = shape;
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      HEED_CHECK(infer < 0, "view(): only one dimension may be -1 in {}", shape_str(shape));
      infer = static_cast<int>(i);
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    HEED_CHECK(known > 0 && numel() % known == 0, "cannot view {} as {}", shape_str(shape_), shape_str(shape));
    resolved[infer] = numel() / known;
  }
  HEED_CHECK(shape_numel(resolved) == numel(), "cannot view {} as {}", shape_str(shape_), shape_str(shape));
  Tensor t = *this;
  t.shape_ = resolved;
  t.strides_ = contiguous_strides(resolved);
  return t;
}

Tensor Tensor::transpose(int d0, int d1) const {
  Tensor t = *this;
  d0 = wrap_dim(d0);
  d1 = wrap_dim(d1);
  std::swap(t.shape_[d0], t.shape_[d1]);
  std::swap(t.strides_[d0], t.strides_[d1]);
  return t;
}

Tensor Tensor::narrow(int d, int64_t start, int64_t length) const {
  d = wrap_dim(d);
  HEED_CHECK(start >= 0 && length >= 0 && start + length <= shape_[d],
             "narrow({}, {}, {}) out of range for size {}", d, start, length, shape_[d]);
  Tensor t = *this;
  t.offset_ += start * strides_[d];
  t.shape_[d] = length;
  return t;
}

Tensor Tensor::select(int d, int64_t index) const {
  d = wrap_dim(d);
  Tensor t = narrow(d, index, 1);
  t.shape_.erase(t.shape_.begin() + d);
  t.strides_.erase(t.strides_.begin() + d);
  return t;
}

Tensor Tensor::unsqueeze(int d) const {
  HEED_CHECK(d >= 0 && d <= dim(), "unsqueeze({}) out of range for a {}-d tensor", d, dim());
  Tensor t = *this;
  int64_t stride = d < dim() ? strides_[d] * shape_[d] : 1;
  t.shape_.insert(t.shape_.begin() + d, 1);
  t.strides_.insert(t.strides_.begin() + d, stride);
  return t;
}

Tensor Tensor::expand(const Shape& shape) const {
  HEED_CHECK(static_cast<int>(shape.size()) >= dim(), "cannot expand {} to {}", shape_str(shape_), shape_str(shape));
  Tensor t = *this;
  const int lead = static_cast<int>(shape.size()) - dim();
  t.shape_ = shape;
  t.strides_.assign(shape.size(), 0);
  for (int d = 0; d < dim(); ++d) {
    HEED_CHECK(shape_[d] == shape[lead + d] || shape_[d] == 1, "cannot expand {} to {}", shape_str(shape_),
               shape_str(shape));
    t.strides_[lead + d] = shape_[d] == shape[lead + d] ? strides_[d] : 0;
  }
  return t;
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  Tensor t = empty(shape_, dtype_, device());
  t.copy_from(*this);
  return t;
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape_, dtype_, device());
  t.copy_from(*this);
  return t;
}

Tensor Tensor::to(Device device) const {
  if (device == this->device()) return *this;
  Tensor t = empty(shape_, dtype_, device);
  t.copy_from(*this);
  return t;
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return *this;
  Tensor t = empty(shape_, dtype, device());
  t.copy_from(*this);
  return t;
}

namespace {

float load_as_float(const void* base, int64_t i, DType dtype) {
  switch (dtype) {
    case DType::F32: return static_cast<const float*>(base)[i];
    case DType::BF16: return bf16_bits_to_float(static_cast<const uint16_t*>(base)[i]);
    case DType::F16: return fp16_bits_to_float(static_cast<const uint16_t*>(base)[i]);
    case DType::I32: return static_cast<float>(static_cast<const int32_t*>(base)[i]);
    case DType::I64: return static_cast<float>(static_cast<const int64_t*>(base)[i]);
    case DType::U8: return static_cast<const uint8_t*>(base)[i];
  }
  return 0;
}

void store_float(void* base, int64_t i, DType dtype, float v) {
  switch (dtype) {
    case DType::F32: static_cast<float*>(base)[i] = v; break;
    case DType::BF16: static_cast<uint16_t*>(base)[i] = float_to_bf16_bits(v); break;
    case DType::F16: static_cast<uint16_t*>(base)[i] = float_to_fp16_bits(v); break;
    case DType::I32: static_cast<int32_t*>(base)[i] = static_cast<int32_t>(v); break;
    case DType::I64: static_cast<int64_t*>(base)[i] = static_cast<int64_t>(v); break;
    case DType::U8: static_cast<uint8_t*>(base)[i] = static_cast<uint8_t>(v); break;
  }
}

// Strided CPU copy: rows of the last dimension, distributed over threads.
void copy_strided_cpu(const Tensor& dst, const Tensor& src) {
  const int nd = src.dim();
  const int64_t inner = nd ? src.size(-1) : 1;
  const int64_t rows = inner ? src.numel() / inner : 0;
  const int64_t s_in = nd ? src.stride(-1) : 1, d_in = nd ? dst.stride(-1) : 1;
  const size_t es = dtype_size(src.dtype());
  const bool same = src.dtype() == dst.dtype();
  char* dbase = static_cast<char*>(dst.raw_data());
  const char* sbase = static_cast<const char*>(src.raw_data());
#pragma omp parallel for if (rows * inner > 32768)
  for (int64_t r = 0; r < rows; ++r) {
    int64_t so = 0, dof = 0, rem = r;
    for (int d = nd - 2; d >= 0; --d) {
      int64_t idx = rem % src.size(d);
      rem /= src.size(d);
      so += idx * src.stride(d);
      dof += idx * dst.stride(d);
    }
    if (same && s_in == 1 && d_in == 1) {
      std::memcpy(dbase + dof * es, sbase + so * es, inner * es);
    } else if (same) {  // raw bytes: an I64 through float would lose precision above 2^24
      for (int64_t i = 0; i < inner; ++i)
        std::memcpy(dbase + (dof + i * d_in) * es, sbase + (so + i * s_in) * es, es);
    } else {
      for (int64_t i = 0; i < inner; ++i)
        store_float(dbase, dof + i * d_in, dst.dtype(), load_as_float(sbase, so + i * s_in, src.dtype()));
    }
  }
}

}  // namespace

void Tensor::copy_from(const Tensor& src) {
  HEED_CHECK(shape_ == src.shape_, "copy of shape {} into shape {}", shape_str(src.shape_), shape_str(shape_));
  if (device().is_cpu() && src.device().is_cpu()) {
    copy_strided_cpu(*this, src);
    return;
  }
  if (device() == src.device()) {  // on one GPU: a kernel handles any strides and dtypes
    kernels::PointwiseArgs args;
    args.op = kernels::PointwiseOp::Copy;
    args.out = kernel_layout(*this);
    args.a = kernel_layout(src);
    HEED_RUN_KERNEL(device(), pointwise, args);
    return;
  }
  // Between devices: what cudaMemcpy can do, and no more on the simulated GPU, so that code that runs
  // there runs on a real one.
  HEED_CHECK(dtype_ == src.dtype_ && is_contiguous() && src.is_contiguous(),
             "copies between devices need contiguous tensors of one dtype (got {} {} -> {} {})", src.device().str(),
             dtype_name(src.dtype_), device().str(), dtype_name(dtype_));
  if (device().is_host_memory() && src.device().is_host_memory()) {
    // A copy through the compute stream on a real GPU (cuda::memcpy): counted for the cost model
    // (src/sim/counters.h), where a copy to the host is a host synchronisation and one to the device is not.
    if (device().is_sim() != src.device().is_sim()) cuda_sim::count_copy(src.device().is_sim(), nbytes());
    std::memcpy(raw_data(), src.raw_data(), nbytes());
    return;
  }
#ifdef HEED_WITH_CUDA
  HEED_CHECK(!device().is_sim() && !src.device().is_sim(),
             "copy between {} and {}: the simulated GPU and a real one share no memory", src.device().str(),
             device().str());
  cuda::memcpy(raw_data(), device(), src.raw_data(), src.device(), nbytes());
#else
  HEED_CHECK(false, "copy between {} and {}: Heed was built without CUDA", src.device().str(), device().str());
#endif
}

void Tensor::fill_(float value) {
  if (device().is_cpu()) {
    if (dtype_ == DType::F32 && is_contiguous()) {
      float* p = data<float>();
      const int64_t n = numel();
#pragma omp parallel for simd if (n > 65536)
      for (int64_t i = 0; i < n; ++i) p[i] = value;
    } else {
      Tensor src = empty(shape_, DType::F32);
      src.fill_(value);
      copy_from(src);
    }
    return;
  }
  kernels::PointwiseArgs args;
  args.op = kernels::PointwiseOp::Fill;
  args.out = kernel_layout(*this);
  args.value = value;
  HEED_RUN_KERNEL(device(), pointwise, args);
}

void Tensor::zero_() {
  HEED_CHECK(is_contiguous(), "zero_() needs a contiguous tensor");
  if (device().is_host_memory()) {
    std::memset(raw_data(), 0, nbytes());
    return;
  }
#ifdef HEED_WITH_CUDA
  cuda::memset_zero(raw_data(), nbytes(), device().index);
#endif
}

}  // namespace heed
