// Compiled with -ffp-contract=off (CMakeLists.txt): the only fused operations are the explicit fmas of
// the canonical arithmetic below, so that a query's result cannot depend on the code path (or the ISA
// clone) that computed it.
//
// The canonical arithmetic of one query, head dimension D, positions [0, n):
//   score_j = c_{D-1} * scale, c_0 = q_0 k_j0, c_d = fma(q_d, k_jd, c_{d-1})   (in order of d)
//   p = softmax(score): max, e_j = exp_poly(score_j - max), sum of e_j in 16 lanes (j mod 16) then
//       pairwise, p_j = e_j * (1 / sum)
//   out_d = a_{n-1}, a_{-1} = 0, a_j = fma(p_j, v_jd, a_{j-1})                (in order of j)
// Paths: the plain loops (any D, any CPU); with AVX-512 and D = 64, several queries of a group in the
// 16 lanes of a register over shared positions (one broadcast K or V value for all of them), and one
// query's 16 positions in the lanes over its own.
#include "cpu/decode_attention.h"

// GCC 12's avx512fintrin.h trips -Wmaybe-uninitialized in its own __Y = __Y idiom.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "cpu/cpu_ops.h"
#include "cpu/exp_poly.h"

namespace gen::cpu {
namespace {

// Inlined into each caller, so that each ISA clone and target has its own code.
#define GEN_INLINE inline __attribute__((always_inline))

constexpr int kLanes = 16;

struct Item {
  const DecodeQuery* q;  // the item's queries, count of them
  int count, shared;
  const float *Ks, *Vs;  // the shared positions' K and V of this head (the group's first cache)
};

// ---- the plain path ----------------------------------------------------------------------------------

// Scores of positions [j0, j1) of one query, 16 positions at a time (16 independent fma chains).
GEN_INLINE void plain_scores(float* s, const float* q, const float* K, int j0, int j1, int D, float scale) {
  int j = j0;
  for (; j + kLanes <= j1; j += kLanes) {
    float c[kLanes];
    for (int l = 0; l < kLanes; ++l) c[l] = q[0] * K[size_t(j + l) * D];
    for (int d = 1; d < D; ++d) {
      for (int l = 0; l < kLanes; ++l) c[l] = std::fma(q[d], K[size_t(j + l) * D + d], c[l]);
    }
    for (int l = 0; l < kLanes; ++l) s[j + l] = c[l] * scale;
  }
  for (; j < j1; ++j) {
    const float* k = K + size_t(j) * D;
    float c = q[0] * k[0];
    for (int d = 1; d < D; ++d) c = std::fma(q[d], k[d], c);
    s[j] = c * scale;
  }
}

GEN_INLINE void plain_accumulate(float* acc, const float* p, const float* V, int j0, int j1, int D) {
  for (int j = j0; j < j1; ++j) {
    const float pj = p[j], *v = V + size_t(j) * D;
    for (int d = 0; d < D; ++d) acc[d] = std::fma(pj, v[d], acc[d]);
  }
}

GEN_INLINE void softmax(float* s, int n) {
  float m[kLanes];  // the max in lanes, so that it vectorizes (a max is the same in any order)
  for (int l = 0; l < kLanes; ++l) m[l] = s[0];
  int i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) m[l] = s[i + l] > m[l] ? s[i + l] : m[l];
  }
  for (; i < n; ++i) m[0] = s[i] > m[0] ? s[i] : m[0];
  float mx = m[0];
  for (int l = 1; l < kLanes; ++l) mx = m[l] > mx ? m[l] : mx;
  for (int j = 0; j < n; ++j) s[j] = exp_poly(s[j] - mx);
  float lane[kLanes] = {};
  int j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) lane[l] += s[j + l];
  }
  for (int l = 0; j + l < n; ++l) lane[l] += s[j + l];
  for (int w = kLanes / 2; w >= 1; w /= 2) {
    for (int l = 0; l < w; ++l) lane[l] += lane[l + w];
  }
  const float inv = 1.0f / lane[0];
  for (int i = 0; i < n; ++i) s[i] *= inv;
}

// One head of an item, plain: the shared positions from Ks/Vs, the rest from each query's own cache.
// s: scratch [count][n_max]; acc: [count][D].
GEN_INLINE void plain_item(const Item& it, int h, int D, int n_max, float* s, float* acc) {
  const float scale = 1.0f / std::sqrt(float(D));
  for (int g = 0; g < it.count; ++g) {
    const DecodeQuery& Q = it.q[g];
    const float* q = Q.q + h * D;
    float* sg = s + size_t(g) * n_max;
    plain_scores(sg, q, it.Ks, 0, it.shared, D, scale);
    plain_scores(sg, q, Q.k_cache + size_t(h) * Q.ctx * D, it.shared, Q.n, D, scale);
    softmax(sg, Q.n);
    float* a = acc + size_t(g) * D;
    std::fill(a, a + D, 0.0f);
    plain_accumulate(a, sg, it.Vs, 0, it.shared, D);
    plain_accumulate(a, sg, Q.v_cache + size_t(h) * Q.ctx * D, it.shared, Q.n, D);
    std::copy(a, a + D, Q.out + h * D);
  }
}

__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) void attend_plain(
    const Item& it, int h, int D, int n_max, float* s, float* acc) {
  plain_item(it, h, D, n_max, s, acc);
}

}  // namespace
}  // namespace gen::cpu

#include "cpu/decode_attention_avx512.h"

namespace gen::cpu {

size_t decode_scratch_floats(int group_max, int n_max, int D) {
  // scores [group][n_max], acc [group][D], and the AVX-512 path's query-major copies [16][n_max + D]
  return size_t(std::max(group_max, 1)) * (size_t(std::max(n_max, 1)) + size_t(D)) +
         size_t(kLanes) * (size_t(std::max(n_max, 1)) + size_t(D) + kLanes);
}

void attention_decode(const std::vector<DecodeQuery>& queries, const std::vector<DecodeGroup>& groups, int H, int D,
                      float* scratch, int n_threads, std::vector<DecodeItem>* items, bool plain) {
  items->clear();
  int n_max = 1, chunk_max = 1;
  size_t work = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    const DecodeGroup& G = groups[g];
    for (int f = 0; f < G.count; f += kDecodeChunk) {
      items->push_back({int(g), G.first + f, std::min(kDecodeChunk, G.count - f)});
    }
    chunk_max = std::max(chunk_max, std::min(kDecodeChunk, G.count));
    for (int i = G.first; i < G.first + G.count; ++i) {
      n_max = std::max(n_max, queries[size_t(i)].n);
      work += size_t(H) * queries[size_t(i)].n * D;
    }
  }
  static const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
  const bool wide = avx512 && D == 64 && !plain;
  const size_t per_thread = decode_scratch_floats(chunk_max, n_max, D);
  const int n_items = int(items->size()) * H;
#pragma omp parallel for schedule(dynamic, 1) num_threads(n_threads) if (work >= kParallelMin)
  for (int i = 0; i < n_items; ++i) {
    const DecodeItem& di = (*items)[size_t(i / H)];
    const int h = i % H;
    const DecodeQuery& lead = queries[size_t(groups[size_t(di.group)].first)];
    const Item it{&queries[size_t(di.first)], di.count, groups[size_t(di.group)].shared,
                  lead.k_cache + size_t(h) * lead.ctx * D, lead.v_cache + size_t(h) * lead.ctx * D};
    float* s = scratch + size_t(omp_get_thread_num()) * per_thread;
    float* acc = s + size_t(chunk_max) * n_max;
    if (wide) {
      attend_avx512(it, h, n_max, s, acc, acc + size_t(chunk_max) * D);
    } else {
      attend_plain(it, h, D, n_max, s, acc);
    }
  }
}

}  // namespace gen::cpu
