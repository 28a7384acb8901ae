// Decode attention on the CPU: queries of one row each (a decode step's new tokens, and the rows of
// prompts that prefill after a loaded prefix; cpu/attention_plan.h says which) over their cache
// positions [0, n), where sequences that hold the same copy of a prefix's K/V (blocks the prefix cache
// copied into each slot; KVCache::block_origin) form a group that reads those shared positions once,
// from its first query's cache, for all its queries: the K/V traffic of 32 sequences with a common
// 384-token prompt is then one prefix's plus 32 suffixes', not 32 prefixes'. (vLLM and FlashInfer reach the same with
// paged or cascade attention over one stored copy; here each slot keeps its own copy, so a sequence
// that leaves a group, or a backend that does not group, reads the very same values.)
//
// Each query's arithmetic is one canonical sequence of roundings (decode_attention.cpp) whatever its
// group, chunk or code path (plain loops, or AVX-512 for D = 64): grouping changes no bit of the output,
// so a sequence's tokens do not depend on the others of its step (tests/test_decode_attention.cpp checks
// the bits, and the values against float64).
// Shapes as in cpu_ops.h: H heads of D, C = H * D; caches [H][ctx][D].
#pragma once
#include <cstddef>
#include <vector>

namespace gen::cpu {

struct DecodeQuery {
  float* out;            // [C], heads concatenated
  const float* q;        // [C]: the query (the first C columns of the sequence's qkv row)
  const float* k_cache;  // the sequence's own cache [H][ctx][D]
  const float* v_cache;
  int ctx;  // the cache's positions per head
  int n;    // positions attended, [0, n): the new token's position + 1
};

// Queries [first, first + count) of a call read positions [0, shared) of every head from the caches of
// query `first` (which must hold the same values there as each of theirs) and the rest from their own.
// shared < n of each member; a group of one has shared = 0.
struct DecodeGroup {
  int first, count, shared;
};

// Scratch floats per thread for groups of at most `group_max` queries of at most `n_max` positions.
size_t decode_scratch_floats(int group_max, int n_max, int D);
// Queries of a group taken together in one work item (larger groups are split, each part reading the
// shared positions once).
constexpr int kDecodeChunk = 16;

// A work item: `count` queries from `first` of group `group` (all of one head per item index).
struct DecodeItem {
  int group, first, count;
};

// out of every query. `scratch`: n_threads x decode_scratch_floats(kDecodeChunk or the largest group if
// smaller, largest n, D). `items`: the caller's scratch, kept between calls. plain: the plain loops even
// where the AVX-512 path would run (the same bits; GEN_CPU_PLAIN=1, and the tests that show it).
void attention_decode(const std::vector<DecodeQuery>& queries, const std::vector<DecodeGroup>& groups, int H, int D,
                      float* scratch, int n_threads, std::vector<DecodeItem>* items, bool plain = false);

}  // namespace gen::cpu
