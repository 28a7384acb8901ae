// The memory-bound kernels around the GEMMs and attention: dtype conversion, embedding, residual add +
// layernorm, bias + gelu_new, residual add, row gather. Arithmetic is fp32 whatever T is; T is rounded
// once, on store.
//
// Vectorization: a Pack moves 16 bytes (4 floats or 8 halves) in one load/store. A launcher takes the
// packed path when every pointer is 16-byte aligned and rows are a whole number of packs (C % kVec == 0,
// true for every GPT-2 size); otherwise the same kernel runs with packs of one element.
// No launcher allocates or synchronizes, so all can be captured in a CUDA graph; N == 0 launches nothing.
#include <algorithm>
#include <cstdint>
#include <string>

#include "cuda/cuda_common.h"
#include "cuda_kernels.h"

namespace gen::cuda {

namespace {

template <typename T>
constexpr int kVec = 16 / int(sizeof(T));
constexpr int kThreads = 256;
constexpr size_t kMaxBlocks = 8192;  // grid-stride loops cover the rest
constexpr int kLnThreads = 128;      // add_layernorm: one block per row
// Its fp32 row copy (dynamic) plus red[] (static, 144 bytes as ptxas pads it) must fit together in the
// 48 KB a block gets without an opt-in; 12288 floats alone would fill it. 256 bytes are left for red[].
constexpr int kLnMaxC = 12288 - 64;

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_f32(float v);
template <>
__device__ __forceinline__ float from_f32<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __half from_f32<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

template <typename T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

template <typename T, int N>
__device__ __forceinline__ void load(float (&f)[N], const T* p) {
  const Pack<T, N> pk = *reinterpret_cast<const Pack<T, N>*>(p);
#pragma unroll
  for (int j = 0; j < N; ++j) f[j] = to_f32(pk.v[j]);
}

// A null pointer reads as zeros (the optional biases).
template <typename T, int N>
__device__ __forceinline__ void load_or_zero(float (&f)[N], const T* p) {
  if (p) {
    load<T, N>(f, p);
  } else {
#pragma unroll
    for (int j = 0; j < N; ++j) f[j] = 0.0f;
  }
}

template <typename T, int N>
__device__ __forceinline__ void store(T* p, const float (&f)[N]) {
  Pack<T, N> pk;
#pragma unroll
  for (int j = 0; j < N; ++j) pk.v[j] = from_f32<T>(f[j]);
  *reinterpret_cast<Pack<T, N>*>(p) = pk;
}

__device__ __forceinline__ size_t thread_index() { return size_t(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ __forceinline__ size_t thread_stride() { return size_t(gridDim.x) * blockDim.x; }

__device__ __forceinline__ float gelu_new(float x) {
  const float k = 0.7978845608028654f;  // sqrt(2 / pi)
  return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}

// ---- kernels ------------------------------------------------------------------------------------------

// dst[i] = src[i] for the packs of N, then the n % N tail one by one.
template <typename D, typename S, int N>
__global__ void convert_kernel(D* dst, const S* src, size_t n) {
  const size_t packs = n / N;
  for (size_t v = thread_index(); v < packs; v += thread_stride()) {
    float f[N];
    load<S, N>(f, src + v * N);
    store<D, N>(dst + v * N, f);
  }
  for (size_t i = packs * N + thread_index(); i < n; i += thread_stride())
    dst[i] = from_f32<D>(to_f32(src[i]));
}

// Row-wise kernels iterate over packs of a [rows, C] tensor: pack v is row v / (C / N), column
// (v % (C / N)) * N.
template <typename T, int N>
__global__ void embed_kernel(T* out, const int* tokens, const int* positions, int rows, const T* wte,
                             const T* wpe, int C) {
  const int per_row = C / N;
  const size_t packs = size_t(rows) * per_row;
  for (size_t v = thread_index(); v < packs; v += thread_stride()) {
    const int r = int(v / per_row), c = int(v % per_row) * N;
    float a[N], b[N];
    load<T, N>(a, wte + size_t(tokens[r]) * C + c);
    load<T, N>(b, wpe + size_t(positions[r]) * C + c);
#pragma unroll
    for (int j = 0; j < N; ++j) a[j] += b[j];
    store<T, N>(out + size_t(r) * C + c, a);
  }
}

template <typename T, int N>
__global__ void bias_act_kernel(T* x, const T* bias, int rows, int C, bool gelu) {
  const int per_row = C / N;
  const size_t packs = size_t(rows) * per_row;
  for (size_t v = thread_index(); v < packs; v += thread_stride()) {
    const int c = int(v % per_row) * N;
    float a[N], b[N];
    load<T, N>(a, x + v * N);
    load_or_zero<T, N>(b, bias ? bias + c : nullptr);
#pragma unroll
    for (int j = 0; j < N; ++j) a[j] = gelu ? gelu_new(a[j] + b[j]) : a[j] + b[j];
    store<T, N>(x + v * N, a);
  }
}

// x + (y + bias): y + bias is what the unfused projection would have stored.
template <typename T, int N>
__global__ void add_bias_residual_kernel(T* x, const T* y, const T* bias, int rows, int C) {
  const int per_row = C / N;
  const size_t packs = size_t(rows) * per_row;
  for (size_t v = thread_index(); v < packs; v += thread_stride()) {
    const int c = int(v % per_row) * N;
    float a[N], b[N], d[N];
    load<T, N>(a, x + v * N);
    load<T, N>(d, y + v * N);
    load_or_zero<T, N>(b, bias ? bias + c : nullptr);
#pragma unroll
    for (int j = 0; j < N; ++j) a[j] += d[j] + b[j];
    store<T, N>(x + v * N, a);
  }
}

template <typename T, int N>
__global__ void gather_rows_kernel(T* out, const T* x, const int* rows, int B, int C) {
  const int per_row = C / N;
  const size_t packs = size_t(B) * per_row;
  for (size_t v = thread_index(); v < packs; v += thread_stride()) {
    const int r = int(v / per_row), c = int(v % per_row) * N;
    float a[N];
    load<T, N>(a, x + size_t(rows[r]) * C + c);
    store<T, N>(out + size_t(r) * C + c, a);
  }
}

// The block's sum of v, returned to every thread. red holds 33 floats; the two barriers also keep a
// following call from overwriting red before every thread has read this one's result.
__device__ float block_sum(float v, float* red) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) red[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < int(blockDim.x / 32) ? red[lane] : 0.0f;
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    if (lane == 0) red[32] = v;
  }
  __syncthreads();
  return red[32];
}

// One block per row. The row (after the residual add, rounded to T as stored) is kept in shared memory
// in fp32 for the two statistics passes. Statistics are taken about shift = the row's first element:
// for a row with a large mean, sum(x - shift) keeps the digits that sum(x) would round away.
template <typename T, int N>
__global__ void __launch_bounds__(kLnThreads)
    add_layernorm_kernel(T* x, const T* y, const T* bias, T* out, const T* w, const T* b, int C, float eps) {
  extern __shared__ float row[];  // [C]
  __shared__ float red[33];
  const size_t base = size_t(blockIdx.x) * C;
  for (int c = threadIdx.x * N; c < C; c += kLnThreads * N) {
    float a[N];
    load<T, N>(a, x + base + c);
    if (y) {
      float d[N], bb[N];
      load<T, N>(d, y + base + c);
      load_or_zero<T, N>(bb, bias ? bias + c : nullptr);
#pragma unroll
      for (int j = 0; j < N; ++j) a[j] = to_f32(from_f32<T>(a[j] + (d[j] + bb[j])));  // as stored
      store<T, N>(x + base + c, a);
    }
#pragma unroll
    for (int j = 0; j < N; ++j) row[c + j] = a[j];
  }
  __syncthreads();
  const float shift = row[0];
  float s = 0.0f;
  for (int c = threadIdx.x; c < C; c += kLnThreads) s += row[c] - shift;
  const float mean_d = block_sum(s, red) / C;  // mean - shift
  float q = 0.0f;
  for (int c = threadIdx.x; c < C; c += kLnThreads) {
    const float d = (row[c] - shift) - mean_d;
    q += d * d;
  }
  const float rstd = 1.0f / sqrtf(block_sum(q, red) / C + eps);
  for (int c = threadIdx.x * N; c < C; c += kLnThreads * N) {
    float ww[N], bb[N], o[N];
    load<T, N>(ww, w + c);
    load<T, N>(bb, b + c);
#pragma unroll
    for (int j = 0; j < N; ++j) o[j] = ((row[c + j] - shift) - mean_d) * rstd * ww[j] + bb[j];
    store<T, N>(out + base + c, o);
  }
}

// ---- launch helpers -------------------------------------------------------------------------------------

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }  // null is aligned
template <typename... P>
bool all_aligned16(const P*... p) {
  return (aligned16(p) && ...);
}

unsigned blocks_for(size_t work) { return unsigned(std::min((work + kThreads - 1) / kThreads, kMaxBlocks)); }

}  // namespace

// ---- launchers --------------------------------------------------------------------------------------------

template <typename T>
void convert_from_f32(T* dst, const float* src, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  if (all_aligned16(dst, src)) {  // packs of 4: 16 bytes of floats
    convert_kernel<T, float, 4><<<blocks_for(n / 4 + 1), kThreads, 0, stream>>>(dst, src, n);
  } else {
    convert_kernel<T, float, 1><<<blocks_for(n), kThreads, 0, stream>>>(dst, src, n);
  }
  CUDA_CHECK_LAUNCH("convert_from_f32");
}

template <typename T>
void convert_to_f32(float* dst, const T* src, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  if (all_aligned16(dst, src)) {
    convert_kernel<float, T, 4><<<blocks_for(n / 4 + 1), kThreads, 0, stream>>>(dst, src, n);
  } else {
    convert_kernel<float, T, 1><<<blocks_for(n), kThreads, 0, stream>>>(dst, src, n);
  }
  CUDA_CHECK_LAUNCH("convert_to_f32");
}

template <typename T>
void embed(T* out, const int* tokens, const int* positions, int N, const T* wte, const T* wpe, int C,
           cudaStream_t stream) {
  if (N <= 0 || C <= 0) return;
  constexpr int V = kVec<T>;
  if (C % V == 0 && all_aligned16(out, wte, wpe)) {
    embed_kernel<T, V>
        <<<blocks_for(size_t(N) * C / V), kThreads, 0, stream>>>(out, tokens, positions, N, wte, wpe, C);
  } else {
    embed_kernel<T, 1>
        <<<blocks_for(size_t(N) * C), kThreads, 0, stream>>>(out, tokens, positions, N, wte, wpe, C);
  }
  CUDA_CHECK_LAUNCH("embed");
}

template <typename T>
void add_layernorm(T* x, const T* y, const T* bias, T* out, const T* w, const T* b, int N, int C, float eps,
                   cudaStream_t stream) {
  if (N <= 0 || C <= 0) return;
  if (C > kLnMaxC) {
    throw Error("cuda::add_layernorm: n_embd " + std::to_string(C) + " is over " + std::to_string(kLnMaxC));
  }
  const size_t smem = size_t(C) * sizeof(float);
  constexpr int V = kVec<T>;
  if (C % V == 0 && all_aligned16(x, y, bias, out, w, b)) {
    add_layernorm_kernel<T, V><<<N, kLnThreads, smem, stream>>>(x, y, bias, out, w, b, C, eps);
  } else {
    add_layernorm_kernel<T, 1><<<N, kLnThreads, smem, stream>>>(x, y, bias, out, w, b, C, eps);
  }
  CUDA_CHECK_LAUNCH("add_layernorm");
}

template <typename T>
void bias_act(T* x, const T* bias, int N, int cols, bool gelu, cudaStream_t stream) {
  if (N <= 0 || cols <= 0) return;
  constexpr int V = kVec<T>;
  if (cols % V == 0 && all_aligned16(x, bias)) {
    bias_act_kernel<T, V><<<blocks_for(size_t(N) * cols / V), kThreads, 0, stream>>>(x, bias, N, cols, gelu);
  } else {
    bias_act_kernel<T, 1><<<blocks_for(size_t(N) * cols), kThreads, 0, stream>>>(x, bias, N, cols, gelu);
  }
  CUDA_CHECK_LAUNCH("bias_act");
}

template <typename T>
void add_bias_residual(T* x, const T* y, const T* bias, int N, int C, cudaStream_t stream) {
  if (N <= 0 || C <= 0) return;
  constexpr int V = kVec<T>;
  if (C % V == 0 && all_aligned16(x, y, bias)) {
    add_bias_residual_kernel<T, V><<<blocks_for(size_t(N) * C / V), kThreads, 0, stream>>>(x, y, bias, N, C);
  } else {
    add_bias_residual_kernel<T, 1><<<blocks_for(size_t(N) * C), kThreads, 0, stream>>>(x, y, bias, N, C);
  }
  CUDA_CHECK_LAUNCH("add_bias_residual");
}

template <typename T>
void gather_rows(T* out, const T* x, const int* rows, int B, int C, cudaStream_t stream) {
  if (B <= 0 || C <= 0) return;
  constexpr int V = kVec<T>;
  if (C % V == 0 && all_aligned16(out, x)) {
    gather_rows_kernel<T, V><<<blocks_for(size_t(B) * C / V), kThreads, 0, stream>>>(out, x, rows, B, C);
  } else {
    gather_rows_kernel<T, 1><<<blocks_for(size_t(B) * C), kThreads, 0, stream>>>(out, x, rows, B, C);
  }
  CUDA_CHECK_LAUNCH("gather_rows");
}

// Explicit instantiations for the three storage dtypes.
#define GEN_ELEMENTWISE_INSTANTIATE(T)                                                            \
  template void convert_from_f32<T>(T*, const float*, size_t, cudaStream_t);                      \
  template void convert_to_f32<T>(float*, const T*, size_t, cudaStream_t);                        \
  template void embed<T>(T*, const int*, const int*, int, const T*, const T*, int, cudaStream_t); \
  template void add_layernorm<T>(T*, const T*, const T*, T*, const T*, const T*, int, int, float, \
                                 cudaStream_t);                                                   \
  template void bias_act<T>(T*, const T*, int, int, bool, cudaStream_t);                          \
  template void add_bias_residual<T>(T*, const T*, const T*, int, int, cudaStream_t);             \
  template void gather_rows<T>(T*, const T*, const int*, int, int, cudaStream_t);

GEN_ELEMENTWISE_INSTANTIATE(float)
GEN_ELEMENTWISE_INSTANTIATE(__half)
GEN_ELEMENTWISE_INSTANTIATE(__nv_bfloat16)
#undef GEN_ELEMENTWISE_INSTANTIATE

}  // namespace gen::cuda
