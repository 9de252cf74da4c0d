// LayerNorm on the CPU: one row of D features at a time, rows split over threads.
//
// Forward statistics are two-pass in double (mean, then the sum of squared deviations), so a row with a
// large mean and a small spread loses nothing to cancellation, as E[x^2] - E[x]^2 in fp32 would. The
// saved mean is fp32; the part of the double mean that fp32 cannot hold, r = mean - fl(mean), is
// subtracted separately so that x - mean stays accurate for the same rows. The backward pass recovers r
// the same way (the mean of x - fl(mean) over the row), in the pass that also forms sum(g) and sum(g x).
//
// dgamma and dbeta are sums over rows. Rows are cut into fixed chunks of kChunk; each chunk's partial sums
// are formed by one thread, then added in chunk order. The chunking does not depend on the thread count,
// so the result is the same on any machine.
#include <cmath>
#include <vector>

#include "ops/layer_norm_backends.h"

namespace heed::ops::cpu {

namespace {

constexpr int64_t kParallelMin = 1 << 14;  // elements; below this, thread start-up costs more than the loop
constexpr int64_t kChunk = 32;             // rows per partial sum of dgamma and dbeta

}  // namespace

void layer_norm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps, Tensor& y,
                        Tensor& mean, Tensor& rstd) {
  const int64_t d = x.size(-1), rows = x.numel() / d;
  const float* px = x.data<float>();
  const float* pgam = gamma.data<float>();
  const float* pbet = beta.data<float>();
  float* py = y.data<float>();
  float* pmean = mean.data<float>();
  float* prstd = rstd.data<float>();
#pragma omp parallel for if (rows * d > kParallelMin)
  for (int64_t row = 0; row < rows; ++row) {
    const float* xr = px + row * d;
    double sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < d; ++j) sum += xr[j];
    const double mu = sum / static_cast<double>(d);
    double sq = 0;
#pragma omp simd reduction(+ : sq)
    for (int64_t j = 0; j < d; ++j) {
      const double dev = xr[j] - mu;
      sq += dev * dev;
    }
    const float rs = static_cast<float>(1.0 / std::sqrt(sq / static_cast<double>(d) + eps));
    const float mf = static_cast<float>(mu);
    const float mr = static_cast<float>(mu - mf);
    float* yr = py + row * d;
#pragma omp simd
    for (int64_t j = 0; j < d; ++j) yr[j] = ((xr[j] - mf) - mr) * rs * pgam[j] + pbet[j];
    pmean[row] = mf;
    prstd[row] = rs;
  }
}

void layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                         const Tensor& rstd, Tensor& dx, Tensor& dgamma, Tensor& dbeta) {
  const int64_t d = x.size(-1), rows = x.numel() / d;
  const float* pdy = dy.data<float>();
  const float* px = x.data<float>();
  const float* pgam = gamma.data<float>();
  const float* pmean = mean.data<float>();
  const float* prstd = rstd.data<float>();
  float* pdx = dx.data<float>();
  const int64_t chunks = (rows + kChunk - 1) / kChunk;
  // Per chunk: the partial dgamma, then the partial dbeta; zero-initialised.
  std::vector<float> partial(static_cast<size_t>(chunks) * 2 * d);
  const float inv_d = 1.0f / static_cast<float>(d);

#pragma omp parallel for if (rows * d > kParallelMin)
  for (int64_t c = 0; c < chunks; ++c) {
    float* pg = partial.data() + c * 2 * d;
    float* pb = pg + d;
    for (int64_t row = c * kChunk; row < std::min(rows, (c + 1) * kChunk); ++row) {
      const float* xr = px + row * d;
      const float* dyr = pdy + row * d;
      const float mf = pmean[row], rs = prstd[row];
      // With xc = x - fl(mean): r = mean(xc), and mean(g * xhat) = rs * (sum(g xc) - r sum(g)) / D.
      float sxc = 0, sg = 0, sgxc = 0;
#pragma omp simd reduction(+ : sxc, sg, sgxc)
      for (int64_t j = 0; j < d; ++j) {
        const float xc = xr[j] - mf, g = dyr[j] * pgam[j];
        sxc += xc;
        sg += g;
        sgxc += g * xc;
      }
      const float r = sxc * inv_d;
      const float mean_g = sg * inv_d;
      const float mean_gxhat = rs * (sgxc - r * sg) * inv_d;
      float* dxr = pdx + row * d;
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) {
        const float xhat = ((xr[j] - mf) - r) * rs;
        dxr[j] = rs * (dyr[j] * pgam[j] - mean_g - xhat * mean_gxhat);
        pg[j] += dyr[j] * xhat;
        pb[j] += dyr[j];
      }
    }
  }

  float* pdgam = dgamma.data<float>();
  float* pdbet = dbeta.data<float>();
  std::vector<double> acc(2 * d, 0.0);
  for (int64_t c = 0; c < chunks; ++c) {
    const float* part = partial.data() + c * 2 * d;
#pragma omp simd
    for (int64_t j = 0; j < 2 * d; ++j) acc[j] += part[j];
  }
  for (int64_t j = 0; j < d; ++j) {
    pdgam[j] = static_cast<float>(acc[j]);
    pdbet[j] = static_cast<float>(acc[d + j]);
  }
}

}  // namespace heed::ops::cpu
