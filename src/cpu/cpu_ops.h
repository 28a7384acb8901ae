// The CPU twins of the model's ops: plain fp32 code (OpenBLAS for GEMMs, OpenMP for the rest) that
// is both the CPU backend and the oracle the CUDA kernels are tested against.
// Dimensions, as in kernels/cuda_kernels.h: B = sequences, T = rows (tokens of the call), C = n_embd,
// H = heads, D = head_dim, V = vocab; a GEMM maps Cin columns to Cout.
#pragma once
#include <cstddef>
#include <vector>

namespace gen::cpu {

// Below this many elements a parallel region costs more than it saves (every CPU op and cpu::Linear).
constexpr size_t kParallelMin = 1 << 14;

// out[t] = wte[tokens[t]] + wpe[pos0 + t]                      out [T, C]
void embed(float* out, const int* tokens, int T, int pos0, const float* wte, const float* wpe, int C);

// out[t] = (x[t] - mean) / sqrt(var + eps) * w + b              x, out [T, C]; w, b [C]
void layernorm(float* out, const float* x, const float* w, const float* b, int T, int C, float eps);

// out = x @ W + bias (bias may be null)                        x [T, Cin], W [Cin, Cout], out [T, Cout]
void matmul(float* out, const float* x, const float* W, const float* bias, int T, int Cin, int Cout);

// out = x @ E^T, the tied LM head                              x [T, C], E [V, C], out [T, V]
void matmul_transposed(float* out, const float* x, const float* E, int T, int C, int V);

// x = gelu_new(x) (the tanh approximation GPT-2 uses)          x [n]
void gelu_inplace(float* x, size_t n);

// x += y                                                       x, y [n]
void add_inplace(float* x, const float* y, size_t n);

// One sequence's K and V rows into a cache laid out [H][ctx][D]: for new token t (position
// pos0 + t), K = qkv[t][C + h*D ...], V = qkv[t][2C + h*D ...].   qkv [T, 3C]
void kv_write(float* k_cache, float* v_cache, int ctx, const float* qkv, int T, int pos0, int H, int D);

// Causal attention of one sequence's T new tokens (positions pos0 .. pos0+T-1) over the cache
// positions [0, pos0 + t] for token t, scaled by 1/sqrt(D), softmax in fp32. Per head and block of
// query rows it is two GEMMs (Q K^T, then P V) around a masked softmax, so a prefill runs at GEMM speed.
// q from qkv [T, 3C] (first C columns), caches [H][ctx][D], out [T, C] (heads concatenated).
// `scores` is scratch of attention_scratch_floats(T, pos0, n_threads_scratch) floats.
void attention(float* out, const float* qkv, const float* k_cache, const float* v_cache, int ctx,
               int T, int pos0, int H, int D, float* scores, int n_threads_scratch);
size_t attention_scratch_floats(int T, int pos0, int n_threads);

// One sequence of a batched attention call: attention()'s arguments but H, D and the scratch.
struct AttentionSeq {
  float* out;           // [T, C]
  const float* qkv;     // [T, 3C]
  const float* k_cache;  // [H][ctx][D]
  const float* v_cache;
  int ctx, T, pos0;
};
// attention() of every sequence of a batch in one parallel region over (sequence, head, block of
// query rows): a decode step's sequences (one row each, too little work to split alone) then share
// the threads. The same arithmetic per row as attention(). `scores`: attention_scratch_floats of the
// largest T and pos0 + T among them, for n_threads_scratch threads. `item_starts`: the caller's scratch
// (kept between calls, so that a decode step allocates nothing).
void attention_batch(const std::vector<AttentionSeq>& seqs, int H, int D, float* scores, int n_threads_scratch,
                     std::vector<int>* item_starts);

}  // namespace gen::cpu
