#include "gen/backend.h"

#include <algorithm>
#include <cmath>
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

// A vocabulary padded past the tokenizer (rows of wte no id stands for): -inf, so that nothing that
// reads the logits can draw or score them (docs/decisions.md, Checkpoints). logits [rows, V].
void mask_padded(const ModelConfig& c, float* logits, size_t rows) {
  const size_t V = size_t(c.vocab_size), n = size_t(c.usable_vocab());
  if (n == V) return;
  for (size_t r = 0; r < rows; ++r) std::fill(logits + r * V + n, logits + (r + 1) * V, -INFINITY);
}

size_t total_tokens(const std::vector<SeqInput>& batch) {
  size_t n = 0;
  for (const auto& s : batch) n += s.tokens.size();
  return n;
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
  mask_padded(config(), logits_out, batch.size());
  advance(batch, cache);
}

void Backend::forward_all(const std::vector<SeqInput>& batch, KVCache* cache, float* logits_out) {
  check(batch, cache);
  compute(batch, cache, logits_out, true);
  mask_padded(config(), logits_out, total_tokens(batch));
  advance(batch, cache);
}

void Backend::forward_sample(const std::vector<SeqInput>& batch, KVCache* cache, const std::vector<DrawParams>& draws,
                             int* tokens_out) {
  check(batch, cache);
  if (draws.size() != batch.size()) throw Error("forward_sample: one DrawParams per sequence is needed");
  compute_sample(batch, cache, draws, tokens_out);
  for (size_t i = 0; i < batch.size(); ++i) {
    // Sampling would treat NaN as -inf and go on drawing nonsense (often id 0, "!"): stop instead.
    if (tokens_out[i] < 0) {
      throw Error("the logits at step " + std::to_string(draws[i].step) + " are not finite (NaN or Inf)");
    }
  }
  advance(batch, cache);
}

void Backend::compute_sample(const std::vector<SeqInput>& batch, KVCache* cache, const std::vector<DrawParams>& draws,
                             int* tokens_out) {
  const int V = config().vocab_size, n = config().usable_vocab();  // padded ids are never drawn
  logits_.resize(batch.size() * size_t(V));
  compute(batch, cache, logits_.data(), false);
  for (size_t i = 0; i < batch.size(); ++i) {
    const DrawParams& d = draws[i];
    const float* row = &logits_[i * size_t(V)];
    tokens_out[i] = logits_finite(row, n) ? sample(row, n, d.sampling, d.seed, d.step, scratch_) : -1;
  }
}

}  // namespace gen
