// The CPU's fp32, bf16 and int8 matrices (cpu/linear.h), oneDNN's kernels and the plain paths alike,
// against float64 sums of the very rounded or quantized values they multiply, at awkward row counts and
// GPT-2's widths; then whole models in bf16 and int8 against fp32: logits and perplexity.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "cpu/cpu_backend.h"
#include "cpu/linear.h"
#include "fixture_model.h"
#include "gen/error.h"
#include "gen/perplexity.h"
#include "random_inputs.h"
#include "test_util.h"

using namespace gen;
using namespace gen::test;
using cpu::Precision;

namespace {

// out = x W + bias in float64 over the values the dtype really multiplies: bf16-rounded x and W, or the
// int8 codes of x's rows and W's columns times their scales.
std::vector<float> reference(const std::vector<float>& x, const cpu::WeightView& w, const float* bias, int T,
                             Precision dt) {
  const int K = w.K, N = w.N;
  auto at = [&](int k, int n) { return w.stored_transposed ? w.data[size_t(n) * K + k] : w.data[size_t(k) * N + n]; };
  std::vector<double> xs(size_t(T) * K), ws(size_t(N) * K), xscale(T, 1.0), wscale(N, 1.0);
  std::vector<int8_t> q(std::max(K, 1));
  std::vector<float> col(K);
  for (int n = 0; n < N; ++n) {
    for (int k = 0; k < K; ++k) col[k] = at(k, n);
    if (dt == Precision::int8) wscale[n] = cpu::quantize_row(col.data(), K, q.data());
    for (int k = 0; k < K; ++k)
      ws[size_t(n) * K + k] = dt == Precision::int8   ? q[k]
                              : dt == Precision::bf16 ? cpu::from_bf16(cpu::to_bf16(col[k]))
                                                      : col[k];
  }
  for (int t = 0; t < T; ++t) {
    const float* row = &x[size_t(t) * K];
    if (dt == Precision::int8) xscale[t] = cpu::quantize_row(row, K, q.data());
    for (int k = 0; k < K; ++k)
      xs[size_t(t) * K + k] = dt == Precision::int8   ? q[k]
                              : dt == Precision::bf16 ? cpu::from_bf16(cpu::to_bf16(row[k]))
                                                      : row[k];
  }
  std::vector<float> out(size_t(T) * N);
  for (int t = 0; t < T; ++t)
    for (int n = 0; n < N; ++n) {
      double acc = 0;
      for (int k = 0; k < K; ++k) acc += xs[size_t(t) * K + k] * ws[size_t(n) * K + k];
      out[size_t(t) * N + n] = float(acc * xscale[t] * wscale[n] + (bias ? bias[n] : 0.0));
    }
  return out;
}

void check_linear(int T, int K, int N, bool transposed, Precision dt, bool plain, uint32_t seed) {
  const std::vector<float> W = random_normal(size_t(K) * N, seed, 0.0f, 0.05f);
  const std::vector<float> x = random_normal(size_t(T) * K, seed + 1);
  const std::vector<float> bias = random_normal(N, seed + 2, 0.0f, 0.1f);
  const cpu::WeightView view{W.data(), K, N, transposed};
  cpu::Linear lin(view, dt, plain);
  std::vector<float> out = poisoned<float>(size_t(T) * N);
  lin.apply(out.data(), x.data(), bias.data(), T);
  const std::vector<float> ref = reference(x, view, bias.data(), T, dt);
  INFO(cpu::dtype_name(dt) << (lin.plain() ? " plain" : " oneDNN") << " T " << T << " K " << K << " N " << N
                           << (transposed ? " (stored [N, K])" : ""));
  if (plain) REQUIRE(lin.plain());
  // fp32 accumulation of K products of size ~0.05: the sums' own rounding.
  REQUIRE(check_close(out.data(), ref.data(), out.size(), 2e-7 * K, 1e-5) == "");
}

}  // namespace

TEST_CASE("fp32, bf16 and int8 matrices equal float64 sums of their rounded values, at awkward sizes",
          "[linear]") {
  for (Precision dt : {Precision::fp32, Precision::bf16, Precision::int8}) {
    for (bool plain : {false, true}) {
      for (int T : {1, 31, 64, 1000, 1025}) check_linear(T, 768, T >= 1000 ? 40 : 300, false, dt, plain, 10 + T);
      for (int N : {768, 1024, 1280, 1600, 2304, 6400, 50257}) check_linear(3, 40, N, false, dt, plain, 20 + N);
      for (int K : {768, 1024, 1280, 1600, 2304, 6400}) check_linear(5, K, 24, false, dt, plain, 30 + K);
      check_linear(2, 768, 50257, true, dt, plain, 40);  // the tied LM head, stored [V, C]
      check_linear(2, 13, 17, false, dt, plain, 50);     // widths no kernel blocks evenly
    }
  }
}

TEST_CASE("Rounding to bf16 is to nearest even, and an int8 row is within half a step", "[linear]") {
  REQUIRE(cpu::to_bf16(1.0f) == 0x3f80);
  REQUIRE(cpu::from_bf16(cpu::to_bf16(1.0f + 1.0f / 256)) == 1.0f);            // a tie: to even (down)
  REQUIRE(cpu::from_bf16(cpu::to_bf16(1.0f + 3.0f / 256)) == 1.0f + 1.0f / 64);  // a tie: to even (up)
  REQUIRE(std::isnan(cpu::from_bf16(cpu::to_bf16(std::nanf("")))));
  REQUIRE(std::isinf(cpu::from_bf16(cpu::to_bf16(INFINITY))));
  const std::vector<float> x = random_normal(1000, 7u, 0.0f, 3.0f);
  std::vector<int8_t> q(x.size());
  const float scale = cpu::quantize_row(x.data(), int(x.size()), q.data());
  float mx = 0;
  for (float v : x) mx = std::max(mx, std::fabs(v));
  REQUIRE(scale == Approx(mx / 127).epsilon(1e-6));
  for (size_t i = 0; i < x.size(); ++i) REQUIRE(std::fabs(q[i] * scale - x[i]) <= scale * 0.5f * (1 + 1e-5f));
  std::vector<float> zeros(8, 0.0f);
  REQUIRE(cpu::quantize_row(zeros.data(), 8, q.data()) == 1.0f);
}

TEST_CASE("The CPU backend in bf16 and int8 stays near fp32: logits and perplexity", "[linear]") {
  // A model whose logits are far from uniform (larger weights than GPT-2's init), at GPT-2's width.
  TempDir dir;
  MakeModelSpec spec;
  spec.cfg.n_layer = 2;
  spec.cfg.n_head = 12;
  spec.cfg.n_embd = 768;
  spec.cfg.n_positions = 64;
  spec.cfg.vocab_size = 1000;
  spec.cfg.eos_token_id = 999;
  spec.init_std = 0.05f;
  const auto w = make_random_weights(dir.path(), spec);
  const std::vector<int> ids = random_ids(64, 1000, 5u);
  CpuBackend ref(w, 2, Precision::fp32);
  const int V = 1000;
  std::vector<float> want(size_t(64) * V), got(want.size());
  ref.forward_all({SeqInput{0, ids, 0}}, nullptr, want.data());
  const double nll32 = perplexity(ref, ids, 64).nll();
  for (auto [dt, logit_tol, nll_tol] : {std::tuple{Precision::bf16, 2e-2, 0.01}, {Precision::int8, 5e-2, 0.03}}) {
    CpuBackend be(w, 2, dt);
    REQUIRE(be.dtype() == cpu::dtype_name(dt));
    be.forward_all({SeqInput{0, ids, 0}}, nullptr, got.data());
    double worst = 0;
    for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, double(std::fabs(got[i] - want[i])));
    INFO(cpu::dtype_name(dt) << ": worst logit difference " << worst);
    REQUIRE(worst > 0);  // it did compute in its own dtype
    for (int r = 0; r < 64; ++r) REQUIRE(check_logits_row(&got[size_t(r) * V], &want[size_t(r) * V], V, logit_tol) == "");
    const double nll = perplexity(be, ids, 64).nll();
    INFO("nll fp32 " << nll32 << ", " << cpu::dtype_name(dt) << " " << nll);
    REQUIRE(std::fabs(nll - nll32) <= nll_tol * nll32);
  }
}

TEST_CASE("The CPU refuses dtypes it does not run, by name", "[linear]") {
  REQUIRE(cpu::parse_dtype("") == Precision::fp32);
  REQUIRE(cpu::parse_dtype("int8") == Precision::int8);
  REQUIRE_THROWS_WITH(cpu::parse_dtype("fp16"), "--dtype fp16 is not supported on the CPU (fp32, bf16 or int8) (--dtype)");
  REQUIRE_THROWS_AS(cpu::parse_dtype("int4"), InputError);
}
