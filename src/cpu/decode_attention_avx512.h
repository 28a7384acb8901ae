// The AVX-512 path of decode attention for D = 64 (every GPT-2 size): included once, by
// decode_attention.cpp, after its Item, softmax and plain code. The same canonical arithmetic as the
// plain path (decode_attention.cpp's header comment), bit for bit: explicit mul for the first product,
// fma for the rest, in the same order.
#pragma once

namespace gen::cpu {
namespace {

#define GEN_AVX512 __attribute__((target("avx512f,fma")))
constexpr int kD = 64;

// Scores of shared positions [0, L) for the item's G (2..16) queries, one query per lane: each
// position's 64 K values are broadcast to all of them, 8 positions in flight. s: [G][n_max].
// qt: scratch [64][16], the queries transposed (lanes past G are 0).
GEN_AVX512 void shared_scores(const Item& it, int h, int L, int n_max, float* s, float* qt) {
  const int G = it.count;
  for (int d = 0; d < kD; ++d) {
    for (int g = 0; g < kLanes; ++g) qt[d * kLanes + g] = g < G ? it.q[g].q[h * kD + d] : 0.0f;
  }
  const __m512 scale = _mm512_set1_ps(0.125f);  // 1 / sqrt(64), exact
  const __m512i rows = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                          _mm512_set1_epi32(n_max));
  const __mmask16 live = __mmask16((1u << G) - 1);
  constexpr int kChains = 8;
  for (int j = 0; j < L; j += kChains) {
    const int m = std::min(kChains, L - j);
    const float* k[kChains];  // past L: repeats of the last position, computed and not stored
    for (int r = 0; r < kChains; ++r) k[r] = it.Ks + size_t(j + std::min(r, m - 1)) * kD;
    __m512 c[kChains];
    const __m512 q0 = _mm512_loadu_ps(qt);
    for (int r = 0; r < kChains; ++r) c[r] = _mm512_mul_ps(q0, _mm512_set1_ps(k[r][0]));
    for (int d = 1; d < kD; ++d) {
      const __m512 qd = _mm512_loadu_ps(qt + d * kLanes);
      for (int r = 0; r < kChains; ++r) c[r] = _mm512_fmadd_ps(qd, _mm512_set1_ps(k[r][d]), c[r]);
    }
    for (int r = 0; r < m; ++r) _mm512_mask_i32scatter_ps(s + j + r, live, rows, _mm512_mul_ps(c[r], scale), 4);
  }
}

// out[c] = column c of the 16 x 16 block whose rows are r[0..15] (four shuffle stages).
GEN_AVX512 GEN_INLINE void transpose16(const __m512* r, __m512* out) {
  __m512 t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);      // a0 b0 a1 b1 per 128-bit lane
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);  // a2 b2 a3 b3
  }
  for (int i = 0; i < 4; ++i) {  // u[4i + k]: rows 4i..4i+3 of column 4Q + k in lane Q
    u[4 * i + 0] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    u[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    u[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    u[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  for (int k = 0; k < 4; ++k) {
    const __m512 v = _mm512_shuffle_f32x4(u[k], u[4 + k], 0x88), v2 = _mm512_shuffle_f32x4(u[k], u[4 + k], 0xDD);
    const __m512 w = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0x88),
                 w2 = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0xDD);
    out[k] = _mm512_shuffle_f32x4(v, w, 0x88);
    out[8 + k] = _mm512_shuffle_f32x4(v, w, 0xDD);
    out[4 + k] = _mm512_shuffle_f32x4(v2, w2, 0x88);
    out[12 + k] = _mm512_shuffle_f32x4(v2, w2, 0xDD);
  }
}

// Scores of positions [j0, j1) of one query, 16 positions per register: each block of 16 rows of K
// transposed in registers, 16 columns at a time (the last block masked).
GEN_AVX512 void own_scores(float* s, const float* q, const float* K, int j0, int j1) {
  for (int j = j0; j < j1; j += kLanes) {
    const int m = std::min(kLanes, j1 - j);
    const __mmask16 live = __mmask16((1u << m) - 1);
    __m512 c = _mm512_setzero_ps();
    for (int cb = 0; cb < kD; cb += kLanes) {
      __m512 r[kLanes], col[kLanes];
      for (int p = 0; p < kLanes; ++p) {
        r[p] = p < m ? _mm512_loadu_ps(K + size_t(j + p) * kD + cb) : _mm512_setzero_ps();
      }
      transpose16(r, col);
      for (int d = 0; d < kLanes; ++d) {
        const __m512 qd = _mm512_set1_ps(q[cb + d]);
        c = cb + d == 0 ? _mm512_mul_ps(qd, col[d]) : _mm512_fmadd_ps(qd, col[d], c);
      }
    }
    _mm512_mask_storeu_ps(s + j, live, _mm512_mul_ps(c, _mm512_set1_ps(0.125f)));
  }
}

// acc[g] += p[g] V over shared positions [0, L), one query per lane, 16 of the 64 columns at a time.
// pt: scratch [L][16], p transposed.
GEN_AVX512 void shared_accumulate(const Item& it, int L, int n_max, const float* s, float* acc, float* pt) {
  const int G = it.count;
  const __m512i rows = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                          _mm512_set1_epi32(n_max));
  const __mmask16 live = __mmask16((1u << G) - 1);
  for (int j = 0; j < L; ++j) {
    _mm512_storeu_ps(pt + size_t(j) * kLanes, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), live, rows, s + j, 4));
  }
  const __m512i accs = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                          _mm512_set1_epi32(kD));
  for (int d0 = 0; d0 < kD; d0 += kLanes) {
    __m512 a[kLanes];
    for (int dd = 0; dd < kLanes; ++dd) a[dd] = _mm512_setzero_ps();
    for (int j = 0; j < L; ++j) {
      const __m512 p = _mm512_loadu_ps(pt + size_t(j) * kLanes);
      const float* v = it.Vs + size_t(j) * kD + d0;
      for (int dd = 0; dd < kLanes; ++dd) a[dd] = _mm512_fmadd_ps(p, _mm512_set1_ps(v[dd]), a[dd]);
    }
    for (int dd = 0; dd < kLanes; ++dd) _mm512_mask_i32scatter_ps(acc + d0 + dd, live, accs, a[dd], 4);
  }
}

// a += p V over [j0, j1) of one query, the 64 columns in four registers.
GEN_AVX512 void own_accumulate(float* a, const float* p, const float* V, int j0, int j1) {
  __m512 a0 = _mm512_loadu_ps(a), a1 = _mm512_loadu_ps(a + 16), a2 = _mm512_loadu_ps(a + 32),
         a3 = _mm512_loadu_ps(a + 48);
  for (int j = j0; j < j1; ++j) {
    const __m512 pj = _mm512_set1_ps(p[j]);
    const float* v = V + size_t(j) * kD;
    a0 = _mm512_fmadd_ps(pj, _mm512_loadu_ps(v), a0);
    a1 = _mm512_fmadd_ps(pj, _mm512_loadu_ps(v + 16), a1);
    a2 = _mm512_fmadd_ps(pj, _mm512_loadu_ps(v + 32), a2);
    a3 = _mm512_fmadd_ps(pj, _mm512_loadu_ps(v + 48), a3);
  }
  _mm512_storeu_ps(a, a0);
  _mm512_storeu_ps(a + 16, a1);
  _mm512_storeu_ps(a + 32, a2);
  _mm512_storeu_ps(a + 48, a3);
}

// Asks for a query's own K and V rows (positions [L, n)) while the one before it computes: short runs
// of rows, which the hardware prefetcher would start on late.
GEN_AVX512 void prefetch_own(const DecodeQuery& Q, int h, int L) {
  const char* k = reinterpret_cast<const char*>(Q.k_cache + (size_t(h) * Q.ctx + L) * kD);
  const char* v = reinterpret_cast<const char*>(Q.v_cache + (size_t(h) * Q.ctx + L) * kD);
  for (size_t off = 0; off < size_t(Q.n - L) * kD * sizeof(float); off += 64) {
    _mm_prefetch(k + off, _MM_HINT_T1);
    _mm_prefetch(v + off, _MM_HINT_T1);
  }
}

// One head of an item. s: [count][n_max] scores; acc: [count][64]; wide: [16][n_max + 64 + 16].
GEN_AVX512 void attend_avx512(const Item& it, int h, int n_max, float* s, float* acc, float* wide) {
  const int G = it.count, L = it.shared;
  const bool lanes = G >= 2 && L > 0;  // queries in lanes over the shared positions
  if (lanes) shared_scores(it, h, L, n_max, s, wide + size_t(kLanes) * n_max);
  for (int g = 0; g < G; ++g) {
    const DecodeQuery& Q = it.q[g];
    float* sg = s + size_t(g) * n_max;
    if (g + 1 < G) prefetch_own(it.q[g + 1], h, L);
    if (!lanes) own_scores(sg, Q.q + h * kD, it.Ks, 0, L);
    own_scores(sg, Q.q + h * kD, Q.k_cache + size_t(h) * Q.ctx * kD, L, Q.n);
    softmax(sg, Q.n);
  }
  std::fill(acc, acc + size_t(G) * kD, 0.0f);
  if (lanes) shared_accumulate(it, L, n_max, s, acc, wide);
  for (int g = 0; g < G; ++g) {
    const DecodeQuery& Q = it.q[g];
    float* a = acc + size_t(g) * kD;
    if (!lanes) own_accumulate(a, s + size_t(g) * n_max, it.Vs, 0, L);
    own_accumulate(a, s + size_t(g) * n_max, Q.v_cache + size_t(h) * Q.ctx * kD, L, Q.n);
    std::copy(a, a + kD, Q.out + h * kD);
  }
}

#undef GEN_AVX512
}  // namespace
}  // namespace gen::cpu
