// Each CPU op against a float64 implementation written out here, on random inputs at awkward sizes.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "cpu/cpu_ops.h"
#include "random_inputs.h"
#include "test_util.h"

using namespace gen;
using gen::test::check_close;
using gen::test::poisoned;  // outputs start as NaN so that an unwritten element cannot pass
using gen::test::random_normal;

TEST_CASE("matmul and the tied LM head equal a float64 product", "[ops]") {
  for (int T : {1, 3, 31, 64}) {
    const int K = 40, N = 72;
    auto x = random_normal(size_t(T) * K, 1 + T), W = random_normal(size_t(K) * N, 2);
    auto b = random_normal(N, 3);
    std::vector<float> out = poisoned<float>(size_t(T) * N), ref(out.size());
    std::vector<float> out_t = poisoned<float>(size_t(T) * K), ref_t(out_t.size());
    for (int t = 0; t < T; ++t)
      for (int n = 0; n < N; ++n) {
        double s = b[n];
        for (int k = 0; k < K; ++k) s += double(x[size_t(t) * K + k]) * W[size_t(k) * N + n];
        ref[size_t(t) * N + n] = float(s);
      }
    cpu::matmul(out.data(), x.data(), W.data(), b.data(), T, K, N);
    INFO("T = " << T);
    REQUIRE(check_close(out.data(), ref.data(), out.size(), 1e-5, 1e-5) == "");
    // x2 [T, N] @ W^T where W is read as E [K rows, N cols]: out [T, K].
    std::vector<float> x2(size_t(T) * N);
    for (size_t i = 0; i < x2.size(); ++i) x2[i] = ref[i] * 0.1f;
    for (int t = 0; t < T; ++t)
      for (int k = 0; k < K; ++k) {
        double s = 0;
        for (int n = 0; n < N; ++n) s += double(x2[size_t(t) * N + n]) * W[size_t(k) * N + n];
        ref_t[size_t(t) * K + k] = float(s);
      }
    cpu::matmul_transposed(out_t.data(), x2.data(), W.data(), T, N, K);
    REQUIRE(check_close(out_t.data(), ref_t.data(), out_t.size(), 1e-5, 1e-5) == "");
  }
}

TEST_CASE("layernorm, gelu_new and embed equal their float64 formulas", "[ops]") {
  const int T = 31, C = 100;
  auto x = random_normal(size_t(T) * C, 7, 0.0f, 3.0f), w = random_normal(C, 8), b = random_normal(C, 9);
  for (auto& v : x) v += 5.0f;  // a large mean: the variance must not cancel
  std::vector<float> out = poisoned<float>(x.size()), ref(x.size());
  for (int t = 0; t < T; ++t) {
    double m = 0, v = 0;
    for (int c = 0; c < C; ++c) m += x[t * C + c];
    m /= C;
    for (int c = 0; c < C; ++c) v += (x[t * C + c] - m) * (x[t * C + c] - m);
    v /= C;
    for (int c = 0; c < C; ++c) ref[t * C + c] = float((x[t * C + c] - m) / std::sqrt(v + 1e-5) * w[c] + b[c]);
  }
  cpu::layernorm(out.data(), x.data(), w.data(), b.data(), T, C, 1e-5f);
  REQUIRE(check_close(out.data(), ref.data(), out.size(), 1e-5, 1e-5) == "");

  auto g = random_normal(100003, 10, 0.0f, 4.0f);  // past the parallel threshold, with a SIMD tail
  // The exp's clamps and the far tails: gelu(v) -> v for large v, -> -0 for very negative v.
  for (float v : {0.0f, 1e-30f, -1e-30f, 1e-4f, -1e-4f, 9.0f, -9.0f, 30.0f, -30.0f, 200.0f, -200.0f, 3e38f, -3e38f})
    g.push_back(v);
  std::vector<float> gref(g.size());
  for (size_t i = 0; i < g.size(); ++i) {
    double v = g[i];
    gref[i] = float(0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))));
  }
  cpu::gelu_inplace(g.data(), g.size());
  REQUIRE(check_close(g.data(), gref.data(), g.size(), 1e-6, 1e-5) == "");

  const int V = 11, P = 9;
  auto wte = random_normal(size_t(V) * C, 11), wpe = random_normal(size_t(P) * C, 12);
  std::vector<int> tokens = {10, 0, 3};
  std::vector<float> e = poisoned<float>(3 * C);
  cpu::embed(e.data(), tokens.data(), 3, 5, wte.data(), wpe.data(), C);
  for (int t = 0; t < 3; ++t)
    for (int c = 0; c < C; ++c) REQUIRE(e[t * C + c] == wte[tokens[t] * C + c] + wpe[(5 + t) * C + c]);
}

TEST_CASE("attention over the cache equals a float64 causal softmax attention", "[ops]") {
  const int H = 3, D = 16, C = H * D;
  // Query blocks of 64 rows: one, several, a partial last one, after a cached prefix.
  for (auto [pos0, T] : {std::pair{0, 1}, {0, 31}, {5, 1}, {40, 7}, {0, 64}, {0, 65}, {3, 129}, {70, 200}, {0, 1025}}) {
    const int ctx = pos0 + T + 3;  // the cache is larger than what is used
    auto qkv = random_normal(size_t(T) * 3 * C, 100 + T);
    auto k = random_normal(size_t(H) * ctx * D, 200), v = random_normal(size_t(H) * ctx * D, 300);
    cpu::kv_write(k.data(), v.data(), ctx, qkv.data(), T, pos0, H, D);
    for (int t = 0; t < T; ++t)  // kv_write put the new K and V rows where attention reads them
      for (int h = 0; h < H; ++h)
        for (int d = 0; d < D; ++d) {
          REQUIRE(k[(size_t(h) * ctx + pos0 + t) * D + d] == qkv[size_t(t) * 3 * C + C + h * D + d]);
          REQUIRE(v[(size_t(h) * ctx + pos0 + t) * D + d] == qkv[size_t(t) * 3 * C + 2 * C + h * D + d]);
        }
    std::vector<float> out = poisoned<float>(size_t(T) * C), ref(out.size());
    std::vector<float> scores(cpu::attention_scratch_floats(T, pos0, 4));
    for (int t = 0; t < T; ++t)
      for (int h = 0; h < H; ++h) {
        const int n = pos0 + t + 1;
        std::vector<double> s(n);
        double mx = -1e300, sum = 0;
        for (int j = 0; j < n; ++j) {
          double dot = 0;
          for (int d = 0; d < D; ++d) dot += double(qkv[size_t(t) * 3 * C + h * D + d]) * k[(size_t(h) * ctx + j) * D + d];
          s[j] = dot / std::sqrt(double(D));
          mx = std::max(mx, s[j]);
        }
        for (auto& x : s) sum += (x = std::exp(x - mx));
        for (int d = 0; d < D; ++d) {
          double o = 0;
          for (int j = 0; j < n; ++j) o += s[j] / sum * v[(size_t(h) * ctx + j) * D + d];
          ref[size_t(t) * C + h * D + d] = float(o);
        }
      }
    cpu::attention(out.data(), qkv.data(), k.data(), v.data(), ctx, T, pos0, H, D, scores.data(), 4);
    INFO("pos0 " << pos0 << ", T " << T);
    REQUIRE(check_close(out.data(), ref.data(), out.size(), 1e-5, 1e-4) == "");
  }
}
