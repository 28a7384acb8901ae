// The CUDA backend's KV cache: K and V of every layer on the device, allocated once by the backend's
// new_cache() after a memory check.
#pragma once
#include <cstddef>
#include <cstdint>

#include "cuda/cuda_common.h"
#include "cuda_kernels.h"
#include "gen/config.h"
#include "gen/kv_cache.h"

namespace gen::cuda {

// K and V of every layer: [layer][slot][H][max_ctx][D] of Elem each.
template <typename Elem>
class CudaKVCache : public KVCache {
 public:
  CudaKVCache(const ModelConfig& cfg, int slots, int max_ctx)
      : KVCache(cfg, slots, max_ctx, sizeof(Elem)), layer_elems_(size_t(slots) * max_ctx * cfg.n_embd),
        n_embd_(cfg.n_embd) {
    ensure_fits(bytes(), "the KV cache");
    k_ = DeviceBuffer<Elem>(layer_elems_ * cfg.n_layer);
    v_ = DeviceBuffer<Elem>(layer_elems_ * cfg.n_layer);
  }
  // Layer l: [slot][H][max_ctx][D] for K and for V.
  CacheLayer<Elem> layer(int l) {
    return {k_.get() + l * layer_elems_, v_.get() + l * layer_elems_, max_ctx()};
  }
  // Layer l's K (kv 0) or V (kv 1) of one slot: [H][max_ctx][D].
  Elem* slot_data(int l, int kv, int slot) const {
    return (kv == 0 ? k_ : v_).get() + l * layer_elems_ + size_t(slot) * max_ctx() * n_embd_;
  }
  // Unique per cache ever made: a graph captured for one cache must never replay on another, even
  // one that reuses the same host address.
  uint64_t id() const { return id_; }

 private:
  static inline uint64_t next_id_ = 0;
  uint64_t id_ = ++next_id_;
  size_t layer_elems_;        // slots * max_ctx * C
  size_t n_embd_;             // C = H * D
  DeviceBuffer<Elem> k_, v_;  // [n_layer][slot][H][max_ctx][D] each
};

}  // namespace gen::cuda
