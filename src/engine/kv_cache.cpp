#include "gen/kv_cache.h"

namespace gen {

size_t KVCache::bytes_used() const {
  size_t positions = 0;
  for (int n : len_) positions += size_t(n);
  return bytes_for_positions(positions);
}

}  // namespace gen
