// Tensor: a strided view of shared storage.
//
// A tensor is a shape, strides (in elements), an offset, a dtype and a device over a reference-counted
// storage block from the device's caching allocator. Views (reshape of contiguous data, transpose,
// narrow, select) share storage and copy nothing; contiguous() copies only when the layout requires it.
// Ops take tensors of any layout at their boundary and call contiguous() on the inputs whose kernels need
// dense rows.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "heed/core/device.h"
#include "heed/core/dtype.h"
#include "heed/core/error.h"

namespace heed {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& shape);
int64_t shape_numel(const Shape& shape);

class Storage {
 public:
  Storage(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_;
  size_t nbytes_;
  Device device_;
};

class Tensor {
 public:
  Tensor() = default;

  // Uninitialised memory: every element must be written before it is read.
  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, float value, Device device = Device::cpu());
  template <typename T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape);
  static Tensor scalar(float value) { return full({}, value); }

  bool defined() const { return storage_ != nullptr; }
  int dim() const { return static_cast<int>(shape_.size()); }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int64_t size(int d) const { return shape_[wrap_dim(d)]; }
  int64_t stride(int d) const { return strides_[wrap_dim(d)]; }
  int64_t numel() const { return shape_numel(shape_); }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device() : Device::cpu(); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  bool is_contiguous() const;
  // True when both tensors view the same storage block.
  bool shares_storage(const Tensor& other) const { return storage_ == other.storage_; }

  // Typed access to the first element; checks the dtype. Host memory only makes sense on the CPU.
  template <typename T>
  T* data() const {
    HEED_CHECK(dtype_ == dtype_of<T>(), "tensor holds {}, accessed as {}", dtype_name(dtype_),
               dtype_name(dtype_of<T>()));
    return static_cast<T*>(raw_data());
  }
  void* raw_data() const;
  // Element i of a contiguous fp32 CPU tensor, for tests and small host-side reads.
  float item(int64_t i = 0) const;
  template <typename T>
  std::vector<T> to_vector() const;

  // Views: no copy.
  Tensor view(const Shape& shape) const;  // contiguous tensors only; one dimension may be -1
  Tensor reshape(const Shape& shape) const { return is_contiguous() ? view(shape) : contiguous().view(shape); }
  Tensor transpose(int d0, int d1) const;
  Tensor narrow(int d, int64_t start, int64_t length) const;
  Tensor select(int d, int64_t index) const;  // drops dimension d
  Tensor unsqueeze(int d) const;
  // Broadcast view: size-1 (or missing leading) dimensions stretch to `shape` with stride 0.
  Tensor expand(const Shape& shape) const;

  // Copies.
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor to(Device device) const;
  Tensor to(DType dtype) const;
  // Copies src into this tensor element by element; shapes must match, dtypes and devices may differ.
  void copy_from(const Tensor& src);
  void fill_(float value);
  void zero_();

  int wrap_dim(int d) const;

 private:
  std::shared_ptr<Storage> storage_;
  Shape shape_;
  Shape strides_;
  int64_t offset_ = 0;  // in elements
  DType dtype_ = DType::F32;
};

Shape contiguous_strides(const Shape& shape);

}  // namespace heed
