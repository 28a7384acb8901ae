// The KV cache: preallocated once, before the first token, never grown in the loop. Each backend keeps
// K and V in its own storage, laid out [layer][slot][head][max_ctx][head_dim] (slot = one sequence of a
// batch); this base holds the shape, its byte arithmetic and each slot's length (positions written).
// Only Backend::forward* advances a length: a slot is the positions its forward calls have written.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "gen/config.h"

namespace gen {

class Backend;

class KVCache {
 public:
  KVCache(const ModelConfig& cfg, int slots, int max_ctx, size_t bytes_per_element)
      : n_layer_(cfg.n_layer), n_embd_(cfg.n_embd), slots_(slots), max_ctx_(max_ctx), elem_(bytes_per_element),
        len_(size_t(slots), 0), origin_(size_t(slots) * blocks_per_slot(), 0) {}
  virtual ~KVCache() = default;
  KVCache(const KVCache&) = delete;
  KVCache& operator=(const KVCache&) = delete;

  int slots() const { return slots_; }
  int max_ctx() const { return max_ctx_; }
  int length(int slot) const { return len_.at(size_t(slot)); }
  // The backend whose make_cache() made this cache: forward() refuses a cache of another backend.
  const Backend* owner() const { return owner_; }

  // 2 x n_layer x slots x max_ctx x n_embd x bytes_per_element
  size_t bytes() const { return bytes_for(n_layer_, n_embd_, slots_, max_ctx_, elem_); }
  // Bytes holding positions actually written (all slots).
  size_t bytes_used() const;
  // Bytes that `positions` positions of one slot take.
  size_t bytes_for_positions(size_t positions) const { return bytes_for(n_layer_, n_embd_, 1, 1, elem_) * positions; }
  static size_t bytes_for(int n_layer, int n_embd, int slots, int max_ctx, size_t elem) {
    return size_t(2) * n_layer * slots * size_t(max_ctx) * n_embd * elem;
  }

  // Where the K/V of a block of kOriginBlock positions came from: the id of the prefix cache's block that
  // was copied there whole (ids are never reused), or 0. Two slots with the same id at a block hold the
  // same values there, so the CPU backend's decode attention reads them once for both. Every write to a
  // slot's positions (forward, copy_kv, write_kv) clears the ids of the blocks it touches; the prefix
  // cache sets them after its copies.
  static constexpr int kOriginBlock = 16;
  int blocks_per_slot() const { return (max_ctx_ + kOriginBlock - 1) / kOriginBlock; }
  uint64_t block_origin(int slot, int block) const { return origin_[size_t(slot) * blocks_per_slot() + block]; }
  void set_block_origin(int slot, int block, uint64_t id) { origin_.at(size_t(slot) * blocks_per_slot() + block) = id; }

 private:
  friend class Backend;  // sets owner_, advances len_, clears origins
  int n_layer_, n_embd_, slots_, max_ctx_;
  size_t elem_;
  void clear_origins(int slot, int pos0, int pos1);  // the blocks that positions [pos0, pos1) touch
  std::vector<int> len_;
  std::vector<uint64_t> origin_;  // [slot][blocks_per_slot()]
  const Backend* owner_ = nullptr;
};

}  // namespace gen
