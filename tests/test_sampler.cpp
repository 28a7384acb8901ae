#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <set>

#include "gen/sampler.h"

using namespace gen;

TEST_CASE("argmax and temperature 0 pick the highest logit, ties to the lowest id", "[sampler]") {
  std::vector<float> l = {0.5f, 2.0f, -1.0f, 2.0f, 1.9f};
  REQUIRE(argmax(l.data(), 5) == 1);
  Rng rng(1);
  SampleScratch s;
  REQUIRE(sample(l.data(), 5, {0.0f, 0, 1.0f}, rng, s) == 1);
  REQUIRE(sample(l.data(), 5, {1.0f, 1, 1.0f}, rng, s) == 1);  // top-k 1 is greedy too
}

TEST_CASE("The RNG is reproducible from its seed and uniform between 0 and 1", "[sampler]") {
  Rng a(42), b(42), c(43);
  bool differs = false;
  double mean = 0;
  for (int i = 0; i < 10000; ++i) {
    uint64_t x = a.next();
    REQUIRE(x == b.next());
    differs |= x != c.next();
  }
  REQUIRE(differs);
  for (int i = 0; i < 100000; ++i) {
    double u = a.uniform();
    REQUIRE(u >= 0.0);
    REQUIRE(u < 1.0);
    mean += u;
  }
  REQUIRE(std::fabs(mean / 100000 - 0.5) < 0.005);
}

TEST_CASE("Sampling frequencies follow softmax(logits / T) over the top-k", "[sampler]") {
  // probabilities 0.5, 0.3, 0.15, 0.05 at temperature 1
  std::vector<float> l = {std::log(0.3f), std::log(0.05f), std::log(0.5f), std::log(0.15f)};
  Rng rng(7);
  SampleScratch s;
  const int n = 200000;
  std::map<int, int> count;
  for (int i = 0; i < n; ++i) ++count[sample(l.data(), 4, {1.0f, 2, 1.0f}, rng, s)];
  REQUIRE(count.size() == 2);  // only ids 2 and 0 survive top-2
  const double p2 = 0.5 / 0.8;
  const double sigma = std::sqrt(p2 * (1 - p2) / n);
  REQUIRE(std::fabs(double(count[2]) / n - p2) < 4 * sigma);

  // Temperature 2 flattens: p ~ sqrt(p), renormalised over all four.
  count.clear();
  for (int i = 0; i < n; ++i) ++count[sample(l.data(), 4, {2.0f, 0, 1.0f}, rng, s)];
  const double z = std::sqrt(0.3) + std::sqrt(0.05) + std::sqrt(0.5) + std::sqrt(0.15);
  const double p1 = std::sqrt(0.05) / z;
  REQUIRE(std::fabs(double(count[1]) / n - p1) < 4 * std::sqrt(p1 * (1 - p1) / n));
}

TEST_CASE("top-p keeps the smallest set of most likely tokens whose mass reaches p", "[sampler]") {
  std::vector<float> l = {std::log(0.3f), std::log(0.05f), std::log(0.5f), std::log(0.15f)};
  Rng rng(9);
  SampleScratch s;
  auto seen = [&](float top_p) {
    std::set<int> ids;
    for (int i = 0; i < 5000; ++i) ids.insert(sample(l.data(), 4, {1.0f, 0, top_p}, rng, s));
    return ids;
  };
  REQUIRE(seen(0.45f) == std::set<int>{2});
  REQUIRE(seen(0.7f) == std::set<int>{0, 2});
  REQUIRE(seen(0.9f) == std::set<int>{0, 2, 3});
  REQUIRE(seen(1.0f) == std::set<int>{0, 1, 2, 3});
}

TEST_CASE("The same seed draws the same tokens", "[sampler]") {
  std::vector<float> l(1000);
  for (int i = 0; i < 1000; ++i) l[i] = std::sin(i * 0.37f) * 3;
  SampleScratch s;
  auto draws = [&](uint64_t seed) {
    Rng rng(seed);
    std::vector<int> out;
    for (int i = 0; i < 50; ++i) out.push_back(sample(l.data(), 1000, {0.8f, 40, 0.95f}, rng, s));
    return out;
  };
  REQUIRE(draws(5) == draws(5));
  REQUIRE(draws(5) != draws(6));
}
