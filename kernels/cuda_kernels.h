// Launchers of gen's CUDA kernels (kernels/*.cu). Each has a CPU twin (cpu/cpu_ops.h, gen/sampler.h)
// that the tests compare it with. All pointers are device pointers unless named h_*; every launcher
// is asynchronous on `stream` and checks the launch (CUDA_CHECK_LAUNCH).
// Elem is the storage dtype of weights and activations: float, __half or __nv_bfloat16; arithmetic and
// accumulation are fp32. Dimensions: T = rows (tokens of the whole batch), B = sequences, C = n_embd,
// H = heads, D = head_dim (C = H * D, D <= 256 and a multiple of 8), V = vocab.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace gen::cuda {

// ---- kernels/elementwise.cu -------------------------------------------------------------------------

// dst[i] = Elem(src[i])                                              src fp32 [n]
template <typename Elem>
void convert_from_f32(Elem* dst, const float* src, size_t n, cudaStream_t stream);
// dst[i] = float(src[i])
template <typename Elem>
void convert_to_f32(float* dst, const Elem* src, size_t n, cudaStream_t stream);

// out[r] = wte[tokens[r]] + wpe[positions[r]]                        out [T, C]
template <typename Elem>
void embed(Elem* out, const int* tokens, const int* positions, int T, const Elem* wte, const Elem* wpe,
           int C, cudaStream_t stream);

// x[r] += y[r] + bias (bias may be null); then out[r] = layernorm(x[r]) * w + b.
// With y == nullptr it is the plain layernorm of x (x unchanged). x, y, out [T, C]; bias, w, b [C].
// Residual add and layernorm in one pass over x, as each block's two layernorms follow a projection.
template <typename Elem>
void add_layernorm(Elem* x, const Elem* y, const Elem* bias, Elem* out, const Elem* w, const Elem* b, int T,
                   int C, float eps, cudaStream_t stream);

// x[r] += bias (cols wide); with gelu, then x = gelu_new(x).         x [T, cols], bias [cols]
template <typename Elem>
void bias_act(Elem* x, const Elem* bias, int T, int cols, bool gelu, cudaStream_t stream);

// x[r] += y[r] + bias                                                x, y [T, C]
template <typename Elem>
void add_bias_residual(Elem* x, const Elem* y, const Elem* bias, int T, int C, cudaStream_t stream);

// out[i] = x[rows[i]]  (the last row of each sequence before the LM head)   x [T, C], out [B, C]
template <typename Elem>
void gather_rows(Elem* out, const Elem* x, const int* rows, int B, int C, cudaStream_t stream);

// ---- kernels/attention.cu -----------------------------------------------------------------------------

// The KV cache of one layer: [slot][H][max_ctx][D] for K and for V.
template <typename Elem>
struct CacheLayer {
  Elem* k;
  Elem* v;
  int max_ctx;
};

// For each row r (one new token of sequence slot row_slot[r] at position row_pos[r]), copy its K and
// V from qkv [T, 3C] (K at columns C.., V at 2C..) to the cache at [slot][h][pos].
template <typename Elem>
void kv_write(CacheLayer<Elem> cache, const Elem* qkv, const int* row_slot, const int* row_pos, int T, int H,
              int D, cudaStream_t stream);

// The kernel's bound on context splits per row (the merge kernel's shared weights): attention() clamps
// AttentionWorkspace::max_splits to it.
constexpr int kMaxSplits = 64;

// Scratch for split-context attention; sized by attention_workspace_floats().
struct AttentionWorkspace {
  float* partial = nullptr;  // [T, H, max_splits, D + 2]
  int max_splits = 0;
};
size_t attention_workspace_floats(int T, int H, int D, int max_splits);

// Causal attention for T query rows: row r attends keys 0..row_pos[r] of slot row_slot[r] (which
// kv_write has already filled), scale 1/sqrt(D), softmax in fp32 (online). Q from qkv [T, 3C] at
// columns 0..C; out [T, C]. When T x H blocks cannot fill the GPU, the context is split into up to
// ws.max_splits chunks whose partial results a merge step combines.
template <typename Elem>
void attention(Elem* out, const Elem* qkv, CacheLayer<Elem> cache, const int* row_slot, const int* row_pos,
               int T, int H, int D, AttentionWorkspace ws, cudaStream_t stream);

// ---- kernels/sampling.cu --------------------------------------------------------------------------------

struct SampleParams {  // per sequence, on the device
  float temperature;   // 0: greedy
  int top_k;           // 0: off
  float top_p;         // 1: off
  uint64_t seed;
  int step;            // index of the token being drawn (counter of the RNG)
};

// One token per sequence from logits fp32 [B, ld] (ld 0: V) over ids [0, V) with the same algorithm as
// the CPU sampler (gen::sample), so equal logits give equal tokens. out_tokens [B]. ld > V skips the
// columns of a padded vocabulary. check_finite: a row with a NaN or Inf among its V logits gives -1
// (the twin of gen::logits_finite before gen::sample).
void sample(int* out_tokens, const float* logits, const SampleParams* params, int B, int V, cudaStream_t stream,
            int ld = 0, bool check_finite = false);

}  // namespace gen::cuda
