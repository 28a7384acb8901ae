// cpu::AttentionPlan: which rows of a step attention_decode takes, grouped by the cached blocks their
// slots share (KVCache::block_origin), and which go to attention_batch.
#include <catch2/catch.hpp>

#include "cpu/attention_plan.h"
#include "gen/kv_cache.h"

using namespace gen;

namespace {
ModelConfig small_config() {
  ModelConfig c;
  c.n_layer = 1;
  c.n_head = 1;
  c.n_embd = 64;
  c.n_positions = 128;
  return c;
}

SeqInput seq(int slot, int rows, int pos0) { return SeqInput{slot, std::vector<int>(size_t(rows), 1), pos0}; }

const cpu::DecodeGroup& group_of(const cpu::AttentionPlan& p, int query) {
  for (const auto& g : p.groups()) {
    if (query >= g.first && query < g.first + g.count) return g;
  }
  FAIL("query " << query << " is in no group");
  return p.groups().front();
}
}  // namespace

TEST_CASE("The attention plan groups the sequences whose slots hold the same cached blocks", "[attention_plan]") {
  KVCache cache(small_config(), 8, 128, 4);
  for (int slot : {0, 1, 2, 5}) {
    for (int b = 0; b < 4; ++b) cache.set_block_origin(slot, b, uint64_t(11 + b));
  }
  cache.set_block_origin(2, 3, 99);  // slot 2 differs from block 3 on
  cache.set_block_origin(3, 0, 21);  // slot 3: its own cached block, shared with no one
  cache.set_block_origin(7, 0, 11);  // slot 7: the same first block, but its new token is at 10
  const std::vector<SeqInput> batch = {seq(0, 1, 70), seq(1, 1, 64), seq(2, 1, 80), seq(3, 3, 40),
                                       seq(4, 1, 50), seq(5, 4, 64), seq(6, 5, 0),  seq(7, 1, 10)};
  cpu::AttentionPlan plan;
  plan.build(batch, &cache);
  // Prompts of several rows that share nothing: attention_batch.
  REQUIRE(plan.first_query(3) == -1);
  REQUIRE(plan.first_query(6) == -1);
  // Slots 0, 1, 2 and 5 share blocks 0..2 (48 positions, before every member's first new row): one
  // group of their 1 + 1 + 1 + 4 rows, sequence 5's rows consecutive.
  const cpu::DecodeGroup& g = group_of(plan, plan.first_query(0));
  REQUIRE(g.count == 7);
  REQUIRE(g.shared == 48);
  for (int s : {1, 2, 5}) REQUIRE(&group_of(plan, plan.first_query(size_t(s))) == &g);
  REQUIRE(plan.first_query(5) + 3 < g.first + g.count);
  // Decode rows sharing nothing (no origin, or a first block not wholly before the new token): alone.
  for (int s : {4, 7}) {
    const cpu::DecodeGroup& alone = group_of(plan, plan.first_query(size_t(s)));
    REQUIRE(alone.count == 1);
    REQUIRE(alone.shared == 0);
  }
  REQUIRE(plan.queries() == 9);
  REQUIRE(plan.largest_group() == 7);
  REQUIRE(plan.most_positions() == 81);

  // The shared positions stop at the first new row of any member.
  const std::vector<SeqInput> early = {seq(0, 1, 40), seq(1, 1, 64)};
  plan.build(early, &cache);
  REQUIRE(group_of(plan, 0).shared == 32);
  // Without a cache nothing is a decode query.
  plan.build(batch, nullptr);
  REQUIRE(plan.queries() == 0);
  for (size_t i = 0; i < batch.size(); ++i) REQUIRE(plan.first_query(i) == -1);
}
