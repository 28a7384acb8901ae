// The memory-bound kernels around the GEMMs and attention: dtype conversion, embedding, residual add +
// layernorm, bias + gelu_new, residual add, row gather. Arithmetic is fp32 whatever Elem is; Elem is
// rounded once, on store.
//
// Vectorization: a Pack of P elements moves 16 bytes (P = 4 floats or 8 halves) in one load/store. A
// launcher takes the packed path when every pointer is 16-byte aligned and rows are a whole number of
// packs (C % kVec == 0, true for every GPT-2 size); otherwise the same kernel runs with P = 1.
// T = rows, as in cuda_kernels.h.
// No launcher allocates or synchronizes, so all can be captured in a CUDA graph; T == 0 launches nothing.
#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "cuda/cuda_common.h"
#include "cuda_kernels.h"

namespace gen::cuda {

namespace {

template <typename Elem>
constexpr int kVec = 16 / int(sizeof(Elem));
constexpr int kThreads = 256;
constexpr size_t kMaxBlocks = 8192;  // grid-stride loops cover the rest
constexpr int kLnThreads = 128;      // add_layernorm: one block per row
// Its fp32 row copy (dynamic) plus red[] (static, 144 bytes as ptxas pads it): past 12224 floats that is
// over the 48 KB a block gets by default, and the launcher opts in (allow_dynamic_smem). 16384 (65 KB)
// fits every GPU since Volta (96 KB or more with the opt-in) and is 10x gpt2-xl's 1600.
constexpr int kLnMaxC = 16384;

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename Elem>
__device__ __forceinline__ Elem from_f32(float v);
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

template <typename Elem, int P>
struct alignas(sizeof(Elem) * P) Pack {
  Elem v[P];
};

template <typename Elem, int P>
__device__ __forceinline__ void load(float (&f)[P], const Elem* p) {
  const Pack<Elem, P> pk = *reinterpret_cast<const Pack<Elem, P>*>(p);
#pragma unroll
  for (int j = 0; j < P; ++j) f[j] = to_f32(pk.v[j]);
}

// A null pointer reads as zeros (the optional biases).
template <typename Elem, int P>
__device__ __forceinline__ void load_or_zero(float (&f)[P], const Elem* p) {
  if (p) {
    load<Elem, P>(f, p);
  } else {
#pragma unroll
    for (int j = 0; j < P; ++j) f[j] = 0.0f;
  }
}

template <typename Elem, int P>
__device__ __forceinline__ void store(Elem* p, const float (&f)[P]) {
  Pack<Elem, P> pk;
#pragma unroll
  for (int j = 0; j < P; ++j) pk.v[j] = from_f32<Elem>(f[j]);
  *reinterpret_cast<Pack<Elem, P>*>(p) = pk;
}

__device__ __forceinline__ size_t thread_index() { return size_t(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ __forceinline__ size_t thread_stride() { return size_t(gridDim.x) * blockDim.x; }

__device__ __forceinline__ float gelu_new(float x) {
  const float k = 0.7978845608028654f;  // sqrt(2 / pi)
  return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}

// ---- kernels ------------------------------------------------------------------------------------------

// dst[i] = src[i] for the packs of P, then the n % P tail one by one.
template <typename Dst, typename Src, int P>
__global__ void convert_kernel(Dst* dst, const Src* src, size_t n) {
  const size_t packs = n / P;
  for (size_t v = thread_index(); v < packs; v += thread_stride()) {
    float f[P];
    load<Src, P>(f, src + v * P);
    store<Dst, P>(dst + v * P, f);
  }
  for (size_t i = packs * P + thread_index(); i < n; i += thread_stride())
    dst[i] = from_f32<Dst>(to_f32(src[i]));
}

// Row-wise kernels iterate over packs of a [T, C] tensor: pack v is row v / (C / P), column
// (v % (C / P)) * P.
template <typename Elem, int P>
__global__ void embed_kernel(Elem* out, const int* tokens, const int* positions, int T, const Elem* wte,
                             const Elem* wpe, int C) {
  const int per_row = C / P;
  const size_t packs = size_t(T) * per_row;
  for (size_t v = thread_index(); v < packs; v += thread_stride()) {
    const int r = int(v / per_row), c = int(v % per_row) * P;
    float a[P], b[P];
    load<Elem, P>(a, wte + size_t(tokens[r]) * C + c);
    load<Elem, P>(b, wpe + size_t(positions[r]) * C + c);
#pragma unroll
    for (int j = 0; j < P; ++j) a[j] += b[j];
    store<Elem, P>(out + size_t(r) * C + c, a);
  }
}

template <typename Elem, int P>
__global__ void bias_act_kernel(Elem* x, const Elem* bias, int T, int C, bool gelu) {
  const int per_row = C / P;
  const size_t packs = size_t(T) * per_row;
  for (size_t v = thread_index(); v < packs; v += thread_stride()) {
    const int c = int(v % per_row) * P;
    float a[P], b[P];
    load<Elem, P>(a, x + v * P);
    load_or_zero<Elem, P>(b, bias ? bias + c : nullptr);
#pragma unroll
    for (int j = 0; j < P; ++j) a[j] = gelu ? gelu_new(a[j] + b[j]) : a[j] + b[j];
    store<Elem, P>(x + v * P, a);
  }
}

// x + (y + bias): y + bias is what the unfused projection would have stored.
template <typename Elem, int P>
__global__ void add_bias_residual_kernel(Elem* x, const Elem* y, const Elem* bias, int T, int C) {
  const int per_row = C / P;
  const size_t packs = size_t(T) * per_row;
  for (size_t v = thread_index(); v < packs; v += thread_stride()) {
    const int c = int(v % per_row) * P;
    float a[P], b[P], d[P];
    load<Elem, P>(a, x + v * P);
    load<Elem, P>(d, y + v * P);
    load_or_zero<Elem, P>(b, bias ? bias + c : nullptr);
#pragma unroll
    for (int j = 0; j < P; ++j) a[j] += d[j] + b[j];
    store<Elem, P>(x + v * P, a);
  }
}

template <typename Elem, int P>
__global__ void gather_rows_kernel(Elem* out, const Elem* x, const int* rows, int B, int C) {
  const int per_row = C / P;
  const size_t packs = size_t(B) * per_row;
  for (size_t v = thread_index(); v < packs; v += thread_stride()) {
    const int r = int(v / per_row), c = int(v % per_row) * P;
    float a[P];
    load<Elem, P>(a, x + size_t(rows[r]) * C + c);
    store<Elem, P>(out + size_t(r) * C + c, a);
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

// One block per row. The row (after the residual add, rounded to Elem as stored) is kept in shared memory
// in fp32 for the two statistics passes. Statistics are taken about shift = the row's first element:
// for a row with a large mean, sum(x - shift) keeps the digits that sum(x) would round away.
template <typename Elem, int P>
__global__ void __launch_bounds__(kLnThreads)
    add_layernorm_kernel(Elem* x, const Elem* y, const Elem* bias, Elem* out, const Elem* w, const Elem* b,
                         int C, float eps) {
  extern __shared__ float row[];  // [C]
  __shared__ float red[33];
  const size_t base = size_t(blockIdx.x) * C;
  for (int c = threadIdx.x * P; c < C; c += kLnThreads * P) {
    float a[P];
    load<Elem, P>(a, x + base + c);
    if (y) {
      float d[P], bb[P];
      load<Elem, P>(d, y + base + c);
      load_or_zero<Elem, P>(bb, bias ? bias + c : nullptr);
#pragma unroll
      for (int j = 0; j < P; ++j) a[j] = to_f32(from_f32<Elem>(a[j] + (d[j] + bb[j])));  // as stored
      store<Elem, P>(x + base + c, a);
    }
#pragma unroll
    for (int j = 0; j < P; ++j) row[c + j] = a[j];
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
  for (int c = threadIdx.x * P; c < C; c += kLnThreads * P) {
    float ww[P], bb[P], o[P];
    load<Elem, P>(ww, w + c);
    load<Elem, P>(bb, b + c);
#pragma unroll
    for (int j = 0; j < P; ++j) o[j] = ((row[c + j] - shift) - mean_d) * rstd * ww[j] + bb[j];
    store<Elem, P>(out + base + c, o);
  }
}

// ---- launch helpers -------------------------------------------------------------------------------------

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }  // null is aligned
template <typename... P>
bool all_aligned16(const P*... p) {
  return (aligned16(p) && ...);
}

unsigned blocks_for(size_t work) { return unsigned(std::min((work + kThreads - 1) / kThreads, kMaxBlocks)); }

// A launch of `kernel` with `bytes` of dynamic shared memory past what the kernel may use by default
// (48 KB less its static shared memory) needs the kernel's opt-in; once set, the attribute stays. A size
// past the device's opt-in limit is an Error naming the kernel, not a launch's "invalid argument".
void allow_dynamic_smem(const void* kernel, size_t bytes, const char* name) {
  static std::mutex mutex;
  static std::map<const void*, size_t> allowed;  // kernel -> dynamic bytes known to launch
  std::lock_guard<std::mutex> lock(mutex);
  size_t& ok = allowed[kernel];
  if (bytes <= ok) return;
  cudaFuncAttributes a{};
  CUDA_CHECK(cudaFuncGetAttributes(&a, kernel));
  if (bytes > size_t(a.maxDynamicSharedSizeBytes)) {
    int device = 0, optin = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    if (bytes + a.sharedSizeBytes > size_t(optin)) {
      throw Error(std::string(name) + ": " + std::to_string(bytes + a.sharedSizeBytes) +
                  " bytes of shared memory per block, the device allows " + std::to_string(optin));
    }
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
  }
  ok = bytes;
}

}  // namespace

// ---- launchers --------------------------------------------------------------------------------------------

template <typename Elem>
void convert_from_f32(Elem* dst, const float* src, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  if (all_aligned16(dst, src)) {  // packs of 4: 16 bytes of floats
    convert_kernel<Elem, float, 4><<<blocks_for(n / 4 + 1), kThreads, 0, stream>>>(dst, src, n);
  } else {
    convert_kernel<Elem, float, 1><<<blocks_for(n), kThreads, 0, stream>>>(dst, src, n);
  }
  CUDA_CHECK_LAUNCH("convert_from_f32", stream);
}

template <typename Elem>
void convert_to_f32(float* dst, const Elem* src, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  if (all_aligned16(dst, src)) {
    convert_kernel<float, Elem, 4><<<blocks_for(n / 4 + 1), kThreads, 0, stream>>>(dst, src, n);
  } else {
    convert_kernel<float, Elem, 1><<<blocks_for(n), kThreads, 0, stream>>>(dst, src, n);
  }
  CUDA_CHECK_LAUNCH("convert_to_f32", stream);
}

template <typename Elem>
void embed(Elem* out, const int* tokens, const int* positions, int T, const Elem* wte, const Elem* wpe, int C,
           cudaStream_t stream) {
  if (T <= 0 || C <= 0) return;
  constexpr int P = kVec<Elem>;
  if (C % P == 0 && all_aligned16(out, wte, wpe)) {
    embed_kernel<Elem, P>
        <<<blocks_for(size_t(T) * C / P), kThreads, 0, stream>>>(out, tokens, positions, T, wte, wpe, C);
  } else {
    embed_kernel<Elem, 1>
        <<<blocks_for(size_t(T) * C), kThreads, 0, stream>>>(out, tokens, positions, T, wte, wpe, C);
  }
  CUDA_CHECK_LAUNCH("embed", stream);
}

template <typename Elem>
void add_layernorm(Elem* x, const Elem* y, const Elem* bias, Elem* out, const Elem* w, const Elem* b, int T,
                   int C, float eps, cudaStream_t stream) {
  if (T <= 0 || C <= 0) return;
  if (C > kLnMaxC) {
    throw Error("cuda::add_layernorm: n_embd " + std::to_string(C) + " is over " + std::to_string(kLnMaxC));
  }
  const size_t smem = size_t(C) * sizeof(float);
  constexpr int P = kVec<Elem>;
  if (C % P == 0 && all_aligned16(x, y, bias, out, w, b)) {
    allow_dynamic_smem(reinterpret_cast<const void*>(&add_layernorm_kernel<Elem, P>), smem, "add_layernorm");
    add_layernorm_kernel<Elem, P><<<T, kLnThreads, smem, stream>>>(x, y, bias, out, w, b, C, eps);
  } else {
    allow_dynamic_smem(reinterpret_cast<const void*>(&add_layernorm_kernel<Elem, 1>), smem, "add_layernorm");
    add_layernorm_kernel<Elem, 1><<<T, kLnThreads, smem, stream>>>(x, y, bias, out, w, b, C, eps);
  }
  CUDA_CHECK_LAUNCH("add_layernorm", stream);
}

template <typename Elem>
void bias_act(Elem* x, const Elem* bias, int T, int cols, bool gelu, cudaStream_t stream) {
  if (T <= 0 || cols <= 0) return;
  constexpr int P = kVec<Elem>;
  if (cols % P == 0 && all_aligned16(x, bias)) {
    bias_act_kernel<Elem, P>
        <<<blocks_for(size_t(T) * cols / P), kThreads, 0, stream>>>(x, bias, T, cols, gelu);
  } else {
    bias_act_kernel<Elem, 1><<<blocks_for(size_t(T) * cols), kThreads, 0, stream>>>(x, bias, T, cols, gelu);
  }
  CUDA_CHECK_LAUNCH("bias_act", stream);
}

template <typename Elem>
void add_bias_residual(Elem* x, const Elem* y, const Elem* bias, int T, int C, cudaStream_t stream) {
  if (T <= 0 || C <= 0) return;
  constexpr int P = kVec<Elem>;
  if (C % P == 0 && all_aligned16(x, y, bias)) {
    add_bias_residual_kernel<Elem, P>
        <<<blocks_for(size_t(T) * C / P), kThreads, 0, stream>>>(x, y, bias, T, C);
  } else {
    add_bias_residual_kernel<Elem, 1><<<blocks_for(size_t(T) * C), kThreads, 0, stream>>>(x, y, bias, T, C);
  }
  CUDA_CHECK_LAUNCH("add_bias_residual", stream);
}

template <typename Elem>
void gather_rows(Elem* out, const Elem* x, const int* rows, int B, int C, cudaStream_t stream) {
  if (B <= 0 || C <= 0) return;
  constexpr int P = kVec<Elem>;
  if (C % P == 0 && all_aligned16(out, x)) {
    gather_rows_kernel<Elem, P><<<blocks_for(size_t(B) * C / P), kThreads, 0, stream>>>(out, x, rows, B, C);
  } else {
    gather_rows_kernel<Elem, 1><<<blocks_for(size_t(B) * C), kThreads, 0, stream>>>(out, x, rows, B, C);
  }
  CUDA_CHECK_LAUNCH("gather_rows", stream);
}

// Explicit instantiations for the three storage dtypes.
#define GEN_ELEMENTWISE_INSTANTIATE(Elem)                                                                  \
  template void convert_from_f32<Elem>(Elem*, const float*, size_t, cudaStream_t);                         \
  template void convert_to_f32<Elem>(float*, const Elem*, size_t, cudaStream_t);                           \
  template void embed<Elem>(Elem*, const int*, const int*, int, const Elem*, const Elem*, int,             \
                            cudaStream_t);                                                                 \
  template void add_layernorm<Elem>(Elem*, const Elem*, const Elem*, Elem*, const Elem*, const Elem*, int, \
                                    int, float, cudaStream_t);                                             \
  template void bias_act<Elem>(Elem*, const Elem*, int, int, bool, cudaStream_t);                          \
  template void add_bias_residual<Elem>(Elem*, const Elem*, const Elem*, int, int, cudaStream_t);          \
  template void gather_rows<Elem>(Elem*, const Elem*, const int*, int, int, cudaStream_t);

GEN_ELEMENTWISE_INSTANTIATE(float)
GEN_ELEMENTWISE_INSTANTIATE(__half)
GEN_ELEMENTWISE_INSTANTIATE(__nv_bfloat16)
#undef GEN_ELEMENTWISE_INSTANTIATE

}  // namespace gen::cuda
