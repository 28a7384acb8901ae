#include "gen/kv_cache.h"

#include <algorithm>

namespace gen {

size_t KVCache::bytes_used() const {
  size_t positions = 0;
  for (int n : len_) positions += size_t(n);
  return bytes_for_positions(positions);
}

void KVCache::clear_origins(int slot, int pos0, int pos1) {
  if (pos1 <= pos0) return;
  const size_t base = size_t(slot) * blocks_per_slot();
  const int b1 = std::min(blocks_per_slot(), (pos1 + kOriginBlock - 1) / kOriginBlock);
  for (int b = std::max(0, pos0 / kOriginBlock); b < b1; ++b) origin_[base + b] = 0;
}

}  // namespace gen
