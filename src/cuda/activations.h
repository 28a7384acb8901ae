// The CUDA backend's per-call buffers: the activations of T rows (tokens of the whole call) and B
// sequences, the pinned step inputs, and the scratch that no decode graph ever holds.
// Dimensions: T = rows, B = sequences, C = n_embd, H = heads, D = head_dim, V = vocab, P = n_positions,
// Vp = the LM head's rows (V padded to a multiple of 64, lm_head_rows): every logits buffer's row stride.
//
// Ownership rule, in code: the buffers a decode graph bakes (StepBuffers, StepIO) change only in
// Activations::reserve, which destroys the graphs before it frees anything and bumps generation(); the
// graphs are keyed on that generation (DecodeGraphs), so none can replay over freed or replaced buffers.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "cuda/cuda_common.h"
#include "cuda/decode_graphs.h"
#include "cuda_kernels.h"
#include "gen/backend.h"
#include "gen/config.h"

namespace gen::cuda {

// Split-context attention as the backend asks for it: up to kDecodeSplits splits per row for calls of
// up to kSplitRows rows (the workspace is sized for that many), one split above.
constexpr int kDecodeSplits = 16;
constexpr int kSplitRows = 256;
static_assert(kDecodeSplits <= kMaxSplits, "attention() clamps the splits to the kernel's kMaxSplits");

// Pinned host inputs of one forward call and their device mirrors; one memcpy each way.
// The ints of a call with T rows are packed by T: [tokens T | positions T | row_slot T | last_rows B],
// so a step copies 3T + B ints, not the capacity, and a decode graph (T = B fixed) keeps valid offsets.
// positions[r] is both the row's embedding position and its cache position (kv_write, attention).
class StepIO {
 public:
  StepIO() = default;
  ~StepIO() { release(); }
  StepIO(const StepIO&) = delete;
  StepIO& operator=(const StepIO&) = delete;

  static size_t tokens_at(int) { return 0; }
  static size_t positions_at(int T) { return size_t(T); }
  static size_t slot_at(int T) { return 2 * size_t(T); }
  static size_t last_at(int T) { return 3 * size_t(T); }
  static size_t ints_used(int T, int B) { return 3 * size_t(T) + size_t(B); }

  // The batch's ints for its T rows. Without a cache, sequence i uses slot i of the no-cache scratch.
  void fill(const std::vector<SeqInput>& batch, bool with_cache, int T);
  void set_draws(const std::vector<DrawParams>& draws);  // h_params [B]
  // The used ints (and with_params the B sample params) to the device: a captured graph replays the
  // same copy of the same pinned bytes with the step's new contents.
  void enqueue_upload(int T, int B, bool with_params, cudaStream_t stream) const;
  void enqueue_download_tokens(int B, cudaStream_t stream) const;  // drawn ids -> h_tokens

  // Device arrays of a call with T rows.
  const int* tokens(int T) const { return ints_.get() + tokens_at(T); }        // [T]
  const int* positions(int T) const { return ints_.get() + positions_at(T); }  // [T]
  const int* row_slot(int T) const { return ints_.get() + slot_at(T); }        // [T]
  const int* last_rows(int T) const { return ints_.get() + last_at(T); }       // [B]
  const SampleParams* params() const { return params_.get(); }                 // [B]
  int* drawn() const { return tokens_.get(); }                                 // [B]
  const int* h_tokens() const { return h_tokens_; }                            // [B] drawn ids

 private:
  template <typename>
  friend class Activations;  // the only caller of reserve: see the ownership rule above
  void reserve(int T, int B);
  void release();

  int* h_ints_ = nullptr;              // [3T + B] as above
  SampleParams* h_params_ = nullptr;   // [B]
  int* h_tokens_ = nullptr;            // [B] drawn ids
  DeviceBuffer<int> ints_;             // [3T + B]
  DeviceBuffer<SampleParams> params_;  // [B]
  DeviceBuffer<int> tokens_;           // [B]
  int t_cap_ = 0, b_cap_ = 0;
};

// The buffers a decode graph bakes, for T rows / B sequences of capacity.
template <typename Elem>
struct StepBuffers {
  DeviceBuffer<Elem> x;         // [T, C] the residual stream
  DeviceBuffer<Elem> h;         // [T, C] layernorm output (ln_1, ln_2; ln_f of every row in forward_all)
  DeviceBuffer<Elem> qkv;       // [T, 3C] Q | K | V
  DeviceBuffer<Elem> att;       // [T, C] attention output, heads concatenated
  DeviceBuffer<Elem> tmp;       // [T, C] attn.c_proj / mlp.c_proj output
  DeviceBuffer<Elem> f;         // [T, 4C] MLP hidden
  DeviceBuffer<Elem> last;      // [B, C] each sequence's last row of x
  DeviceBuffer<Elem> lastn;     // [B, C] its ln_f
  DeviceBuffer<float> logits;   // [B, Vp] fp32
  DeviceBuffer<float> attn_ws;  // [min(T, kSplitRows), H, kDecodeSplits, D + 2] split partials
  size_t bytes() const;
};

template <typename Elem>
class Activations {
 public:
  Activations(const ModelConfig& cfg, int Vp);

  // Grows to at least T rows and B sequences (never shrinks). A growth replaces every StepBuffers
  // buffer and the StepIO: `graphs` are destroyed before the old buffers are freed, generation()
  // changes, and the old buffers go before the memory check, so that it and the peak count only the new
  // ones. Capacity stays 0 until every allocation has succeeded.
  void reserve(int T, int B, DecodeGraphs& graphs);
  // Changes with every reallocation of a buffer a graph may hold (a decode graph's GraphKey).
  uint64_t generation() const { return generation_; }

  const StepBuffers<Elem>& step() const { return step_; }  // read only: reserve() alone replaces them
  StepIO& io() { return io_; }
  const StepIO& io() const { return io_; }

  // Scratch that no graph holds (graphs are decode steps with a cache): grown on demand, outside the
  // generation. forward_all's [T, Vp] logits, apart from step().logits, which the graphs bake.
  float* logits_all(int T);
  // One layer's K and V for B sequences when there is no cache: [slot][H][P][D] each.
  CacheLayer<Elem> nocache_layer(int B);

  size_t bytes() const;  // every device buffer above but the StepIO's

 private:
  int C_, H_, D_, Vp_, P_;
  int t_cap_ = 0, b_cap_ = 0;
  uint64_t generation_ = 0;
  StepBuffers<Elem> step_;
  StepIO io_;
  DeviceBuffer<float> logits_all_;            // [T, Vp] of the largest forward_all so far
  DeviceBuffer<Elem> nocache_k_, nocache_v_;  // [slot][H][P][D], nocache_slots_ slots
  int nocache_slots_ = 0;
};

}  // namespace gen::cuda
