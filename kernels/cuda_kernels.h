// Launchers of gen's CUDA kernels (kernels/*.cu). Each has a CPU twin (cpu/cpu_ops.h, gen/sampler.h)
// that the tests compare it with. All pointers are device pointers unless named h_*; every launcher
// is asynchronous on `stream` and checks the launch (CUDA_CHECK_LAUNCH).
// T is the storage dtype of weights and activations: float, __half or __nv_bfloat16; arithmetic and
// accumulation are fp32. Dimensions: N = rows (tokens of the whole batch), B = sequences, C = n_embd,
// H = heads, D = head_dim (C = H * D, D <= 256 and a multiple of 8), V = vocab.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace gen::cuda {

// ---- kernels/elementwise.cu -------------------------------------------------------------------------

// dst[i] = T(src[i])                                                 src fp32 [n]
template <typename T>
void convert_from_f32(T* dst, const float* src, size_t n, cudaStream_t stream);
// dst[i] = float(src[i])
template <typename T>
void convert_to_f32(float* dst, const T* src, size_t n, cudaStream_t stream);

// out[r] = wte[tokens[r]] + wpe[positions[r]]                        out [N, C]
template <typename T>
void embed(T* out, const int* tokens, const int* positions, int N, const T* wte, const T* wpe, int C,
           cudaStream_t stream);

// x[r] += y[r] + bias (bias may be null); then out[r] = layernorm(x[r]) * w + b.
// With y == nullptr it is the plain layernorm of x (x unchanged). x, y, out [N, C]; bias, w, b [C].
// Residual add and layernorm in one pass over x, as each block's two layernorms follow a projection.
template <typename T>
void add_layernorm(T* x, const T* y, const T* bias, T* out, const T* w, const T* b, int N, int C, float eps,
                   cudaStream_t stream);

// x[r] += bias (cols wide); with gelu, then x = gelu_new(x).         x [N, cols], bias [cols]
template <typename T>
void bias_act(T* x, const T* bias, int N, int cols, bool gelu, cudaStream_t stream);

// x[r] += y[r] + bias                                                x, y [N, C]
template <typename T>
void add_bias_residual(T* x, const T* y, const T* bias, int N, int C, cudaStream_t stream);

// out[i] = x[rows[i]]  (the last row of each sequence before the LM head)   x [N, C], out [B, C]
template <typename T>
void gather_rows(T* out, const T* x, const int* rows, int B, int C, cudaStream_t stream);

// ---- kernels/attention.cu -----------------------------------------------------------------------------

// The KV cache of one layer: [slot][H][max_ctx][D] for K and for V.
template <typename T>
struct CacheLayer {
  T* k;
  T* v;
  int max_ctx;
};

// For each row r (one new token of sequence slot row_slot[r] at position row_pos[r]), copy its K and
// V from qkv [N, 3C] (K at columns C.., V at 2C..) to the cache at [slot][h][pos].
template <typename T>
void kv_write(CacheLayer<T> cache, const T* qkv, const int* row_slot, const int* row_pos, int N, int H, int D,
              cudaStream_t stream);

// Scratch for split-context attention; sized by attention_workspace_floats().
struct AttentionWorkspace {
  float* partial = nullptr;  // [N, H, max_splits, D + 2]
  int max_splits = 0;
};
size_t attention_workspace_floats(int N, int H, int D, int max_splits);

// Causal attention for N query rows: row r attends keys 0..row_pos[r] of slot row_slot[r] (which
// kv_write has already filled), scale 1/sqrt(D), softmax in fp32 (online). Q from qkv [N, 3C] at
// columns 0..C; out [N, C]. When N x H blocks cannot fill the GPU, the context is split into up to
// ws.max_splits chunks whose partial results a merge step combines.
template <typename T>
void attention(T* out, const T* qkv, CacheLayer<T> cache, const int* row_slot, const int* row_pos, int N, int H,
               int D, AttentionWorkspace ws, cudaStream_t stream);

// ---- kernels/sampling.cu --------------------------------------------------------------------------------

struct SampleParams {  // per sequence, on the device
  float temperature;   // 0: greedy
  int top_k;           // 0: off
  float top_p;         // 1: off
  uint64_t seed;
  int step;            // index of the token being drawn (counter of the RNG)
};

// One token per sequence from logits fp32 [B, V] with the same algorithm as the CPU sampler
// (gen::sample), so equal logits give equal tokens. out_tokens [B].
void sample(int* out_tokens, const float* logits, const SampleParams* params, int B, int V, cudaStream_t stream);

}  // namespace gen::cuda
