#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <set>

#include "engine/sample_rng.h"
#include "gen/sampler.h"
#include "model/rng.h"

using namespace gen;

namespace {

// Frequencies of sample() over steps 0 .. n-1 of one seed.
std::map<int, int> histogram(const std::vector<float>& l, const SamplingParams& p, uint64_t seed, int n) {
  SampleScratch s;
  std::map<int, int> count;
  for (int step = 0; step < n; ++step) ++count[sample(l.data(), int(l.size()), p, seed, step, s)];
  return count;
}

// |observed - expected| within 4 sigma of a binomial count.
bool within_4_sigma(int count, int n, double prob) {
  return std::fabs(double(count) / n - prob) <= 4 * std::sqrt(prob * (1 - prob) / n) + 1e-12;
}

// A plain restatement of engine/sample_rng.h's algorithm (full sort, no shortcuts), to check the
// sampler's partial sorting and skipping against. Sums run in the same order and precision as the
// sampler's, so it is exact.
int reference_sample(const std::vector<float>& l, const SamplingParams& p, uint64_t seed, int step) {
  using namespace gen::sampling;
  const int n = int(l.size());
  if (!(p.temperature > 0)) {
    int best = 0;
    for (int i = 1; i < n; ++i) best = canonical(l[i]) > canonical(l[best]) ? i : best;
    return best;
  }
  std::vector<float> z(n);
  for (int i = 0; i < n; ++i) z[i] = scaled_logit(l[i], p.temperature);
  std::vector<float> desc = z;
  std::sort(desc.begin(), desc.end(), std::greater<float>());
  float thr = -INFINITY;
  if (p.top_k > 0 && p.top_k < n) thr = desc[p.top_k - 1];
  if (p.top_p < 1) {
    const float zmax = desc[0];
    double total = 0;
    for (float v : z) total += v >= thr ? mass_weight(v, zmax) : 0.0f;
    const double target = double(p.top_p) * total;
    double cum = 0;
    for (size_t j = 0; j < desc.size() && desc[j] >= thr; ++j) {
      cum += mass_weight(desc[j], zmax);
      const bool group_end = j + 1 == desc.size() || desc[j + 1] != desc[j];
      if (group_end && cum >= target) {
        thr = desc[j];
        break;
      }
    }
  }
  const uint64_t key = stream_key(seed, step);
  int best = -1;
  float best_s = -INFINITY;
  for (int i = 0; i < n; ++i) {
    if (z[i] < thr) continue;
    const float s = perturbed(z[i], gumbel(key, uint32_t(i)));
    if (best < 0 || s > best_s) best = i, best_s = s;
  }
  return best;
}

}  // namespace

TEST_CASE("argmax and temperature 0 pick the highest logit, ties to the lowest id", "[sampler]") {
  std::vector<float> l = {0.5f, 2.0f, -1.0f, 2.0f, 1.9f};
  REQUIRE(argmax(l.data(), 5) == 1);
  SampleScratch s;
  for (int step = 0; step < 20; ++step) REQUIRE(sample(l.data(), 5, {0.0f, 0, 1.0f}, 3, step, s) == 1);
  std::vector<float> nan_first = {NAN, 1.0f, 3.0f};
  REQUIRE(sample(nan_first.data(), 3, {0.0f, 0, 1.0f}, 3, 0, s) == 2);  // NaN counts as -inf
  std::vector<float> distinct = {0.5f, 2.0f, -1.0f, 1.5f};
  REQUIRE(sample(distinct.data(), 4, {1.0f, 1, 1.0f}, 3, 0, s) == 1);  // top-k 1 without ties is greedy
  // Top-k keeps every token tied at its threshold: top-1 of {.., 2, .., 2, ..} draws both ids 1 and 3.
  auto count = histogram(l, {1.0f, 1, 1.0f}, 5, 2000);
  REQUIRE(count.size() == 2);
  REQUIRE(within_4_sigma(count[1], 2000, 0.5));
}

TEST_CASE("Temperature 0 is one scan's argmax at every length, ties to the lowest id, NaN as -inf", "[sampler]") {
  // The greedy draw runs 16 lanes at a time: lengths around multiples of 16, values from a small set
  // (many ties, often across lanes), NaN, infinities and both zeros among them.
  std::mt19937 rng{17};
  const float values[] = {-1.0f, 0.0f, -0.0f, 0.5f, 2.0f, 2.0f, NAN, -INFINITY, INFINITY, 3.0f};
  SampleScratch s;
  for (int n : {1, 2, 15, 16, 17, 31, 33, 100, 50257}) {
    for (int trial = 0; trial < 30; ++trial) {
      std::vector<float> l(static_cast<size_t>(n));
      const int kinds = trial % 3 == 0 ? 10 : 6;  // some rows without NaN or infinities
      for (float& x : l) x = values[rng() % unsigned(kinds)];
      int want = 0;
      float best = std::isnan(l[0]) ? -INFINITY : l[0];
      for (int i = 1; i < n; ++i) {
        const float v = std::isnan(l[size_t(i)]) ? -INFINITY : l[size_t(i)];
        if (v > best) best = v, want = i;
      }
      INFO("n " << n << ", trial " << trial);
      REQUIRE(sample(l.data(), n, {0.0f, 0, 1.0f}, 1, 0, s) == want);
    }
  }
}

TEST_CASE("The RNGs are reproducible and uniform between 0 and 1", "[sampler]") {
  Rng a(42), b(42), c(43);  // the weight generator of the model maker
  bool differs = false;
  for (int i = 0; i < 10000; ++i) {
    uint64_t x = a.next();
    REQUIRE(x == b.next());
    differs |= x != c.next();
  }
  REQUIRE(differs);
  // The sampler's counter-based stream: u in (0, 1), mean 1/2; Gumbel mean is Euler's gamma.
  using namespace gen::sampling;
  const uint64_t key = stream_key(42, 0);
  REQUIRE(key == stream_key(42, 0));
  REQUIRE(key != stream_key(42, 1));
  REQUIRE(key != stream_key(43, 0));
  const int n = 200000;
  double mean_u = 0, mean_g = 0;
  for (int i = 0; i < n; ++i) {
    const float u = uniform(random_bits(key, uint32_t(i)));
    REQUIRE(u > 0.0f);
    REQUIRE(u < 1.0f);
    mean_u += u;
    mean_g += gumbel(key, uint32_t(i));
  }
  REQUIRE(std::fabs(mean_u / n - 0.5) < 4 * std::sqrt(1.0 / 12 / n));
  const double gumbel_sd = M_PI / std::sqrt(6.0);
  REQUIRE(std::fabs(mean_g / n - 0.5772156649) < 4 * gumbel_sd / std::sqrt(double(n)));
  // The extremes stay finite and under the bound the sampler relies on to skip hopeless tokens.
  REQUIRE(uniform(0) > 0.0f);
  REQUIRE(uniform(~0ull) < 1.0f);
  REQUIRE(-std::log(-std::log(uniform(~0ull))) < 17.0f);
  REQUIRE(std::isfinite(-std::log(-std::log(uniform(0)))));
}

TEST_CASE("Sampling frequencies follow softmax(logits / T) over the top-k", "[sampler]") {
  // probabilities 0.5, 0.3, 0.15, 0.05 at temperature 1
  std::vector<float> l = {std::log(0.3f), std::log(0.05f), std::log(0.5f), std::log(0.15f)};
  const int n = 200000;
  auto count = histogram(l, {1.0f, 2, 1.0f}, 7, n);
  REQUIRE(count.size() == 2);  // only ids 2 and 0 survive top-2
  REQUIRE(within_4_sigma(count[2], n, 0.5 / 0.8));

  // Temperature 2 flattens: p ~ sqrt(p), renormalised over all four.
  count = histogram(l, {2.0f, 0, 1.0f}, 8, n);
  const double z = std::sqrt(0.3) + std::sqrt(0.05) + std::sqrt(0.5) + std::sqrt(0.15);
  for (int id = 0; id < 4; ++id) {
    INFO("id " << id);
    REQUIRE(within_4_sigma(count[id], n, std::sqrt(std::exp(double(l[id]))) / z));
  }
}

TEST_CASE("Gumbel-max draws follow the softmax probabilities, small ones included", "[sampler]") {
  const std::vector<double> prob = {0.3, 0.2, 0.15, 0.1, 0.1, 0.06, 0.04, 0.03, 0.015, 0.005};
  std::vector<float> l;
  for (double p : prob) l.push_back(float(std::log(p) + 3.0));  // a shift must not matter
  const int n = 300000;
  auto count = histogram(l, {1.0f, 0, 1.0f}, 2024, n);
  for (size_t id = 0; id < prob.size(); ++id) {
    INFO("id " << id << " count " << count[int(id)]);
    REQUIRE(within_4_sigma(count[int(id)], n, prob[id]));
  }
}

TEST_CASE("top-p keeps the smallest set of most likely tokens whose mass reaches p", "[sampler]") {
  std::vector<float> l = {std::log(0.3f), std::log(0.05f), std::log(0.5f), std::log(0.15f)};
  auto seen = [&](float top_p) {
    std::set<int> ids;
    for (auto& [id, c] : histogram(l, {1.0f, 0, top_p}, 9, 5000)) ids.insert(id);
    return ids;
  };
  REQUIRE(seen(0.45f) == std::set<int>{2});
  REQUIRE(seen(0.7f) == std::set<int>{0, 2});
  REQUIRE(seen(0.9f) == std::set<int>{0, 2, 3});
  REQUIRE(seen(1.0f) == std::set<int>{0, 1, 2, 3});
  // Tokens tied at the boundary are kept together: 0.4 alone does not reach 0.5, so both 0.2s stay.
  std::vector<float> tied = {std::log(0.2f), std::log(0.4f), std::log(0.2f), std::log(0.1f), std::log(0.1f)};
  std::set<int> ids;
  for (auto& [id, c] : histogram(tied, {1.0f, 0, 0.5f}, 10, 5000)) ids.insert(id);
  REQUIRE(ids == std::set<int>{0, 1, 2});
}

TEST_CASE("The same seed and step draw the same token, and other seeds and steps differ", "[sampler]") {
  std::vector<float> l(1000);
  for (int i = 0; i < 1000; ++i) l[i] = std::sin(i * 0.37f) * 3;
  SampleScratch s;
  auto draws = [&](uint64_t seed, int step0) {
    std::vector<int> out;
    for (int step = step0; step < step0 + 50; ++step)
      out.push_back(sample(l.data(), 1000, {0.8f, 40, 0.95f}, seed, step, s));
    return out;
  };
  REQUIRE(draws(5, 0) == draws(5, 0));
  REQUIRE(draws(5, 0) != draws(6, 0));
  REQUIRE(draws(5, 0) != draws(5, 50));
  // Stateless: a step's draw does not depend on what was drawn before it.
  REQUIRE(sample(l.data(), 1000, {0.8f, 40, 0.95f}, 5, 7, s) == draws(5, 0)[7]);
}

TEST_CASE("The sampler equals a plain restatement of its algorithm, ties and all", "[sampler]") {
  // Logits on a coarse grid so that many values tie, over more tokens than one sorting chunk (64).
  Rng rng(77);
  SampleScratch s;
  const SamplingParams params[] = {{0.0f, 0, 1.0f},   {1.0f, 0, 1.0f},   {0.7f, 40, 1.0f},  {1.0f, 0, 0.9f},
                                   {0.8f, 40, 0.95f}, {1.3f, 200, 0.5f}, {1.0f, 0, 0.999f}, {0.5f, 3, 0.1f}};
  for (int trial = 0; trial < 40; ++trial) {
    const int n = trial % 2 ? 300 : 1000;
    std::vector<float> l(n);
    for (float& v : l) v = float(std::floor(rng.uniform() * 24) * 0.25 - 3);
    for (const SamplingParams& p : params) {
      for (int step = 0; step < 5; ++step) {
        INFO("trial " << trial << " T " << p.temperature << " k " << p.top_k << " p " << p.top_p << " step "
                      << step);
        REQUIRE(sample(l.data(), n, p, 123 + trial, step, s) == reference_sample(l, p, 123 + trial, step));
      }
    }
  }
}

TEST_CASE("logits_finite finds a NaN or an Inf anywhere among the first n logits, and only there", "[sampler]") {
  std::vector<float> l(1000);
  for (size_t i = 0; i < l.size(); ++i) l[i] = float(i) * 0.37f - 100.0f;
  l[3] = -0.0f;
  l[4] = std::numeric_limits<float>::max();
  l[5] = -std::numeric_limits<float>::max();
  l[6] = std::numeric_limits<float>::denorm_min();
  REQUIRE(logits_finite(l.data(), 1000));
  for (float bad : {NAN, -NAN, INFINITY, -INFINITY}) {
    for (size_t at : {size_t(0), size_t(517), size_t(999)}) {
      std::vector<float> m = l;
      m[at] = bad;
      INFO("value " << bad << " at " << at);
      REQUIRE_FALSE(logits_finite(m.data(), 1000));
      REQUIRE(logits_finite(m.data(), int(at)));  // before it: finite
    }
  }
  REQUIRE(logits_finite(l.data(), 0));
}
