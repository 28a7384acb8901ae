#include "cpu/attention_plan.h"

#include <algorithm>

namespace gen::cpu {

namespace {
using Keyed = std::pair<uint64_t, int>;

// Positions [0, returned) of every member's slot hold the values of the first member's: the leading
// blocks whose origin all of them share, wholly before each member's first new row.
int shared_positions(const std::vector<SeqInput>& batch, const Keyed* first, const Keyed* last, const KVCache& cache) {
  int end = cache.max_ctx();
  for (const Keyed* m = first; m != last; ++m) end = std::min(end, batch[size_t(m->second)].pos0);
  const int lead = batch[size_t(first->second)].slot;
  int b = 0;
  for (; (b + 1) * KVCache::kOriginBlock <= end; ++b) {
    const uint64_t id = cache.block_origin(lead, b);
    bool all = id != 0;
    for (const Keyed* m = first; all && m != last; ++m) all = cache.block_origin(batch[size_t(m->second)].slot, b) == id;
    if (!all) break;
  }
  return b * KVCache::kOriginBlock;
}
}  // namespace

void AttentionPlan::build(const std::vector<SeqInput>& batch, const KVCache* cache) {
  first_query_.assign(batch.size(), -1);
  keyed_.clear();
  groups_.clear();
  queries_ = 0, largest_ = 1, n_max_ = 1;
  if (!cache) return;
  // Candidates: decode rows, and sequences whose first block came from the prefix cache.
  for (size_t i = 0; i < batch.size(); ++i) {
    const SeqInput& s = batch[i];
    const uint64_t origin = s.pos0 >= KVCache::kOriginBlock ? cache->block_origin(s.slot, 0) : 0;
    if (s.tokens.size() == 1 || origin != 0) keyed_.push_back({origin, int(i)});
  }
  std::sort(keyed_.begin(), keyed_.end());
  for (size_t a = 0, b; a < keyed_.size(); a = b) {
    const uint64_t origin = keyed_[a].first;
    for (b = a + 1; origin != 0 && b < keyed_.size() && keyed_[b].first == origin;) ++b;
    const Keyed* k = keyed_.data();
    const int shared = b - a > 1 ? shared_positions(batch, k + a, k + b, *cache) : 0;
    const SeqInput& alone = batch[size_t(keyed_[a].second)];
    if (shared == 0 && (b - a > 1 || alone.tokens.size() > 1)) {
      // Nothing read once for several: decode rows one by one, the prompts by GEMMs.
      for (size_t m = a; m < b; ++m) {
        const SeqInput& s = batch[size_t(keyed_[m].second)];
        if (s.tokens.size() > 1) continue;
        first_query_[size_t(keyed_[m].second)] = queries_;
        groups_.push_back({queries_++, 1, 0});
        n_max_ = std::max(n_max_, s.pos0 + 1);
      }
      continue;
    }
    const int first = queries_;
    for (size_t m = a; m < b; ++m) {
      const SeqInput& s = batch[size_t(keyed_[m].second)];
      first_query_[size_t(keyed_[m].second)] = queries_;
      queries_ += int(s.tokens.size());
      n_max_ = std::max(n_max_, s.pos0 + int(s.tokens.size()));
    }
    groups_.push_back({first, queries_ - first, shared});
    largest_ = std::max(largest_, queries_ - first);
  }
}

}  // namespace gen::cpu
