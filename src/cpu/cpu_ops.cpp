#include "cpu/cpu_ops.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace gen::cpu {

namespace {
// Below this many elements a parallel region costs more than it saves.
constexpr size_t kParallelMin = 1 << 14;
}  // namespace

void embed(float* out, const int* tokens, int T, int pos0, const float* wte, const float* wpe, int C) {
#pragma omp parallel for if (size_t(T) * C >= kParallelMin)
  for (int t = 0; t < T; ++t) {
    const float* e = wte + size_t(tokens[t]) * C;
    const float* p = wpe + size_t(pos0 + t) * C;
    float* o = out + size_t(t) * C;
    for (int c = 0; c < C; ++c) o[c] = e[c] + p[c];
  }
}

void layernorm(float* out, const float* x, const float* w, const float* b, int T, int C, float eps) {
#pragma omp parallel for if (size_t(T) * C >= kParallelMin)
  for (int t = 0; t < T; ++t) {
    const float* xr = x + size_t(t) * C;
    float* o = out + size_t(t) * C;
    // Two passes in double: the mean and variance of 1600 floats lose digits in float.
    double mean = 0;
    for (int c = 0; c < C; ++c) mean += xr[c];
    mean /= C;
    double var = 0;
    for (int c = 0; c < C; ++c) {
      double d = xr[c] - mean;
      var += d * d;
    }
    var /= C;
    const float rstd = float(1.0 / std::sqrt(var + eps));
    const float m = float(mean);
    for (int c = 0; c < C; ++c) o[c] = (xr[c] - m) * rstd * w[c] + b[c];
  }
}

void matmul(float* out, const float* x, const float* W, const float* bias, int T, int Cin, int Cout) {
  if (T == 1) {
    // y = W^T x: the weights are [Cin, Cout] row-major, so this is a transposed GEMV.
    if (bias) std::memcpy(out, bias, sizeof(float) * Cout);
    cblas_sgemv(CblasRowMajor, CblasTrans, Cin, Cout, 1.0f, W, Cout, x, 1, bias ? 1.0f : 0.0f, out, 1);
    return;
  }
  if (bias) {
    for (int t = 0; t < T; ++t) std::memcpy(out + size_t(t) * Cout, bias, sizeof(float) * Cout);
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, Cout, Cin, 1.0f, x, Cin, W, Cout,
              bias ? 1.0f : 0.0f, out, Cout);
}

void matmul_transposed(float* out, const float* x, const float* E, int T, int C, int V) {
  if (T == 1) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, V, C, 1.0f, E, C, x, 1, 0.0f, out, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, V, C, 1.0f, x, C, E, C, 0.0f, out, V);
}

void gelu_inplace(float* x, size_t n) {
  const float k = std::sqrt(2.0f / float(M_PI));
#pragma omp parallel for if (n >= kParallelMin)
  for (size_t i = 0; i < n; ++i) {
    float v = x[i];
    x[i] = 0.5f * v * (1.0f + std::tanh(k * (v + 0.044715f * v * v * v)));
  }
}

void add_inplace(float* x, const float* y, size_t n) {
#pragma omp parallel for if (n >= kParallelMin)
  for (size_t i = 0; i < n; ++i) x[i] += y[i];
}

void kv_write(float* k_cache, float* v_cache, int ctx, const float* qkv, int T, int pos0, int H, int D) {
  const int C = H * D;
  for (int t = 0; t < T; ++t) {
    const float* row = qkv + size_t(t) * 3 * C;
    for (int h = 0; h < H; ++h) {
      size_t dst = (size_t(h) * ctx + pos0 + t) * D;
      std::memcpy(k_cache + dst, row + C + h * D, sizeof(float) * D);
      std::memcpy(v_cache + dst, row + 2 * C + h * D, sizeof(float) * D);
    }
  }
}

void attention(float* out, const float* qkv, const float* k_cache, const float* v_cache, int ctx,
               int T, int pos0, int H, int D, float* scores, int n_threads_scratch) {
  const int C = H * D;
  const float scale = 1.0f / std::sqrt(float(D));
  const int n_items = T * H;
  const size_t work = size_t(n_items) * (pos0 + T) * D;
#pragma omp parallel for schedule(dynamic, 4) num_threads(n_threads_scratch) if (work >= kParallelMin)
  for (int item = 0; item < n_items; ++item) {
    const int t = item / H, h = item % H;
    const int n_keys = pos0 + t + 1;
    float* s = scores + size_t(omp_get_thread_num()) * (pos0 + T);
    const float* q = qkv + size_t(t) * 3 * C + h * D;
    const float* K = k_cache + size_t(h) * ctx * D;
    const float* V = v_cache + size_t(h) * ctx * D;
    float mx = -INFINITY;
    for (int j = 0; j < n_keys; ++j) {
      const float* k = K + size_t(j) * D;
      float dot = 0;
      for (int d = 0; d < D; ++d) dot += q[d] * k[d];
      s[j] = dot * scale;
      mx = std::max(mx, s[j]);
    }
    float sum = 0;
    for (int j = 0; j < n_keys; ++j) {
      s[j] = std::exp(s[j] - mx);
      sum += s[j];
    }
    const float inv = 1.0f / sum;
    float* o = out + size_t(t) * C + h * D;
    std::fill(o, o + D, 0.0f);
    for (int j = 0; j < n_keys; ++j) {
      const float p = s[j] * inv;
      const float* v = V + size_t(j) * D;
      for (int d = 0; d < D; ++d) o[d] += p * v[d];
    }
  }
}

}  // namespace gen::cpu
