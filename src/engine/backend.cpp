#include "gen/backend.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <string>
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

// The positions a step writes lose their origin (KVCache::block_origin) before it computes.
void Backend::clear_origins(const std::vector<SeqInput>& batch, KVCache* cache) {
  if (!cache) return;
  for (const auto& s : batch) cache->clear_origins(s.slot, s.pos0, s.pos0 + int(s.tokens.size()));
}

void Backend::advance(const std::vector<SeqInput>& batch, KVCache* cache) {
  if (!cache) return;
  for (const auto& s : batch) cache->len_.at(size_t(s.slot)) = s.pos0 + int(s.tokens.size());
}

void Backend::forward(const std::vector<SeqInput>& batch, KVCache* cache, float* logits_out) {
  check(batch, cache);
  clear_origins(batch, cache);
  compute(batch, cache, logits_out, false);
  mask_padded(config(), logits_out, batch.size());
  advance(batch, cache);
}

void Backend::forward_all(const std::vector<SeqInput>& batch, KVCache* cache, float* logits_out) {
  check(batch, cache);
  clear_origins(batch, cache);
  compute(batch, cache, logits_out, true);
  mask_padded(config(), logits_out, total_tokens(batch));
  advance(batch, cache);
}

void Backend::forward_sample(const std::vector<SeqInput>& batch, KVCache* cache, const std::vector<DrawParams>& draws,
                             int* tokens_out) {
  check(batch, cache);
  if (draws.size() != batch.size()) throw Error("forward_sample: one DrawParams per sequence is needed");
  clear_origins(batch, cache);
  compute_sample(batch, cache, draws, tokens_out);
  check_draws(draws, tokens_out);
  advance(batch, cache);
}

void Backend::forward_sample_logits(const std::vector<SeqInput>& batch, KVCache* cache,
                                    const std::vector<DrawParams>& draws, int* tokens_out, float* logits_out) {
  check(batch, cache);
  if (draws.size() != batch.size()) throw Error("forward_sample_logits: one DrawParams per sequence is needed");
  clear_origins(batch, cache);
  compute(batch, cache, logits_out, false);
  draw_host(logits_out, draws, tokens_out);
  check_draws(draws, tokens_out);
  advance(batch, cache);
}

void Backend::check_draws(const std::vector<DrawParams>& draws, const int* tokens_out) {
  for (size_t i = 0; i < draws.size(); ++i) {
    // Sampling would treat NaN as -inf and go on drawing nonsense (often id 0, "!"): stop instead.
    if (tokens_out[i] < 0) {
      throw Error("the logits at step " + std::to_string(draws[i].step) + " are not finite (NaN or Inf)");
    }
  }
}

void Backend::compute_sample(const std::vector<SeqInput>& batch, KVCache* cache, const std::vector<DrawParams>& draws,
                             int* tokens_out) {
  logits_.resize(batch.size() * size_t(config().vocab_size));
  compute(batch, cache, logits_.data(), false);
  draw_host(logits_.data(), draws, tokens_out);
}

void Backend::draw_host(const float* logits, const std::vector<DrawParams>& draws, int* tokens_out) {
  const int V = config().vocab_size, n = config().usable_vocab();  // padded ids are never drawn
  const int B = int(draws.size());
  if (scratch_.size() < size_t(omp_get_max_threads())) scratch_.resize(size_t(omp_get_max_threads()));
  // Each draw depends only on its row and its DrawParams: rows are independent.
#pragma omp parallel for schedule(dynamic, 1) if (B > 1)
  for (int i = 0; i < B; ++i) {
    const DrawParams& d = draws[size_t(i)];
    const float* row = &logits[size_t(i) * V];
    SampleScratch& scratch = scratch_[size_t(omp_get_thread_num())];
    tokens_out[i] = logits_finite(row, n) ? sample(row, n, d.sampling, d.seed, d.step, scratch) : -1;
  }
}

void Backend::check_slot(const KVCache& cache, int slot, const char* call) const {
  if (cache.owner() != this) throw Error(std::string(call) + ": the cache belongs to another backend");
  if (slot < 0 || slot >= cache.slots()) {
    throw Error(std::string(call) + ": slot " + std::to_string(slot) + " is not in the cache");
  }
}

void Backend::copy_kv(const KVCache& src, int src_slot, int src_pos, KVCache& dst, int dst_slot, int dst_pos,
                      int n) {
  check_slot(src, src_slot, "copy_kv");
  check_slot(dst, dst_slot, "copy_kv");
  if (n < 0 || src_pos < 0 || src_pos + n > src.length(src_slot) || dst_pos < 0 ||
      dst_pos > dst.length(dst_slot) || dst_pos + n > dst.max_ctx()) {
    throw Error("copy_kv: positions " + std::to_string(src_pos) + "+" + std::to_string(n) + " to " +
                std::to_string(dst_pos) + " do not lie in the written positions");
  }
  if (&src == &dst && src_slot == dst_slot) throw Error("copy_kv: a slot onto itself");
  dst.clear_origins(dst_slot, dst_pos, dst_pos + n);
  if (n > 0) copy_kv_positions(src, src_slot, src_pos, dst, dst_slot, dst_pos, n);
  dst.len_.at(size_t(dst_slot)) = dst_pos + n;
}

void Backend::read_kv(const KVCache& cache, int slot, int n, void* host, int host_n) {
  check_slot(cache, slot, "read_kv");
  if (n < 0 || n > cache.length(slot) || host_n < n) throw Error("read_kv: bad position count");
  if (n > 0) download_kv(cache, slot, n, host, host_n);
}

void Backend::write_kv(KVCache& cache, int slot, const void* host, int host_n, int n) {
  check_slot(cache, slot, "write_kv");
  if (n < 0 || n > cache.max_ctx() || host_n < n) throw Error("write_kv: bad position count");
  cache.clear_origins(slot, 0, n);
  if (n > 0) upload_kv(cache, slot, host, host_n, n);
  cache.len_.at(size_t(slot)) = n;
}

}  // namespace gen
