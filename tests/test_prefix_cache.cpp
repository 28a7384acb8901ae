// The prefix cache (gen/prefix_cache.h) and the K/V moves it is built on: copies between slots and to
// and from the host are exact, blocks are matched whole and evicted leaf first, and a batch run with
// the cache gives every prompt the tokens it gets without it while computing a shared prefix once.
#include <catch2/catch.hpp>
#include <cstring>
#include <map>
#include <random>

#include "cpu/cpu_backend.h"
#include "fixture_model.h"
#include "gen/error.h"
#include "gen/generator.h"
#include "gen/prefix_cache.h"
#include "prefix_test_util.h"
#include "test_util.h"

using namespace gen;
using namespace gen::test;

namespace {

constexpr int kB = PrefixCache::kBlock;


// Positions [from, from + n) of every head, out of a host copy [L][2][H][host_n][D].
std::vector<float> heads(const std::vector<float>& host, const ModelConfig& c, int host_n, int from, int n) {
  std::vector<float> out;
  const size_t D = size_t(c.head_dim());
  for (int head = 0; head < c.n_layer * 2 * c.n_head; ++head) {
    const float* p = host.data() + size_t(head) * host_n * D + size_t(from) * D;
    out.insert(out.end(), p, p + size_t(n) * D);
  }
  return out;
}

std::vector<float> read_all(Backend& be, const KVCache& cache, int slot, int n) {
  std::vector<float> host(cache.bytes_for_positions(size_t(n)) / sizeof(float));
  be.read_kv(cache, slot, n, host.data(), n);
  return host;
}

std::vector<float> forward_one(Backend& be, KVCache& cache, int slot, std::vector<int> tokens, int pos0) {
  std::vector<float> logits(size_t(be.config().vocab_size));
  be.forward({SeqInput{slot, std::move(tokens), pos0}}, &cache, logits.data());
  return logits;
}

bool same_bytes(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("copy_kv, read_kv and write_kv move every layer's K and V exactly", "[prefix]") {
  CpuRig rig;
  Backend& be = *rig.be;
  const ModelConfig& c = be.config();
  std::mt19937 rng{3};
  const std::vector<int> prompt = random_ids(rng, 50);
  auto cache = be.make_cache(3, 96);
  forward_one(be, *cache, 0, prompt, 0);
  const std::vector<float> a = read_all(be, *cache, 0, 50);

  be.copy_kv(*cache, 0, 0, *cache, 1, 0, 50);  // a whole slot
  REQUIRE(cache->length(1) == 50);
  REQUIRE(same_bytes(read_all(be, *cache, 1, 50), a));

  auto pool = be.make_cache(2, kB);  // one block, from the middle of the slot
  be.copy_kv(*cache, 0, 16, *pool, 1, 0, kB);
  REQUIRE(pool->length(1) == kB);
  REQUIRE(same_bytes(heads(read_all(be, *pool, 1, kB), c, kB, 0, kB), heads(a, c, 50, 16, kB)));

  be.write_kv(*cache, 2, a.data(), 50, 24);  // the first 24 of 50 host positions
  REQUIRE(cache->length(2) == 24);
  REQUIRE(same_bytes(heads(read_all(be, *cache, 2, 24), c, 24, 0, 24), heads(a, c, 50, 0, 24)));

  // The next token sees the same K/V in the copy as in the original: the same logits, bit for bit.
  const std::vector<float> next0 = forward_one(be, *cache, 0, {7}, 50);
  const std::vector<float> next1 = forward_one(be, *cache, 1, {7}, 50);
  REQUIRE(same_bytes(next0, next1));
  std::vector<int> rest(prompt.begin() + 24, prompt.end());
  rest.push_back(7);
  const std::vector<float> next2 = forward_one(be, *cache, 2, rest, 24);
  REQUIRE(check_close(next2.data(), next0.data(), next0.size(), 1e-5, 1e-5).empty());
}

TEST_CASE("K/V moves refuse positions that were not written and caches of another backend", "[prefix]") {
  CpuRig rig;
  Backend& be = *rig.be;
  auto cache = be.make_cache(2, 64);
  std::mt19937 rng{4};
  forward_one(be, *cache, 0, random_ids(rng, 20), 0);
  REQUIRE_THROWS_AS(be.copy_kv(*cache, 0, 8, *cache, 1, 0, 16), Error);   // 8 + 16 > 20 written
  REQUIRE_THROWS_AS(be.copy_kv(*cache, 0, 0, *cache, 1, 4, 16), Error);   // slot 1 holds 0 positions, not 4
  REQUIRE_THROWS_AS(be.copy_kv(*cache, 0, 0, *cache, 0, 0, 16), Error);   // a slot onto itself
  REQUIRE_THROWS_AS(be.copy_kv(*cache, 0, 0, *cache, 2, 0, 16), Error);   // no slot 2
  std::vector<float> host(cache->bytes_for_positions(21) / sizeof(float));
  REQUIRE_THROWS_AS(be.read_kv(*cache, 0, 21, host.data(), 21), Error);  // 21 > 20 written
  REQUIRE_THROWS_AS(be.write_kv(*cache, 1, host.data(), 20, 21), Error);  // host holds 20 per head
  CpuBackend other(rig.w, 1);
  auto foreign = other.make_cache(2, 64);
  REQUIRE_THROWS_AS(be.copy_kv(*foreign, 0, 0, *cache, 1, 0, 0), Error);
  REQUIRE(cache->length(1) == 0);  // refused calls change nothing
}

TEST_CASE("The prefix cache matches whole blocks, loads them exactly and evicts the oldest leaf", "[prefix]") {
  CpuRig rig;
  Backend& be = *rig.be;
  const ModelConfig& c = be.config();
  PrefixCache pc(be, 3 * KVCache::bytes_for(c.n_layer, c.n_embd, 1, kB, 4));
  REQUIRE(pc.capacity() == 3);
  std::mt19937 rng{5};
  const std::vector<int> a = random_ids(rng, 50);
  auto cache = be.make_cache(3, 128);
  forward_one(be, *cache, 0, a, 0);
  REQUIRE(pc.match(a, 49) == 0);
  pc.store(a, 50, *cache, 0);
  REQUIRE(pc.blocks() == 3);  // 48 of 50 tokens: whole blocks only
  REQUIRE(pc.match(a, 49) == 48);
  REQUIRE(pc.match(a, 47) == 32);  // at most `limit` tokens
  std::vector<int> b(a.begin(), a.begin() + 20);
  b.push_back(a[20] + 1);
  REQUIRE(pc.match(b, 20) == 16);  // the second block differs

  pc.load(a, 48, *cache, 1);
  REQUIRE(cache->length(1) == 48);
  REQUIRE(same_bytes(read_all(be, *cache, 1, 48), heads(read_all(be, *cache, 0, 48), c, 48, 0, 48)));

  // Full: a new prompt's two blocks evict a's deepest blocks, leaf first (a block without its parent
  // could never be matched).
  std::vector<int> d = random_ids(rng, 40);
  d[0] = (a[0] + 1) % 300;
  forward_one(be, *cache, 2, d, 0);
  pc.store(d, 40, *cache, 2);
  REQUIRE(pc.blocks() == 3);
  REQUIRE(pc.evictions() == 2);
  REQUIRE(pc.match(a, 49) == 16);
  REQUIRE(pc.match(d, 39) == 32);
  pc.load(d, 32, *cache, 1);
  REQUIRE(same_bytes(read_all(be, *cache, 1, 32), heads(read_all(be, *cache, 2, 32), c, 32, 0, 32)));

  PrefixCache none(be, 0);  // a budget of nothing keeps nothing
  none.store(a, 50, *cache, 0);
  REQUIRE(none.blocks() == 0);
  REQUIRE(none.match(a, 49) == 0);
}

TEST_CASE("A batch with the prefix cache gives each prompt its tokens without it, computing shared blocks once",
          "[prefix][batch]") {
  CpuRig rig;
  Generator g(*rig.be, rig.tok);
  for (float temperature : {0.0f, 0.9f}) {
    std::mt19937 rng{temperature > 0 ? 21u : 20u};
    const auto reqs = sharing_requests(rng, temperature);
    const auto reference = run_all(g, reqs, 4);
    for (int batch : {1, 3, 8}) {
      PrefixCache pc(*rig.be, size_t(64) << 20);
      g.set_prefix_cache(&pc);
      const auto got = run_all(g, reqs, batch);
      g.set_prefix_cache(nullptr);
      long computed = 0, expected_computed = 0;
      for (size_t i = 0; i < reqs.size(); ++i) {
        INFO("temperature " << temperature << ", batch " << batch << ", request " << i);
        const GenResult& r = got.at(int(i));
        REQUIRE(r.tokens == reference.at(int(i)).tokens);
        REQUIRE(r.timing.cached_tokens == expected_reuse(reqs, i));
        REQUIRE(r.timing.prefill_tokens == int(reqs[i].prompt.size()) - r.timing.cached_tokens);
        computed += r.timing.prefill_tokens;
        expected_computed += long(reqs[i].prompt.size()) - expected_reuse(reqs, i);
      }
      REQUIRE(computed == expected_computed);
      REQUIRE(reference.at(0).timing.cached_tokens == 0);
    }
  }
}

TEST_CASE("The prefix cache serves later runs, and runs without a cache or with a budget of nothing reuse nothing",
          "[prefix][batch]") {
  CpuRig rig;
  Generator g(*rig.be, rig.tok);
  std::mt19937 rng{30};
  const auto reqs = sharing_requests(rng, 0.0f);
  const auto reference = run_all(g, reqs, 3);
  PrefixCache pc(*rig.be, size_t(64) << 20);
  g.set_prefix_cache(&pc);
  run_all(g, reqs, 3);
  const auto again = run_all(g, reqs, 3);  // every prompt was seen: all its whole blocks but the last token
  for (size_t i = 0; i < reqs.size(); ++i) {
    const int n = int(reqs[i].prompt.size());
    REQUIRE(again.at(int(i)).timing.cached_tokens == (n - 1) / kB * kB);
    REQUIRE(again.at(int(i)).tokens == reference.at(int(i)).tokens);
  }
  std::map<int, GenResult> uncached;
  RunCallbacks cb;
  cb.on_done = [&](int i, GenResult&& r) { uncached[i] = std::move(r); };
  GenOptions no_cache;
  no_cache.use_cache = false;
  g.run(reqs, no_cache, 3, cb);
  for (const auto& [i, r] : uncached) REQUIRE(r.timing.cached_tokens == 0);

  PrefixCache none(*rig.be, 0);
  g.set_prefix_cache(&none);
  const auto nothing = run_all(g, reqs, 3);
  for (size_t i = 0; i < reqs.size(); ++i) {
    REQUIRE(nothing.at(int(i)).timing.cached_tokens == 0);
    REQUIRE(nothing.at(int(i)).tokens == reference.at(int(i)).tokens);
  }
  CpuBackend other(rig.w, 1);
  PrefixCache foreign(other, size_t(1) << 20);
  REQUIRE_THROWS_AS(g.set_prefix_cache(&foreign), Error);
}

TEST_CASE("Slots carry the origin of the blocks the prefix cache copied, and every write clears it", "[prefix]") {
  CpuRig rig;
  Backend& be = *rig.be;
  PrefixCache pc(be, size_t(16) << 20);
  std::mt19937 rng{41};
  const std::vector<int> a = random_ids(rng, 40);
  auto cache = be.make_cache(4, 128);
  forward_one(be, *cache, 0, a, 0);
  REQUIRE(cache->block_origin(0, 0) == 0);  // computed here, nothing cached yet
  pc.store(a, 40, *cache, 0);               // blocks 0 and 1 go to the pool, copied from slot 0
  const uint64_t b0 = cache->block_origin(0, 0), b1 = cache->block_origin(0, 1);
  REQUIRE(b0 != 0);
  REQUIRE(b1 != 0);
  REQUIRE(b1 != b0);
  REQUIRE(cache->block_origin(0, 2) == 0);  // positions 32..39: not a whole block
  for (int slot : {1, 2, 3}) {
    pc.load(a, 32, *cache, slot);
    REQUIRE(cache->block_origin(slot, 0) == b0);
    REQUIRE(cache->block_origin(slot, 1) == b1);
  }
  forward_one(be, *cache, 1, {a[32]}, 32);  // after the blocks: they keep their origin
  REQUIRE(cache->block_origin(1, 1) == b1);
  forward_one(be, *cache, 2, {a[20]}, 20);  // into block 1: its origin is gone, block 0's stays
  REQUIRE(cache->block_origin(2, 0) == b0);
  REQUIRE(cache->block_origin(2, 1) == 0);
  be.copy_kv(*cache, 0, 0, *cache, 3, 0, 16);  // a copy that is not the prefix cache's
  REQUIRE(cache->block_origin(3, 0) == 0);
  REQUIRE(cache->block_origin(3, 1) == b1);
  std::vector<float> host(cache->bytes_for_positions(32) / sizeof(float));
  be.read_kv(*cache, 1, 32, host.data(), 32);
  be.write_kv(*cache, 1, host.data(), 32, 32);
  REQUIRE(cache->block_origin(1, 0) == 0);
  REQUIRE(cache->block_origin(1, 1) == 0);
  // A block already cached is only marked used: a slot that computed it itself gets no origin.
  forward_one(be, *cache, 3, a, 0);
  pc.store(a, 40, *cache, 3);
  REQUIRE(cache->block_origin(3, 0) == 0);
}

TEST_CASE("With heads of 64 (the AVX-512 decode attention) the prefix cache changes no token", "[prefix][batch]") {
  // Sequences that loaded the same blocks read them once per step (one group of attention_decode,
  // queries in the lanes of a register); each still gets its tokens without the prefix cache.
  TempDir dir;
  MakeModelSpec spec = prefix_model_spec();
  spec.cfg.n_embd = 128;  // 2 heads of 64
  CpuBackend be(make_random_weights(dir.path(), spec), 2);
  Tokenizer tok = tiny_tokenizer(320);
  Generator g(be, tok);
  for (float temperature : {0.0f, 0.9f}) {
    std::mt19937 rng{temperature > 0 ? 51u : 50u};
    const auto reqs = sharing_requests(rng, temperature);
    const auto reference = run_all(g, reqs, 1);
    PrefixCache pc(be, size_t(64) << 20);
    g.set_prefix_cache(&pc);
    const auto got = run_all(g, reqs, 8);
    g.set_prefix_cache(nullptr);
    long reused = 0;
    for (size_t i = 0; i < reqs.size(); ++i) {
      INFO("temperature " << temperature << ", request " << i);
      REQUIRE(got.at(int(i)).tokens == reference.at(int(i)).tokens);
      reused += got.at(int(i)).timing.cached_tokens;
    }
    REQUIRE(reused > 0);
  }
}
