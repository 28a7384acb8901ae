// kernels/sampling.cu against the CPU sampler gen::sample, which implements the same algorithm
// (engine/sample_rng.h): equal logits must give equal tokens.
//
// Two places may legitimately differ (see sample_rng.h). Top-p's sums are rounded differently, so the
// tokens whose cumulative mass lies within kMargin of the target (the "band") may be kept on one side
// only; and expf/logf differ by an ulp between glibc and CUDA, so two Gumbel scores within 1e-5 may
// order either way. A mismatch is tolerated only when one of the two tokens is in the band or their
// scores tie so, and such mismatches must stay rare; any other is a failure.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <iterator>
#include <random>
#include <vector>

#include "cuda/cuda_common.h"
#include "cuda_kernels.h"
#include "cuda_test_util.h"
#include "engine/sample_rng.h"
#include "gen/sampler.h"

using gen::SamplingParams;
using gen::cuda::DeviceBuffer;
using gen::cuda::SampleParams;
namespace smp = gen::sampling;

namespace {

// CPU sums are in double, the GPU's fp32 block sums are within ~1e-5 of them.
constexpr double kMargin = 3e-5;

// The kept set: keep z >= thr (top-p's sums in double). [band_lo, band_hi] holds the z values whose
// cumulative mass is within kMargin of top-p's target, where either side may put the boundary; `clear`
// when that is the boundary token alone.
struct Kept {
  float thr = -INFINITY;
  float band_lo = INFINITY, band_hi = -INFINITY;
  bool clear = true;
  bool in_band(float z) const { return z >= band_lo && z <= band_hi; }
};

Kept kept_set(const std::vector<float>& l, const SamplingParams& p) {
  Kept k;
  const int n = int(l.size());
  if (!(p.temperature > 0.0f)) return k;
  std::vector<float> z(n);
  for (int i = 0; i < n; ++i) z[i] = smp::scaled_logit(l[i], p.temperature);
  if (p.top_k > 0 && p.top_k < n) {
    std::nth_element(z.begin(), z.begin() + (p.top_k - 1), z.end(), std::greater<float>());
    k.thr = z[p.top_k - 1];
  }
  if (!(p.top_p < 1.0f)) return k;
  z.erase(std::remove_if(z.begin(), z.end(), [&](float v) { return v < k.thr; }), z.end());
  std::sort(z.begin(), z.end(), std::greater<float>());
  double total = 0;
  for (float v : z) total += std::exp(double(v) - z[0]);
  const double target = double(p.top_p) * total, margin = kMargin * total;
  double cum = 0;
  bool found = false;
  for (size_t j = 0; j < z.size(); ++j) {  // one group of equal values per iteration
    const double before = cum;
    while (j + 1 < z.size() && z[j + 1] == z[j]) cum += std::exp(double(z[j]) - z[0]), ++j;
    cum += std::exp(double(z[j]) - z[0]);
    if (!found && cum >= target) k.thr = z[j], found = true;
    if (cum >= target - margin && before < target + margin) {
      k.band_lo = std::min(k.band_lo, z[j]);
      k.band_hi = std::max(k.band_hi, z[j]);
    }
    if (before >= target + margin) break;
  }
  k.clear = found && k.band_lo == k.band_hi;
  return k;
}

float score(const std::vector<float>& l, const SamplingParams& p, uint64_t seed, int step, int id) {
  const float z = smp::scaled_logit(l[id], p.temperature);
  return smp::perturbed(z, smp::gumbel(smp::stream_key(seed, step), uint32_t(id)));
}

// A row of normal logits times `scale` (peaked like a language model's), optionally on a grid of 1/4 so
// that values tie.
std::vector<float> make_row(int V, std::mt19937& rng, float scale, bool grid) {
  std::vector<float> l = gen::test::random_normal(size_t(V), rng, 0.0f, scale);
  if (grid)
    for (float& v : l) v = std::round(v * 4) / 4;
  return l;
}

struct Batch {
  std::vector<float> logits;  // [B, V]
  std::vector<SamplingParams> params;
  std::vector<uint64_t> seeds;
  std::vector<int> steps;
};

std::vector<int> gpu_sample(const Batch& b, int V) {
  const int B = int(b.params.size());
  std::vector<SampleParams> sp(B);
  for (int i = 0; i < B; ++i) {
    sp[i] = {b.params[i].temperature, b.params[i].top_k, b.params[i].top_p, b.seeds[i], b.steps[i]};
  }
  DeviceBuffer<float> d_logits(b.logits.size());
  DeviceBuffer<SampleParams> d_params(B);
  DeviceBuffer<int> d_out(B);
  CUDA_CHECK(cudaMemcpy(d_logits.get(), b.logits.data(), d_logits.bytes(), cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(d_params.get(), sp.data(), d_params.bytes(), cudaMemcpyHostToDevice));
  gen::test::poison(d_out);  // -1: not written
  gen::cuda::sample(d_out.get(), d_logits.get(), d_params.get(), B, V, nullptr);
  std::vector<int> out(B);
  CUDA_CHECK(cudaMemcpy(out.data(), d_out.get(), d_out.bytes(), cudaMemcpyDeviceToHost));
  return out;
}

// GPU tokens against the CPU sampler's, row by row. Returns the number of tolerated mismatches.
int compare(const Batch& b, int V) {
  const std::vector<int> got = gpu_sample(b, V);
  gen::SampleScratch scratch;
  int tolerated = 0;
  for (size_t r = 0; r < got.size(); ++r) {
    const std::vector<float> l(b.logits.begin() + r * V, b.logits.begin() + (r + 1) * V);
    const SamplingParams& p = b.params[r];
    const int want = gen::sample(l.data(), V, p, b.seeds[r], b.steps[r], scratch);
    if (got[r] == want) continue;
    INFO("row " << r << " V " << V << " T " << p.temperature << " k " << p.top_k << " p " << p.top_p
                << " seed " << b.seeds[r] << " step " << b.steps[r] << ": gpu " << got[r] << ", cpu "
                << want);
    REQUIRE(got[r] >= 0);
    REQUIRE(got[r] < V);
    ++tolerated;
    const Kept k = kept_set(l, p);
    const float zg = smp::scaled_logit(l[got[r]], p.temperature),
                zw = smp::scaled_logit(l[want], p.temperature);
    if (k.in_band(zg) || k.in_band(zw)) continue;  // top-p's boundary, rounded apart
    REQUIRE(zg >= k.thr);                          // otherwise the GPU kept the same set
    const float a = score(l, p, b.seeds[r], b.steps[r], got[r]),
                c = score(l, p, b.seeds[r], b.steps[r], want);
    REQUIRE(std::fabs(a - c) <= 1e-5f * std::max(1.0f, std::fabs(c)));  // a Gumbel near-tie
  }
  return tolerated;
}

const SamplingParams kParams[] = {
    {0.0f, 0, 1.0f},      // greedy
    {1.0f, 0, 1.0f},      // plain sampling
    {0.7f, 0, 1.0f},      // temperature
    {1.0f, 40, 1.0f},     // top-k
    {1.0f, 0, 0.9f},      // top-p
    {0.8f, 40, 0.95f},    // all three
    {1.2f, 0, 0.5f},      //
    {0.7f, 1, 1.0f},      // top-1: greedy but for ties
    {1.0f, 5000, 0.97f},  // top-k above V: off
};

}  // namespace

TEST_CASE("GPU sampling draws the CPU sampler's tokens", "[cuda][sampling]") {
  std::mt19937 rng(11);
  int tolerated = 0, draws = 0;
  for (int V : {50257, 1000}) {
    for (int B : {1, 7, 64}) {
      for (const SamplingParams& p : kParams) {
        for (int round = 0; round < 2; ++round) {
          const bool grid = round == 1;
          Batch b;
          for (int r = 0; r < B; ++r) {
            std::vector<float> row = make_row(V, rng, 3.0f, grid);
            b.logits.insert(b.logits.end(), row.begin(), row.end());
            b.params.push_back(p);
            b.seeds.push_back(rng());
            b.steps.push_back(int(rng() % 1000));
          }
          tolerated += compare(b, V);
          draws += B;
        }
      }
    }
  }
  INFO(tolerated << " tolerated mismatches in " << draws << " draws");
  REQUIRE(tolerated <= draws / 100);
}

TEST_CASE("GPU sampling at edge sizes and parameters", "[cuda][sampling]") {
  // Vocabularies smaller than the block (whole warps without a token) or one past it; top-k at V - 1 and
  // V (off); top-p so small that only the maximum survives, and 0; temperatures that are tiny (z overflows
  // to inf), negative (greedy) or infinite (all z equal).
  std::mt19937 rng(15);
  int tolerated = 0, draws = 0;
  for (int V : {1, 2, 31, 513}) {
    const SamplingParams params[] = {{1.0f, V - 1, 1.0f},  {1.0f, V, 0.9f},       {1.0f, 0, 1e-7f},
                                     {0.9f, 0, 0.0f},      {1e-30f, 0, 0.9f},     {-1.0f, 0, 1.0f},
                                     {INFINITY, 0, 0.5f}, {0.5f, V - 1, 0.999f}, {1.0f, 3, 0.5f}};
    for (int round = 0; round < 2; ++round) {
      Batch b;
      for (const SamplingParams& p : params) {
        std::vector<float> row = make_row(V, rng, 3.0f, round == 1);
        b.logits.insert(b.logits.end(), row.begin(), row.end());
        b.params.push_back(p);
        b.seeds.push_back(rng());
        b.steps.push_back(int(rng() % 1000));
      }
      tolerated += compare(b, V);
      draws += int(b.params.size());
    }
  }
  INFO(tolerated << " tolerated mismatches in " << draws << " draws");
  REQUIRE(tolerated <= 1 + draws / 50);
}

TEST_CASE("GPU sampling: each row of a batch has its own parameters and stream", "[cuda][sampling]") {
  std::mt19937 rng(12);
  const int V = 50257, B = 64;
  Batch b;
  for (int r = 0; r < B; ++r) {
    const SamplingParams& p = kParams[r % std::size(kParams)];
    std::vector<float> row = make_row(V, rng, 2.0f + r % 3, r % 4 == 0);
    b.logits.insert(b.logits.end(), row.begin(), row.end());
    b.params.push_back(p);
    b.seeds.push_back(r % 5);  // repeated seeds at different steps, repeated steps with different seeds
    b.steps.push_back(r % 7);
  }
  REQUIRE(compare(b, V) <= 1);
  REQUIRE(gpu_sample(b, V) == gpu_sample(b, V));  // deterministic: fixed-order reductions
}

TEST_CASE("GPU sampling handles ties, NaN and infinite logits like the CPU", "[cuda][sampling]") {
  const int V = 1000;
  std::mt19937 rng(14);
  std::vector<float> l(V);
  auto all_clear = [&] {
    return std::all_of(std::begin(kParams), std::end(kParams), [&](auto& p) { return kept_set(l, p).clear; });
  };
  for (int attempt = 0; attempt == 0 || (!all_clear() && attempt < 200); ++attempt) {
    l = gen::test::random_normal(size_t(V), rng, 0.0f, 3.0f);
    l[5] = l[900] = *std::max_element(l.begin(), l.end()) + 1.0f;  // a tied maximum: greedy takes id 5
    l[0] = NAN;
    l[1] = -INFINITY;
    l[2] = -0.0f;
  }
  REQUIRE(all_clear());
  Batch b;
  for (const SamplingParams& p : kParams) {
    for (int step = 0; step < 8; ++step) {
      b.logits.insert(b.logits.end(), l.begin(), l.end());
      b.params.push_back(p);
      b.seeds.push_back(99);
      b.steps.push_back(step);
    }
  }
  // All -inf: every rule keeps id 0.
  for (const SamplingParams& p : kParams) {
    b.logits.insert(b.logits.end(), V, -INFINITY);
    b.params.push_back(p);
    b.seeds.push_back(1);
    b.steps.push_back(0);
  }
  REQUIRE(compare(b, V) == 0);
  const std::vector<int> got = gpu_sample(b, V);
  REQUIRE(got[0] == 5);  // greedy, first row
  REQUIRE(got.back() == 0);
}

TEST_CASE("GPU sampling can be captured in a CUDA graph", "[cuda][sampling]") {
  std::mt19937 rng(13);
  const int V = 50257, B = 7;
  std::vector<float> logits;
  std::vector<SampleParams> sp;
  for (int r = 0; r < B; ++r) {
    const SamplingParams& p = kParams[5];
    std::vector<float> row = make_row(V, rng, 3.0f, false);
    logits.insert(logits.end(), row.begin(), row.end());
    sp.push_back({p.temperature, p.top_k, p.top_p, uint64_t(r), 3});
  }
  DeviceBuffer<float> d_logits(logits.size());
  DeviceBuffer<SampleParams> d_params(B);
  DeviceBuffer<int> d_eager(B), d_graph(B);
  CUDA_CHECK(cudaMemcpy(d_logits.get(), logits.data(), d_logits.bytes(), cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(d_params.get(), sp.data(), d_params.bytes(), cudaMemcpyHostToDevice));
  gen::test::poison(d_graph);
  cudaStream_t stream;
  CUDA_CHECK(cudaStreamCreate(&stream));
  gen::cuda::sample(d_eager.get(), d_logits.get(), d_params.get(), B, V, stream);
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  gen::cuda::sample(d_graph.get(), d_logits.get(), d_params.get(), B, V, stream);
  CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  CUDA_CHECK(cudaGraphLaunch(exec, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
  std::vector<int> eager(B), replay(B);
  CUDA_CHECK(cudaMemcpy(eager.data(), d_eager.get(), d_eager.bytes(), cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaMemcpy(replay.data(), d_graph.get(), d_graph.bytes(), cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaGraphExecDestroy(exec));
  CUDA_CHECK(cudaGraphDestroy(graph));
  CUDA_CHECK(cudaStreamDestroy(stream));
  REQUIRE(replay == eager);
}

TEST_CASE("GPU sampling skips a padded vocabulary's columns and flags rows that are not finite",
          "[cuda][sampling]") {
  // Rows of ld = 1031 floats of which ids [0, 1000) are real: the padded columns are huge (they would
  // win every draw) and one holds a NaN, which check_finite must not see.
  const int V = 1000, ld = 1031;
  std::mt19937 rng(15);
  std::vector<float> logits;
  std::vector<SampleParams> sp;
  Batch packed;  // the same rows at stride V
  for (size_t r = 0; r < 3 * std::size(kParams); ++r) {
    const SamplingParams& p = kParams[r % std::size(kParams)];
    std::vector<float> row = make_row(V, rng, 3.0f, false);
    if (r / std::size(kParams) == 1) row[500] = NAN;       // not finite: -1
    if (r / std::size(kParams) == 2) row[999] = -INFINITY;  // not finite: -1
    packed.logits.insert(packed.logits.end(), row.begin(), row.end());
    packed.params.push_back(p);
    packed.seeds.push_back(r);
    packed.steps.push_back(int(r % 5));
    row.resize(ld, 1e30f);
    row[1010] = NAN;
    logits.insert(logits.end(), row.begin(), row.end());
    sp.push_back({p.temperature, p.top_k, p.top_p, uint64_t(r), int(r % 5)});
  }
  const int B = int(sp.size());
  DeviceBuffer<float> d_logits(logits.size());
  DeviceBuffer<SampleParams> d_params(sp.size());
  DeviceBuffer<int> d_out(sp.size());
  CUDA_CHECK(cudaMemcpy(d_logits.get(), logits.data(), d_logits.bytes(), cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(d_params.get(), sp.data(), d_params.bytes(), cudaMemcpyHostToDevice));
  std::vector<int> got(sp.size()), unchecked(sp.size());
  for (bool check : {true, false}) {
    CUDA_CHECK(cudaMemset(d_out.get(), 0x7f, d_out.bytes()));  // neither a token nor -1
    gen::cuda::sample(d_out.get(), d_logits.get(), d_params.get(), B, V, nullptr, ld, check);
    std::vector<int>& out = check ? got : unchecked;
    CUDA_CHECK(cudaMemcpy(out.data(), d_out.get(), d_out.bytes(), cudaMemcpyDeviceToHost));
  }
  // Unchecked, the strided rows draw what the packed rows draw (which the tests above hold to the CPU
  // twin); checked, the rows that are not finite give -1.
  const std::vector<int> want = gpu_sample(packed, V);
  REQUIRE(unchecked == want);
  for (int r = 0; r < B; ++r) {
    INFO("row " << r);
    REQUIRE(want[size_t(r)] >= 0);
    REQUIRE(want[size_t(r)] < V);
    const bool finite = gen::logits_finite(&packed.logits[size_t(r) * V], V);
    REQUIRE(got[size_t(r)] == (finite ? want[size_t(r)] : -1));
  }
  REQUIRE(std::count(got.begin(), got.end(), -1) == 2 * int(std::size(kParams)));
}
