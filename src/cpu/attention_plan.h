// Which rows of a step the CPU backend's attention_decode takes (cpu/decode_attention.h), in which
// groups, and which go to attention_batch (cpu_ops.h, GEMMs per block of rows).
//   - A sequence of one new row (a decode step) is a query of attention_decode.
//   - Sequences whose slots begin with the same cached blocks (KVCache::block_origin: copies of one
//     prefix-cache block) form a group that reads those positions once. Every row of every member is
//     one query of it: with many prompts that share a system prompt, the prefill of each prompt's own
//     part then reads the shared K/V once per 16 rows instead of once per prompt and head.
//   - Any other sequence of several rows (a prompt of its own) goes to attention_batch.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "cpu/decode_attention.h"
#include "gen/backend.h"
#include "gen/kv_cache.h"

namespace gen::cpu {

class AttentionPlan {
 public:
  // batch as Backend::forward got it; cache null: no decode queries at all.
  void build(const std::vector<SeqInput>& batch, const KVCache* cache);

  // The sequence's first query (its rows' are consecutive), -1: the sequence goes to attention_batch.
  int first_query(size_t seq) const { return first_query_[seq]; }
  int queries() const { return queries_; }
  const std::vector<DecodeGroup>& groups() const { return groups_; }
  int largest_group() const { return largest_; }  // queries
  int most_positions() const { return n_max_; }   // the largest n of a query

 private:
  std::vector<int> first_query_;
  std::vector<std::pair<uint64_t, int>> keyed_;  // (origin of block 0, sequence) of the candidates
  std::vector<DecodeGroup> groups_;
  int queries_ = 0, largest_ = 1, n_max_ = 1;
};

}  // namespace gen::cpu
