#include "gen/sampler.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>

#include "engine/sample_rng.h"

namespace gen {

int argmax(const float* logits, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i) {
    if (logits[i] > logits[best]) best = i;  // strict: ties keep the lowest id
  }
  return best;
}

__attribute__((target_clones("avx512f", "avx2", "default"))) bool logits_finite(const float* logits, int n) {
  uint32_t worst = 0;  // the largest magnitude's bits: Inf and NaN sort above every finite value
  for (int i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, logits + i, sizeof u);
    worst = std::max(worst, u & 0x7fffffffu);  // a max over integers vectorizes, an early exit would not
  }
  return worst < 0x7f800000u;
}

TokenLogprob token_logprob(const float* logits, int n, int token, int top) {
  float mx = -INFINITY;
  for (int i = 0; i < n; ++i) mx = std::max(mx, logits[i]);
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += std::exp(double(logits[i]) - mx);
  const double log_z = double(mx) + std::log(sum);
  TokenLogprob out;
  out.token = token;
  out.logprob = float(double(logits[token]) - log_z);
  top = std::min(std::max(top, 0), n);
  if (top == 0) return out;
  std::vector<int> ids(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) ids[size_t(i)] = i;
  auto more_likely = [&](int a, int b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  std::partial_sort(ids.begin(), ids.begin() + top, ids.end(), more_likely);
  out.top.reserve(size_t(top));
  for (int k = 0; k < top; ++k) out.top.emplace_back(ids[size_t(k)], float(double(logits[ids[size_t(k)]]) - log_z));
  return out;
}

namespace {
using namespace sampling;

// No draw can exceed z + kGumbelMax (g <= 16.64), so a token with z + kGumbelMax below the best so far is
// skipped without its two logs; the result is the same.
constexpr float kGumbelMax = 17.0f;

// In 16 lanes, each keeping its largest value and the first id holding it (strict >), then the lanes
// combined (the largest, the lowest id among equals): the same id as one scan. Cloned per ISA.
__attribute__((target_clones("avx512f", "avx2", "default"))) int greedy(const float* logits, int n) {
  constexpr int W = 16;
  float m[W];
  int id[W];
  for (int l = 0; l < W; ++l) m[l] = -INFINITY, id[l] = l;
  int i = 0;
  for (; i + W <= n; i += W) {
    for (int l = 0; l < W; ++l) {
      const float v = canonical(logits[i + l]);
      const bool more = v > m[l];
      m[l] = more ? v : m[l];
      id[l] = more ? i + l : id[l];
    }
  }
  float best_v = m[0];
  int best = id[0];
  for (int l = 1; l < W; ++l) {
    if (m[l] > best_v || (m[l] == best_v && id[l] < best)) best_v = m[l], best = id[l];
  }
  for (; i < n; ++i) {
    const float v = canonical(logits[i]);
    if (v > best_v) best_v = v, best = i;
  }
  return best;
}

// Step 3: the k-th largest z, counted with multiplicity.
float top_k_threshold(const std::vector<float>& z, int k, std::vector<float>& work) {
  work.assign(z.begin(), z.end());
  std::nth_element(work.begin(), work.begin() + (k - 1), work.end(), std::greater<float>());
  return work[k - 1];
}

// Where step 4's walk will stop, roughly: a histogram of the mass by distance below zmax (in double) finds
// a value that tau lies above, so only the values above it need sorting. Exactness does not depend on it.
float presort_cut(const std::vector<float>& kept, float zmax, double target) {
  constexpr int kBins = 128;
  constexpr float kPerUnit = 4;  // bins per unit of z: 32 units, past which exp(z - zmax) < 1e-13
  double hist[kBins] = {};
  for (float v : kept) {
    const float d = (zmax - v) * kPerUnit;
    if (d < kBins) hist[int(d)] += mass_weight(v, zmax);
  }
  double cum = 0;
  for (int b = 0; b + 1 < kBins; ++b) {
    cum += hist[b];
    if (cum >= 1.001 * target) return zmax - (b + 2) / kPerUnit;  // a bin of margin for rounding
  }
  return -INFINITY;
}

// Step 4: tau over the kept z values (z >= thr). The values are sorted only as far as the walk needs.
float top_p_threshold(const std::vector<float>& z, float thr, float top_p, std::vector<float>& kept) {
  kept.clear();
  float zmax = -INFINITY;
  for (float v : z) {
    if (v >= thr) kept.push_back(v), zmax = std::max(zmax, v);
  }
  // Sums in double: an fp32 running sum over 50k tokens drops the tiny ones (1e-4 of the mass), while the
  // GPU's block reduction keeps them (its partial sums stay small); double is the closer twin.
  double total = 0;
  for (float v : kept) total += mass_weight(v, zmax);
  const double target = double(top_p) * total;
  const size_t n = kept.size();
  const float cut = presort_cut(kept, zmax, target);
  const auto head = std::partition(kept.begin(), kept.end(), [&](float v) { return v >= cut; });
  std::sort(kept.begin(), head, std::greater<float>());
  size_t sorted = size_t(head - kept.begin());  // kept[0, sorted) holds the largest values, descending
  auto sort_to = [&](size_t upto) {             // should rounding carry the walk past the cut
    if (upto <= sorted) return;
    const size_t next = std::min(n, std::max({upto, 2 * sorted, size_t(64)}));
    std::partial_sort(kept.begin() + sorted, kept.begin() + next, kept.end(), std::greater<float>());
    sorted = next;
  };
  double cum = 0;
  for (size_t j = 0; j < n;) {
    sort_to(j + 1);
    const float v = kept[j];
    while (j < n && kept[j] == v) {  // the whole group of equal values, which may straddle a sort chunk
      cum += mass_weight(v, zmax);
      if (++j < n) sort_to(j + 1);
    }
    if (cum >= target) return v;
  }
  return kept[n - 1];  // rounding left the full sum below the target: keep everything
}

}  // namespace

int sample(const float* logits, int n, const SamplingParams& p, uint64_t seed, int step,
           SampleScratch& scratch) {
  if (!(p.temperature > 0.0f)) return greedy(logits, n);
  auto& z = scratch.z;
  z.resize(n);
  for (int i = 0; i < n; ++i) z[i] = scaled_logit(logits[i], p.temperature);
  float thr = -INFINITY;  // keep z >= thr
  if (p.top_k > 0 && p.top_k < n) thr = top_k_threshold(z, p.top_k, scratch.kept);
  if (p.top_p < 1.0f) thr = top_p_threshold(z, thr, p.top_p, scratch.kept);
  const uint64_t key = stream_key(seed, step);
  float best_s = -INFINITY;
  int best = INT_MAX;
  for (int i = 0; i < n; ++i) {
    if (!(z[i] >= thr) || perturbed(z[i], kGumbelMax) < best_s) continue;
    const float s = perturbed(z[i], gumbel(key, uint32_t(i)));
    if (better(s, i, best_s, best)) best_s = s, best = i;
  }
  return best;
}

}  // namespace gen
