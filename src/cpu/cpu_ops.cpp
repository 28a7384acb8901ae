#include "cpu/cpu_ops.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "cpu/exp_poly.h"

namespace gen::cpu {

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

// gelu_new(v) = 0.5 v (1 + tanh(u)) = v / (1 + exp(-2u)), u = sqrt(2/pi) (v + 0.044715 v^3): the second
// form has no cancellation for negative v and vectorizes. Cloned per ISA, chosen when the program loads.
__attribute__((target_clones("avx512f", "avx2", "default"))) void gelu_inplace(float* x, size_t n) {
  const float k2 = -2.0f * 0.7978845608028654f;  // -2 sqrt(2/pi)
#pragma omp parallel for simd if (n >= kParallelMin)
  for (size_t i = 0; i < n; ++i) {
    const float v = x[i], a = k2 * (v + 0.044715f * v * v * v);
    // Past exp's range the quotient is 0 (as 0.5 v (1 + tanh) is), even for a v near FLT_MAX.
    x[i] = a > 88.0f ? 0.0f * v : v / (1.0f + exp_poly(a));
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

namespace {
// Query rows per block of prefill attention: a block's scores [rows, keys] stay in the cache, and keys
// past its last row (masked for all of them) are never computed.
constexpr int kQueryBlock = 64;

// Rows [t0, t1) of one head, as two GEMMs around a masked softmax: S = scale Q K^T over the keys the
// block may see (0 .. pos0 + t1 - 1), row t keeps keys 0 .. pos0 + t, then O = P V.
// q: the head's Q of row 0, rows 3C apart; K, V: the head's cache [ctx][D]; o: its output of row 0,
// rows C apart; s: scratch [t1 - t0, pos0 + t1].
void attend_block(float* o, const float* q, const float* K, const float* V, int t0, int t1, int pos0, int C, int D,
                  float* s) {
  const int rows = t1 - t0, n_keys = pos0 + t1;
  const float scale = 1.0f / std::sqrt(float(D));
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n_keys, D, scale, q + size_t(t0) * 3 * C, 3 * C, K, D,
              0.0f, s, n_keys);
  for (int r = 0; r < rows; ++r) {
    float* row = s + size_t(r) * n_keys;
    const int visible = pos0 + t0 + r + 1;
    const float mx = *std::max_element(row, row + visible);
    float sum = 0;
    for (int j = 0; j < visible; ++j) sum += (row[j] = std::exp(row[j] - mx));
    const float inv = 1.0f / sum;
    for (int j = 0; j < visible; ++j) row[j] *= inv;
    std::fill(row + visible, row + n_keys, 0.0f);
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, D, n_keys, 1.0f, s, n_keys, V, D, 0.0f,
              o + size_t(t0) * C, C);
}
}  // namespace

size_t attention_scratch_floats(int T, int pos0, int n_threads) {
  return size_t(std::max(n_threads, 1)) * size_t(std::min(T, kQueryBlock)) * size_t(pos0 + T);
}

void attention(float* out, const float* qkv, const float* k_cache, const float* v_cache, int ctx, int T, int pos0,
               int H, int D, float* scores, int n_threads_scratch) {
  std::vector<int> item_starts;
  attention_batch({AttentionSeq{out, qkv, k_cache, v_cache, ctx, T, pos0}}, H, D, scores, n_threads_scratch,
                  &item_starts);
}

void attention_batch(const std::vector<AttentionSeq>& seqs, int H, int D, float* scores, int n_threads_scratch,
                     std::vector<int>* item_starts) {
  const int C = H * D;
  // Items: (sequence, head, block of query rows), numbered sequence by sequence.
  std::vector<int>& first = *item_starts;
  first.assign(seqs.size() + 1, 0);
  size_t per_thread = 0, work = 0;
  for (size_t i = 0; i < seqs.size(); ++i) {
    const AttentionSeq& q = seqs[i];
    first[i + 1] = first[i] + H * ((q.T + kQueryBlock - 1) / kQueryBlock);
    per_thread = std::max(per_thread, size_t(std::min(q.T, kQueryBlock)) * (q.pos0 + q.T));
    work += size_t(H) * q.T * (q.pos0 + q.T) * D;
  }
  const int n_items = first.back();
  // One item per thread at a time; OpenBLAS runs single-threaded inside the parallel region.
#pragma omp parallel for schedule(dynamic, 1) num_threads(n_threads_scratch) if (work >= kParallelMin)
  for (int item = 0; item < n_items; ++item) {
    const size_t i = size_t(std::upper_bound(first.begin(), first.end(), item) - first.begin()) - 1;
    const AttentionSeq& q = seqs[i];
    const int n_blocks = (q.T + kQueryBlock - 1) / kQueryBlock, local = item - first[i];
    const int h = local / n_blocks, b = local % n_blocks;
    const int t0 = b * kQueryBlock, t1 = std::min(q.T, t0 + kQueryBlock);
    attend_block(q.out + h * D, q.qkv + h * D, q.k_cache + size_t(h) * q.ctx * D, q.v_cache + size_t(h) * q.ctx * D,
                 t0, t1, q.pos0, C, D, scores + size_t(omp_get_thread_num()) * per_thread);
  }
}

}  // namespace gen::cpu
