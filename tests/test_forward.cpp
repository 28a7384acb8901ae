// CPU forward against Hugging Face (float64 references), the cache against the full recompute, and
// a batch against its sequences run alone.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "fixture_model.h"
#include "cpu/cpu_backend.h"
#include "test_util.h"

using namespace gen;
using namespace gen::test;

namespace {

SeqInput seq(const std::vector<int>& ids, int begin, int end, int slot = 0) {
  return SeqInput{slot, std::vector<int>(ids.begin() + begin, ids.begin() + end), begin};
}

}  // namespace

TEST_CASE("CPU logits equal Hugging Face's at every position, without a cache", "[forward]") {
  for (const char* name : kFixtureNames) {
    Fixture f = load_fixture(name);
    CpuBackend be(f.weights, 2);
    const int V = f.cfg.vocab_size, T = int(f.input_ids.size());
    std::vector<float> logits(V);
    for (int t = 1; t <= T; ++t) {
      be.forward({seq(f.input_ids, 0, t)}, nullptr, logits.data());
      INFO(name << " prefix of " << t << " tokens");
      REQUIRE(check_logits_row(logits.data(), &f.logits[size_t(t - 1) * V], V, 1e-4) == "");
    }
  }
}

TEST_CASE("CPU logits equal Hugging Face's when decoding through the cache in uneven chunks", "[forward]") {
  for (const char* name : kFixtureNames) {
    Fixture f = load_fixture(name);
    CpuBackend be(f.weights, 2);
    const int V = f.cfg.vocab_size, T = int(f.input_ids.size());
    auto cache = be.make_cache(1, f.cfg.n_positions);
    std::vector<float> logits(V);
    // Prefill 3, then a chunk of 7, then one token a step: pos0 > 0 with several new tokens too.
    std::vector<int> cuts = {0, 3, 10};
    for (int t = 11; t <= T; ++t) cuts.push_back(t);
    for (size_t i = 1; i < cuts.size(); ++i) {
      be.forward({seq(f.input_ids, cuts[i - 1], cuts[i])}, cache.get(), logits.data());
      INFO(name << " tokens " << cuts[i - 1] << ".." << cuts[i]);
      REQUIRE(check_logits_row(logits.data(), &f.logits[size_t(cuts[i] - 1) * V], V, 1e-4) == "");
      REQUIRE(cache->length(0) == cuts[i]);
    }
  }
}

TEST_CASE("Decoding with the cache equals the full recompute to 1e-5", "[forward]") {
  Fixture f = load_fixture("tiny-f32");
  CpuBackend be(f.weights, 2);
  const int V = f.cfg.vocab_size, T = int(f.input_ids.size());
  auto cache = be.make_cache(1, f.cfg.n_positions);
  std::vector<float> cached(V), full(V);
  be.forward({seq(f.input_ids, 0, 4)}, cache.get(), cached.data());
  for (int t = 4; t < T; ++t) {
    be.forward({seq(f.input_ids, t, t + 1)}, cache.get(), cached.data());
    be.forward({seq(f.input_ids, 0, t + 1)}, nullptr, full.data());
    INFO("position " << t);
    REQUIRE(check_logits_row(cached.data(), full.data(), V, 1e-5) == "");
  }
}

TEST_CASE("A batch of sequences of different lengths gives each the logits it gets alone", "[forward]") {
  Fixture f = load_fixture("tiny-bf16");
  CpuBackend be(f.weights, 2);
  const int V = f.cfg.vocab_size;
  const auto& ids = f.input_ids;
  // Slot 2 is used by a 1-token sequence, slot 0 by 9 tokens, slot 1 by 5: slots need not be in order.
  std::vector<SeqInput> batch = {seq(ids, 0, 9, 0), seq(ids, 0, 1, 2), seq(ids, 0, 5, 1)};
  for (bool use_cache : {false, true}) {
    auto cache = be.make_cache(3, 16);
    std::vector<float> together(3 * size_t(V)), alone(V);
    be.forward(batch, use_cache ? cache.get() : nullptr, together.data());
    for (int i = 0; i < 3; ++i) {
      be.forward({batch[i]}, nullptr, alone.data());
      INFO("sequence " << i << (use_cache ? " with" : " without") << " the cache");
      REQUIRE(check_logits_row(&together[size_t(i) * V], alone.data(), V, 1e-5) == "");
    }
    if (use_cache) {
      // Then one decode step for all three at once, each at its own position.
      std::vector<SeqInput> step = {seq(ids, 9, 10, 0), seq(ids, 1, 2, 2), seq(ids, 5, 6, 1)};
      be.forward(step, cache.get(), together.data());
      const int ends[3] = {10, 2, 6};
      for (int i = 0; i < 3; ++i) {
        INFO("decode step of sequence " << i);
        REQUIRE(check_logits_row(&together[size_t(i) * V], &f.logits[size_t(ends[i] - 1) * V], V, 1e-4) == "");
      }
    }
  }
}
