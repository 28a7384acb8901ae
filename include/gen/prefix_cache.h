// The prefix cache: the K and V of prompt prefixes, computed once and copied into the slot of every
// later sequence that starts with the same tokens, which then prefills only the rest (vLLM's automatic
// prefix caching; llama.cpp's server slots). Exact: the copied K/V are the very values a prefill of
// that prompt computed.
//
// An index of blocks of kBlock tokens: a radix tree whose nodes are blocks, keyed by their tokens, so
// a node stands for the whole prefix that leads to it (K and V at a position depend on every token
// before it). The blocks' K/V live in a pool of the backend's own caches (device memory on the GPU),
// grown on demand up to a byte budget. When the pool is full, the least recently used leaf that no
// operation holds is evicted: only leaves, since a block without its parent can never be matched.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "gen/backend.h"

namespace gen {

class PrefixCache {
 public:
  static constexpr int kBlock = 16;  // tokens per block

  // budget_bytes: the most K/V bytes the pool may hold (0: nothing is kept, every lookup misses).
  PrefixCache(Backend& backend, size_t budget_bytes);
  ~PrefixCache();
  PrefixCache(const PrefixCache&) = delete;
  PrefixCache& operator=(const PrefixCache&) = delete;

  // A quarter of the memory the backend's caches live in (Backend::memory_available), or 1 GiB when
  // that is unknown. Only what prompts use is allocated.
  static size_t default_budget(const Backend& backend);

  // The leading tokens whose K/V are cached: whole blocks, at most `limit` tokens. Looks only.
  int match(const std::vector<int>& tokens, int limit) const;
  // Copies the K/V of the first n tokens (n from match(), a multiple of kBlock) into positions
  // [0, n) of the cache's slot, which then holds n positions, and marks their blocks used.
  void load(const std::vector<int>& tokens, int n, KVCache& cache, int slot);
  // Adds the whole blocks of tokens[0, n), whose K/V the cache's slot holds at positions [0, n);
  // blocks already cached are only marked used. When the budget is full and nothing can be evicted,
  // the rest is not added (never an error). The slot's blocks that load() copied, or that store() copies
  // to the pool, carry the block's id (KVCache::block_origin).
  void store(const std::vector<int>& tokens, int n, KVCache& cache, int slot);

  Backend& backend() const { return backend_; }
  size_t block_bytes() const { return block_bytes_; }
  size_t budget_bytes() const { return budget_; }
  int capacity() const { return max_blocks_; }          // blocks the budget holds
  int blocks() const { return used_blocks_; }           // blocks cached now
  size_t bytes() const;                                  // pool memory allocated so far
  int64_t evictions() const { return evictions_; }

 private:
  struct Node;
  Node* child(const Node* parent, const int* block_tokens) const;
  int take_block();  // a free pool block, growing the pool or evicting a leaf; -1: none
  void evict(Node* leaf);
  void touch(Node* n);  // marks n used now (its place in the eviction order)
  void update_evictable(Node* n);
  KVCache& pool(int block, int* slot) const;

  Backend& backend_;
  size_t budget_;
  size_t block_bytes_;
  int max_blocks_;    // budget / block_bytes
  int chunk_blocks_;  // blocks per pool cache, allocated one at a time (the last one may hold fewer)
  int allocated_ = 0; // blocks the pool's caches hold
  std::vector<std::unique_ptr<KVCache>> chunks_;  // the pool: chunks_[b / chunk_blocks_] slot b % chunk_blocks_
  std::vector<int> free_;                          // pool blocks no node holds
  std::unique_ptr<Node> root_;                     // the empty prefix (no block)
  struct Lru;
  std::unique_ptr<Lru> lru_;                       // evictable leaves by last use
  uint64_t clock_ = 0;
  int used_blocks_ = 0;
  int64_t evictions_ = 0;
};

}  // namespace gen
