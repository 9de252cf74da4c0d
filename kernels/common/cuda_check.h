// HEED_CUDA_CHECK and HEED_CUBLAS_CHECK: every CUDA runtime and cuBLASLt call goes through one of them,
// so a failure names the call, the file and the line.
// It reports through HEED_CHECK, Heed's one error path. GPU builds only.
#pragma once

#include <cuda_runtime.h>

#include "heed/core/error.h"

#define HEED_CUDA_CHECK(call)                                                                    \
  do {                                                                                           \
    cudaError_t heed_status_ = (call);                                                           \
    HEED_CHECK(heed_status_ == cudaSuccess, "CUDA call {} failed at {}:{}: {}", #call, __FILE__, \
               __LINE__, cudaGetErrorString(heed_status_));                                      \
  } while (0)

#include <cublasLt.h>

#define HEED_CUBLAS_CHECK(call)                                                                       \
  do {                                                                                                \
    cublasStatus_t heed_status_ = (call);                                                             \
    HEED_CHECK(heed_status_ == CUBLAS_STATUS_SUCCESS, "cuBLAS call {} failed at {}:{}: {}", #call, \
               __FILE__, __LINE__, cublasLtGetStatusString(heed_status_));                           \
  } while (0)
