// The Backend contract every backend shares (engine/backend.cpp, include/gen/kv_cache.h): forward,
// forward_all and forward_sample check the batch and the cache's owner before anything runs, and
// advance each slot's length exactly once; the cache's byte arithmetic.
#include <catch2/catch.hpp>

#include <vector>

#include "cpu/cpu_backend.h"
#include "fixture_model.h"
#include "gen/error.h"

using namespace gen;
using namespace gen::test;

namespace {

SeqInput seq(const std::vector<int>& ids, int begin, int end, int slot = 0) {
  return SeqInput{slot, std::vector<int>(ids.begin() + begin, ids.begin() + end), begin};
}

// A CPU backend that records, for each compute, the lengths of the batch's slots as compute saw them.
class Recording : public CpuBackend {
 public:
  explicit Recording(std::shared_ptr<const Weights> w) : CpuBackend(std::move(w), 1) {}
  std::vector<std::vector<int>> seen;  // per compute call: length of each sequence's slot (-1: no cache)

 protected:
  void compute(const std::vector<SeqInput>& batch, KVCache* cache, float* logits, bool all_rows) override {
    std::vector<int> lens;
    for (const auto& s : batch) lens.push_back(cache ? cache->length(s.slot) : -1);
    seen.push_back(lens);
    CpuBackend::compute(batch, cache, logits, all_rows);
  }
};

}  // namespace

TEST_CASE("forward rejects positions past the cache and ids outside the vocabulary", "[backend]") {
  Fixture f = load_fixture("tiny-noprefix");
  CpuBackend be(f.weights, 1);
  std::vector<float> logits(f.cfg.vocab_size);
  auto cache = be.make_cache(1, 4);
  REQUIRE_THROWS_WITH(be.forward({SeqInput{0, {1, 2, 3, 4, 5}, 0}}, cache.get(), logits.data()),
                      Catch::Contains("exceed the context 4"));
  REQUIRE_THROWS_WITH(be.forward({SeqInput{0, {f.cfg.vocab_size}, 0}}, nullptr, logits.data()),
                      Catch::Contains("token id 97 out of range [0, 97)"));
  REQUIRE_THROWS_WITH(be.forward({SeqInput{0, {1}, 2}}, cache.get(), logits.data()),
                      Catch::Contains("does not follow the cached positions"));
  auto two = be.make_cache(2, 4);
  std::vector<float> two_logits(2 * size_t(f.cfg.vocab_size));
  REQUIRE_THROWS_WITH(be.forward({SeqInput{1, {1}, 0}, SeqInput{1, {2}, 0}}, two.get(), two_logits.data()),
                      Catch::Contains("slot 1 appears twice in one batch"));
  REQUIRE_THROWS_WITH(be.make_cache(1, f.cfg.n_positions + 1), Catch::Contains("context must be 1..40"));
}

TEST_CASE("The KV cache's size is 2 x layers x slots x context x n_embd x bytes", "[backend]") {
  Fixture f = load_fixture("tiny-bf16");  // 3 layers, n_embd 24
  CpuBackend be(f.weights, 1);
  auto cache = be.make_cache(2, 10);
  REQUIRE(cache->bytes() == size_t(2) * 3 * 2 * 10 * 24 * 4);
  std::vector<float> logits(2 * size_t(f.cfg.vocab_size));
  be.forward({seq(f.input_ids, 0, 7, 0), seq(f.input_ids, 0, 3, 1)}, cache.get(), logits.data());
  REQUIRE(cache->bytes_used() == size_t(2) * 3 * (7 + 3) * 24 * 4);
  // gpt2-xl at its full context, one sequence, fp16: 2 * 48 * 1024 * 1600 * 2 bytes = 300 MiB.
  REQUIRE(KVCache::bytes_for(48, 1600, 1, 1024, 2) == size_t(314572800));
}

TEST_CASE("Each forward call advances its slots' lengths once, after compute", "[backend]") {
  Fixture f = load_fixture("tiny-f32");
  Recording be(f.weights);
  const int V = f.cfg.vocab_size;
  std::vector<float> logits(size_t(16) * V);
  std::vector<int> drawn(2);
  auto cache = be.make_cache(2, 16);
  REQUIRE((cache->length(0) == 0 && cache->length(1) == 0));
  be.forward({seq(f.input_ids, 0, 5, 0), seq(f.input_ids, 0, 2, 1)}, cache.get(), logits.data());
  be.forward_all({seq(f.input_ids, 5, 7, 0)}, cache.get(), logits.data());
  const std::vector<DrawParams> greedy(2, DrawParams{SamplingParams{0.0f, 0, 1.0f}, 1, 0});
  be.forward_sample({seq(f.input_ids, 7, 8, 0), seq(f.input_ids, 2, 3, 1)}, cache.get(), greedy, drawn.data());
  REQUIRE(cache->length(0) == 8);
  REQUIRE(cache->length(1) == 3);
  // compute saw the lengths from before each call.
  REQUIRE(be.seen == std::vector<std::vector<int>>{{0, 0}, {5}, {7, 2}});
  // A slot restarts at position 0: its length is what the new call wrote, not the old one.
  be.forward({seq(f.input_ids, 0, 4, 0)}, cache.get(), logits.data());
  REQUIRE(cache->length(0) == 4);
  REQUIRE(cache->length(1) == 3);
  REQUIRE(cache->bytes_used() == cache->bytes_for_positions(4 + 3));
  // Without a cache nothing is kept.
  be.forward({seq(f.input_ids, 0, 3, 0)}, nullptr, logits.data());
  REQUIRE(be.seen.back() == std::vector<int>{-1});
}

TEST_CASE("A refused call leaves the cache's lengths alone and computes nothing", "[backend]") {
  Fixture f = load_fixture("tiny-f32");
  Recording be(f.weights), other(f.weights);
  std::vector<float> logits(size_t(4) * f.cfg.vocab_size);
  std::vector<int> drawn(2);
  auto cache = be.make_cache(2, 8);
  be.forward({seq(f.input_ids, 0, 3, 0)}, cache.get(), logits.data());
  const size_t computed = be.seen.size();
  // A cache made by another backend, even one of the same kind and model.
  auto foreign = other.make_cache(2, 8);
  REQUIRE_THROWS_WITH(be.forward({seq(f.input_ids, 0, 1, 0)}, foreign.get(), logits.data()),
                      "forward: the cache belongs to another backend");
  REQUIRE_THROWS_WITH(be.forward_all({seq(f.input_ids, 0, 1, 0)}, foreign.get(), logits.data()),
                      "forward: the cache belongs to another backend");
  const std::vector<DrawParams> one(1);
  REQUIRE_THROWS_WITH(be.forward_sample({seq(f.input_ids, 0, 1, 0)}, foreign.get(), one, drawn.data()),
                      "forward: the cache belongs to another backend");
  REQUIRE(foreign->length(0) == 0);
  // A batch whose second sequence is bad: neither sequence's slot moves.
  REQUIRE_THROWS_WITH(be.forward({seq(f.input_ids, 3, 4, 0), seq(f.input_ids, 1, 2, 1)}, cache.get(), logits.data()),
                      Catch::Contains("does not follow the cached positions"));
  REQUIRE_THROWS_WITH(be.forward_sample({seq(f.input_ids, 3, 4, 0), seq(f.input_ids, 0, 1, 1)}, cache.get(), one,
                                        drawn.data()),
                      "forward_sample: one DrawParams per sequence is needed");
  REQUIRE_THROWS_WITH(be.forward({}, cache.get(), logits.data()), "forward: empty batch");
  REQUIRE_THROWS_WITH(be.forward({SeqInput{0, {}, 3}}, cache.get(), logits.data()),
                      "forward: a sequence has no tokens");
  REQUIRE(cache->length(0) == 3);
  REQUIRE(cache->length(1) == 0);
  REQUIRE(be.seen.size() == computed);
}
