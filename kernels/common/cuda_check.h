// HEED_CUDA_CHECK and HEED_CUBLAS_CHECK: every CUDA runtime and cuBLASLt call goes through one of them,
// so a failure names the call and the library's reason. Both are HEED_CHECK_CALL (heed/core/error.h), the
// one family of status checks. GPU builds only.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include "heed/core/error.h"

#define HEED_CUDA_CHECK(call) HEED_CHECK_CALL("CUDA", #call, call, cudaSuccess, cudaGetErrorString)
#define HEED_CUBLAS_CHECK(call) HEED_CHECK_CALL("cuBLAS", #call, call, CUBLAS_STATUS_SUCCESS, cublasLtGetStatusString)
