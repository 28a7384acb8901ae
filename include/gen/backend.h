// The Backend interface: one forward call serves prefill, decode and the no-cache path.
// A non-virtual interface: the public calls check the batch, resolve the cache (it must be this
// backend's) and advance each slot's length once; the protected compute* that each backend implements
// only computes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gen/config.h"
#include "gen/kv_cache.h"
#include "gen/sampler.h"

namespace gen {

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

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;   // "cpu" or "cuda"
  virtual std::string dtype() const = 0;  // the weights' dtype it computes with: "fp32", "bf16", ...
  virtual const ModelConfig& config() const = 0;
  // A cache for `slots` sequences of up to `max_ctx` (1..n_positions) positions, allocated now, never
  // grown. Throws InputError for a bad shape.
  std::unique_ptr<KVCache> make_cache(int slots, int max_ctx);
  // Preallocates scratch for forward calls of up to `max_tokens` new tokens in all, so that the
  // generation loop allocates nothing. Optional: forward() grows scratch if it must.
  virtual void reserve(int max_tokens) = 0;
  // Runs the new tokens of each sequence. With a cache, K and V of the new positions are written
  // to the sequence's slot and attention reads the slot's positions [0, pos0 + n); the slot's length
  // becomes pos0 + n. Without one (nullptr) each sequence is its whole self from position 0. Writes
  // the last position's logits of each sequence into logits_out, [batch.size()][V] fp32; the columns
  // of a padded vocabulary (config().usable_vocab() .. V) are -inf.
  void forward(const std::vector<SeqInput>& batch, KVCache* cache, float* logits_out);
  // forward(), but the logits of EVERY new position reach ln_f and the LM head (to score text:
  // perplexity). logits_out is [T][V] fp32, T = new tokens of the whole batch, rows in batch order
  // (sequence 0's tokens, then sequence 1's, ...). The caller bounds T: T x V floats live on the host
  // and, on CUDA, on the device.
  void forward_all(const std::vector<SeqInput>& batch, KVCache* cache, float* logits_out);
  // forward(), then one draw per sequence with gen::sample over the usable ids, into tokens_out
  // [batch.size()]. Throws Error naming the step when a sequence's logits are not all finite.
  void forward_sample(const std::vector<SeqInput>& batch, KVCache* cache, const std::vector<DrawParams>& draws,
                      int* tokens_out);
  // forward_sample() that also writes the logits it drew from into logits_out, [batch.size()][V] fp32
  // (for log-probabilities). The draws are made on the host, with the same gen::sample that the CUDA
  // sampler twins: the tokens equal forward_sample()'s.
  void forward_sample_logits(const std::vector<SeqInput>& batch, KVCache* cache, const std::vector<DrawParams>& draws,
                             int* tokens_out, float* logits_out);
  // One line on the device memory the backend holds, for the run's summary ("" when not relevant).
  virtual std::string memory_summary() const { return ""; }
  // The element type of this backend's K and V: "f32", "f16" or "bf16" (the CPU keeps fp32 K/V at
  // every weight dtype).
  virtual std::string kv_dtype() const = 0;
  // Free bytes where this backend's caches live (the host's MemAvailable, the GPU's free memory);
  // 0 when it cannot tell. For defaults such as the prefix cache's budget.
  virtual size_t memory_available() const = 0;

  // K/V moved between slots and to and from the host, for the prefix cache and the K/V files. Every
  // layer's K and V are moved; positions are per slot. The caches must be this backend's (Error).
  // Copies positions [src_pos, src_pos + n) of src's slot to dst's slot at dst_pos.. (two caches of
  // any max_ctx, or one). They must have been written: src_pos + n <= src.length(src_slot), and
  // dst_pos <= dst.length(dst_slot) as for forward(); dst's slot then holds dst_pos + n positions.
  // On the GPU a device-to-device copy, ordered on the backend's stream before later calls.
  void copy_kv(const KVCache& src, int src_slot, int src_pos, KVCache& dst, int dst_slot, int dst_pos, int n);
  // Positions [0, n) of a slot to host memory laid out [n_layer][2: K, V][H][host_n][D] elements of
  // kv_dtype() (host_n >= n positions per head; the first n of each are written). n <= length(slot).
  void read_kv(const KVCache& cache, int slot, int n, void* host, int host_n);
  // The reverse: the first n of host_n positions per head into positions [0, n) of the slot, which
  // then holds n positions.
  void write_kv(KVCache& cache, int slot, const void* host, int host_n, int n);

 protected:
  // The backend's own cache for a checked shape.
  virtual std::unique_ptr<KVCache> new_cache(int slots, int max_ctx) = 0;
  // The model over a checked batch. `cache` is nullptr or one this backend made (a static_cast to the
  // backend's cache type is safe); its lengths still hold the positions before this call.
  // all_rows: the logits of every new position ([T, V]); else each sequence's last ([B, V]).
  virtual void compute(const std::vector<SeqInput>& batch, KVCache* cache, float* logits_out, bool all_rows) = 0;
  // compute(), then the draws over config().usable_vocab() ids; a sequence whose logits there are not
  // all finite gets -1. This default samples on the host; the CUDA backend samples on the GPU (only
  // ids cross to the host) and replays a captured graph for decode steps.
  virtual void compute_sample(const std::vector<SeqInput>& batch, KVCache* cache, const std::vector<DrawParams>& draws,
                              int* tokens_out);
  // The moves above on checked arguments (the caches are this backend's; the positions lie inside them).
  virtual void copy_kv_positions(const KVCache& src, int src_slot, int src_pos, KVCache& dst, int dst_slot,
                                 int dst_pos, int n) = 0;
  virtual void download_kv(const KVCache& cache, int slot, int n, void* host, int host_n) = 0;
  virtual void upload_kv(KVCache& cache, int slot, const void* host, int host_n, int n) = 0;

 private:
  // Refuses a bad batch, or a cache another backend made (Error / InputError).
  void check(const std::vector<SeqInput>& batch, const KVCache* cache) const;
  static void advance(const std::vector<SeqInput>& batch, KVCache* cache);
  static void clear_origins(const std::vector<SeqInput>& batch, KVCache* cache);
  void check_slot(const KVCache& cache, int slot, const char* call) const;
  // The draws of the default compute_sample over logits [B][V] on the host (-1: not finite).
  void draw_host(const float* logits, const std::vector<DrawParams>& draws, int* tokens_out);
  // Throws when a draw found non-finite logits (-1), naming its step.
  static void check_draws(const std::vector<DrawParams>& draws, const int* tokens_out);
  std::vector<float> logits_;  // [B, V] for the default compute_sample
  std::vector<SampleScratch> scratch_;  // one per OpenMP thread: the rows are drawn in parallel
};

}  // namespace gen
