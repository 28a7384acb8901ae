// The Backend interface: one forward call serves prefill, decode and the no-cache path.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gen/config.h"
#include "gen/error.h"
#include "gen/sampler.h"

namespace gen {

// A preallocated KV cache. Layout (per backend storage) [layer][slot][head][max_ctx][head_dim] for K
// and for V. It knows each slot's length (positions written so far).
class KVCache {
 public:
  KVCache(const ModelConfig& cfg, int slots, int max_ctx, size_t bytes_per_element)
      : n_layer_(cfg.n_layer), n_embd_(cfg.n_embd), slots_(slots), max_ctx_(max_ctx),
        elem_(bytes_per_element), len_(slots, 0) {}
  virtual ~KVCache() = default;
  int slots() const { return slots_; }
  int max_ctx() const { return max_ctx_; }
  int length(int slot) const { return len_.at(slot); }
  void set_length(int slot, int n) { len_.at(slot) = n; }
  void reset(int slot) { len_.at(slot) = 0; }
  // 2 x n_layer x slots x max_ctx x n_embd x bytes_per_element
  size_t bytes() const { return bytes_for(n_layer_, n_embd_, slots_, max_ctx_, elem_); }
  // Bytes holding positions actually written (all slots).
  size_t bytes_used() const;
  // Bytes that `positions` positions of one slot take.
  size_t bytes_for_positions(size_t positions) const { return bytes_for(n_layer_, n_embd_, 1, 1, elem_) * positions; }
  static size_t bytes_for(int n_layer, int n_embd, int slots, int max_ctx, size_t elem) {
    return size_t(2) * n_layer * slots * size_t(max_ctx) * n_embd * elem;
  }

 private:
  int n_layer_, n_embd_, slots_, max_ctx_;
  size_t elem_;
  std::vector<int> len_;
};

// One sequence's share of a forward call.
struct SeqInput {
  int slot = 0;             // cache slot (ignored without a cache)
  std::vector<int> tokens;  // new tokens, at least one
  int pos0 = 0;             // position of tokens[0]; without a cache it must be 0
};

// How to draw one sequence's next token: the draw depends only on these and the logits.
struct DrawParams {
  SamplingParams sampling;
  uint64_t seed = 0;
  int step = 0;  // index of the token being drawn within its sequence
};

// Checks every backend makes before it computes: a cache of 1..n_positions positions, and a batch
// whose ids, positions and slots are valid (and follow the cache). Throw Error / InputError.
void check_cache_shape(const ModelConfig& cfg, int slots, int max_ctx);
void check_batch(const ModelConfig& cfg, const std::vector<SeqInput>& batch, const KVCache* cache);

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;  // "cpu" or "cuda"
  virtual const ModelConfig& config() const = 0;
  // A cache for `slots` sequences of up to `max_ctx` positions, allocated now, never grown.
  virtual std::unique_ptr<KVCache> make_cache(int slots, int max_ctx) = 0;
  // Preallocates scratch for forward calls of up to `max_tokens` new tokens in all, so that the
  // generation loop allocates nothing. Optional: forward() grows scratch if it must.
  virtual void reserve(int max_tokens) = 0;
  // Runs the new tokens of each sequence. With a cache, K and V of the new positions are written
  // to the sequence's slot and attention reads the slot's positions [0, pos0 + n). Without one
  // (nullptr) each sequence is its whole self from position 0. Writes the last position's logits of
  // each sequence into logits_out, [batch.size()][V] fp32.
  virtual void forward(const std::vector<SeqInput>& batch, KVCache* cache, float* logits_out) = 0;
  // forward(), but the logits of EVERY new position reach ln_f and the LM head (to score text:
  // perplexity). logits_out is [N][V] fp32, N = new tokens of the whole batch, rows in batch order
  // (sequence 0's tokens, then sequence 1's, ...). The caller bounds N: N x V floats live on the host
  // and, on CUDA, on the device. The default throws for backends that do not have it.
  virtual void forward_all(const std::vector<SeqInput>&, KVCache*, float*) {
    throw Error("the " + name() + " backend cannot return the logits of every position");
  }
  // forward(), then one draw per sequence with gen::sample, into tokens_out [batch.size()]. This
  // default samples on the host; the CUDA backend samples on the GPU (only ids cross to the host) and
  // replays a captured graph for decode steps.
  virtual void forward_sample(const std::vector<SeqInput>& batch, KVCache* cache,
                              const std::vector<DrawParams>& draws, int* tokens_out);
  // One line on the device memory the backend holds, for the run's summary ("" when not relevant).
  virtual std::string memory_summary() const { return ""; }

 private:
  std::vector<float> logits_;  // [B, V] for the default forward_sample
  SampleScratch scratch_;
};

}  // namespace gen
