#include "gen/backend.h"

#include <vector>

#include "gen/error.h"

namespace gen {

namespace {
// A cache of 1..n_positions positions for at least one slot.
void check_cache_shape(const ModelConfig& c, int slots, int max_ctx) {
  if (slots <= 0 || max_ctx <= 0 || max_ctx > c.n_positions) {
    throw InputError("cache of " + std::to_string(slots) + " slots x " + std::to_string(max_ctx) +
                         " positions is invalid (context must be 1.." + std::to_string(c.n_positions) + ")",
                     "");
  }
}

void check_sequence(const ModelConfig& c, const SeqInput& s, const KVCache* cache) {
  if (s.tokens.empty()) throw Error("forward: a sequence has no tokens");
  for (int id : s.tokens) {
    if (id < 0 || id >= c.vocab_size) {
      throw InputError("token id " + std::to_string(id) + " out of range [0, " + std::to_string(c.vocab_size) + ")",
                       "");
    }
  }
  const int ctx = cache ? cache->max_ctx() : c.n_positions;
  if (s.pos0 < 0 || s.pos0 + int(s.tokens.size()) > ctx) {
    throw Error("forward: positions " + std::to_string(s.pos0) + ".." + std::to_string(s.pos0 + s.tokens.size()) +
                " exceed the context " + std::to_string(ctx));
  }
  if (!cache && s.pos0 != 0) throw Error("forward: without a cache a sequence starts at position 0");
  if (cache && (s.slot < 0 || s.slot >= cache->slots() || s.pos0 > cache->length(s.slot))) {
    throw Error("forward: slot " + std::to_string(s.slot) + " position " + std::to_string(s.pos0) +
                " does not follow the cached positions");
  }
}
}  // namespace

std::unique_ptr<KVCache> Backend::make_cache(int slots, int max_ctx) {
  check_cache_shape(config(), slots, max_ctx);
  std::unique_ptr<KVCache> cache = new_cache(slots, max_ctx);
  cache->owner_ = this;
  return cache;
}

void Backend::check(const std::vector<SeqInput>& batch, const KVCache* cache) const {
  if (cache && cache->owner() != this) throw Error("forward: the cache belongs to another backend");
  if (batch.empty()) throw Error("forward: empty batch");
  for (const auto& s : batch) check_sequence(config(), s, cache);
  // Two sequences writing one slot in one step would race on the GPU (kv_write): refuse it on both backends.
  if (cache) {
    std::vector<bool> used(size_t(cache->slots()), false);
    for (const auto& s : batch) {
      if (used[size_t(s.slot)]) throw Error("forward: slot " + std::to_string(s.slot) + " appears twice in one batch");
      used[size_t(s.slot)] = true;
    }
  }
}

void Backend::advance(const std::vector<SeqInput>& batch, KVCache* cache) {
  if (!cache) return;
  for (const auto& s : batch) cache->len_.at(size_t(s.slot)) = s.pos0 + int(s.tokens.size());
}

void Backend::forward(const std::vector<SeqInput>& batch, KVCache* cache, float* logits_out) {
  check(batch, cache);
  compute(batch, cache, logits_out, false);
  advance(batch, cache);
}

void Backend::forward_all(const std::vector<SeqInput>& batch, KVCache* cache, float* logits_out) {
  check(batch, cache);
  compute(batch, cache, logits_out, true);
  advance(batch, cache);
}

void Backend::forward_sample(const std::vector<SeqInput>& batch, KVCache* cache, const std::vector<DrawParams>& draws,
                             int* tokens_out) {
  check(batch, cache);
  if (draws.size() != batch.size()) throw Error("forward_sample: one DrawParams per sequence is needed");
  compute_sample(batch, cache, draws, tokens_out);
  advance(batch, cache);
}

void Backend::compute_sample(const std::vector<SeqInput>& batch, KVCache* cache, const std::vector<DrawParams>& draws,
                             int* tokens_out) {
  const int V = config().vocab_size;
  logits_.resize(batch.size() * size_t(V));
  compute(batch, cache, logits_.data(), false);
  for (size_t i = 0; i < batch.size(); ++i) {
    const DrawParams& d = draws[i];
    tokens_out[i] = sample(&logits_[i * size_t(V)], V, d.sampling, d.seed, d.step, scratch_);
  }
}

}  // namespace gen
