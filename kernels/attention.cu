// KV-cache write and causal attention over the cache (flash-decoding style), for float, __half and
// __nv_bfloat16 storage with fp32 arithmetic. Cache layout per layer: [slot][H][max_ctx][D].
//
// Attention launch shape: one block of kWarps warps per (row, head, split). A "lane group" of G lanes
// (G = power of two >= D/8 for 16-bit types, D/4 for float, at most 32) owns one key at a time: each
// lane loads 16 bytes of K and V, the group reduces the dot product with xor shuffles. Groups take
// consecutive keys, so a warp reads 32/G whole rows of K (coalesced), and each group keeps its own
// online softmax state (running max, sum, acc) over kUnroll keys per step; warps and then the block
// merge their states at the end (log-sum-exp). Scores are kept in the log2 domain (q is pre-scaled by
// log2(e)/sqrt(D)) so that the exponentials are exp2f.
//
// Split heuristic: when T*H blocks cannot fill the GPU, the host picks up to ws.max_splits splits per
// row (at most one per kMinChunk keys of max_ctx). The kernel derives each row's real chunk from its
// device-side position, so a captured graph stays correct as positions grow; a row whose keys fit in
// one chunk is written out directly by split 0, longer rows leave (max, sum, acc[D]) partials that
// attention_merge_kernel combines.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <string>

#include "cuda/cuda_common.h"
#include "cuda_kernels.h"

namespace gen::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kUnroll = 4;     // keys per lane group per step: the loads of a step are in flight together
constexpr int kMinChunk = 64;  // fewest keys a split is worth
constexpr int kMaxD = 256;
constexpr int kMergeThreads = 64;
constexpr unsigned kFull = 0xffffffffu;

// 16 bytes of Elem as floats.
template <typename Elem>
struct Pack;
template <>
struct Pack<float> {
  static constexpr int n = 4;
  __device__ static void unpack(const uint4& u, float* f) {
    f[0] = __uint_as_float(u.x), f[1] = __uint_as_float(u.y), f[2] = __uint_as_float(u.z),
    f[3] = __uint_as_float(u.w);
  }
  __device__ static uint4 pack(const float* f) {
    return make_uint4(__float_as_uint(f[0]), __float_as_uint(f[1]), __float_as_uint(f[2]),
                      __float_as_uint(f[3]));
  }
  __device__ static float to_elem(float x) { return x; }
};
// 16-bit types: 4 pairs (__half2 or __nv_bfloat162) per 16 bytes.
__device__ float2 to_float2(__half2 h) { return __half22float2(h); }
__device__ float2 to_float2(__nv_bfloat162 h) { return __bfloat1622float2(h); }
__device__ void from_float2(__half2& h, float a, float b) { h = __floats2half2_rn(a, b); }
__device__ void from_float2(__nv_bfloat162& h, float a, float b) { h = __floats2bfloat162_rn(a, b); }
template <typename T2>
struct Pack16 {
  static constexpr int n = 8;
  __device__ static void unpack(const uint4& u, float* f) {
    const T2* h = reinterpret_cast<const T2*>(&u);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 t = to_float2(h[i]);
      f[2 * i] = t.x, f[2 * i + 1] = t.y;
    }
  }
  __device__ static uint4 pack(const float* f) {
    uint4 u;
    T2* h = reinterpret_cast<T2*>(&u);
#pragma unroll
    for (int i = 0; i < 4; ++i) from_float2(h[i], f[2 * i], f[2 * i + 1]);
    return u;
  }
};
template <>
struct Pack<__half> : Pack16<__half2> {
  __device__ static __half to_elem(float x) { return __float2half_rn(x); }
};
template <>
struct Pack<__nv_bfloat16> : Pack16<__nv_bfloat162> {
  __device__ static __nv_bfloat16 to_elem(float x) { return __float2bfloat16_rn(x); }
};

// 16-byte vectors per lane: D/n vectors over G <= 32 lanes (2 for float at D = 256, else 1).
template <typename Elem>
constexpr int kVecsPerLane = (kMaxD / Pack<Elem>::n + 31) / 32;

// ---- kv_write ---------------------------------------------------------------------------------------

// One thread per 16-byte vector; consecutive threads take consecutive vectors of a qkv row, so reads
// are coalesced and each thread's write is one head's D-row segment.
template <typename Elem>
__global__ void kv_write_kernel(CacheLayer<Elem> cache, const Elem* qkv, const int* row_slot,
                                const int* row_pos, int T, int H, int D) {
  const int nv = D / Pack<Elem>::n, C = H * D;
  const size_t per_tensor = size_t(H) * nv, per_row = 2 * per_tensor, total = size_t(T) * per_row;
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += size_t(gridDim.x) * blockDim.x) {
    const int r = int(i / per_row);
    const size_t rem = i % per_row;
    const int kv = int(rem / per_tensor), h = int(rem % per_tensor) / nv, v = int(rem % per_tensor) % nv;
    const int slot = row_slot[r], pos = row_pos[r];
    if (slot < 0 || pos < 0 || pos >= cache.max_ctx) continue;  // never write outside the layer
    const size_t col = size_t(1 + kv) * C + size_t(h) * D + size_t(v) * Pack<Elem>::n;
    const uint4 x = *reinterpret_cast<const uint4*>(qkv + size_t(r) * 3 * C + col);
    Elem* dst = (kv ? cache.v : cache.k) + ((size_t(slot) * H + h) * cache.max_ctx + pos) * D +
                size_t(v) * Pack<Elem>::n;
    *reinterpret_cast<uint4*>(dst) = x;
  }
}

// ---- attention ------------------------------------------------------------------------------------

// How a row's keys are cut: n_used splits of `chunk` keys. An invalid slot or position gives no keys,
// and the row's output becomes NaN (0/0) instead of reading outside the cache.
struct SplitPlan {
  int n_keys, chunk, n_used;
};
__device__ SplitPlan plan_splits(int slot, int pos, int max_ctx, int n_splits) {
  SplitPlan p;
  p.n_keys = (slot >= 0 && pos >= 0 && pos < max_ctx) ? pos + 1 : 0;
  p.chunk = max(kMinChunk, (p.n_keys + n_splits - 1) / n_splits);
  p.n_used = max(1, (p.n_keys + p.chunk - 1) / p.chunk);
  return p;
}

// Online softmax state over some keys (scores in log2 units): max m, sum l, acc = sum p * v.
template <int VPL, int NE>
struct SoftmaxState {
  float m = -INFINITY, l = 0.0f, acc[VPL][NE] = {};
  // Scales this state and `o` to a common max and adds them (both may be empty: m = -inf).
  __device__ void merge(float om, float ol, const float (&oacc)[VPL][NE]) {
    const float mn = fmaxf(m, om), mu = mn == -INFINITY ? 0.0f : mn;
    const float a = exp2f(m - mu), b = exp2f(om - mu);
    l = l * a + ol * b;
#pragma unroll
    for (int i = 0; i < VPL; ++i)
#pragma unroll
      for (int e = 0; e < NE; ++e) acc[i][e] = acc[i][e] * a + oacc[i][e] * b;
    m = mn;
  }
};

// One step of a lane group: kUnroll keys base + u*n_groups + grp (u < kUnroll) that are below k1.
// All lanes of the warp run it (the shuffles need them); keys past k1 load nothing and score -inf.
template <typename Elem, int VPL>
__device__ void attend_step(SoftmaxState<VPL, Pack<Elem>::n>& st, const float (&q)[VPL][Pack<Elem>::n],
                            const Elem* K, const Elem* V, int base, int k1, int grp, int n_groups, int gl,
                            int G, int nv, int D) {
  constexpr int NE = Pack<Elem>::n;
  uint4 kr[kUnroll][VPL], vr[kUnroll][VPL];
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    const int j = base + u * n_groups + grp;
#pragma unroll
    for (int i = 0; i < VPL; ++i) {
      const int v = gl + i * G;
      const bool ok = j < k1 && v < nv;
      const size_t off = size_t(j) * D + size_t(v) * NE;
      kr[u][i] = ok ? __ldg(reinterpret_cast<const uint4*>(K + off)) : make_uint4(0, 0, 0, 0);
      vr[u][i] = ok ? __ldg(reinterpret_cast<const uint4*>(V + off)) : make_uint4(0, 0, 0, 0);
    }
  }
  float s[kUnroll];
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    s[u] = 0.0f;
#pragma unroll
    for (int i = 0; i < VPL; ++i) {
      float k[NE];
      Pack<Elem>::unpack(kr[u][i], k);
#pragma unroll
      for (int e = 0; e < NE; ++e) s[u] = fmaf(q[i][e], k[e], s[u]);
    }
  }
  for (int off = G / 2; off > 0; off >>= 1)
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) s[u] += __shfl_xor_sync(kFull, s[u], off);
  float mt = -INFINITY;
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    if (base + u * n_groups + grp >= k1) s[u] = -INFINITY;
    mt = fmaxf(mt, s[u]);
  }
  const float mn = fmaxf(st.m, mt), mu = mn == -INFINITY ? 0.0f : mn;
  const float corr = exp2f(st.m - mu);
  st.l *= corr;
#pragma unroll
  for (int i = 0; i < VPL; ++i)
#pragma unroll
    for (int e = 0; e < NE; ++e) st.acc[i][e] *= corr;
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    const float p = exp2f(s[u] - mu);
    st.l += p;
#pragma unroll
    for (int i = 0; i < VPL; ++i) {
      float v[NE];
      Pack<Elem>::unpack(vr[u][i], v);
#pragma unroll
      for (int e = 0; e < NE; ++e) st.acc[i][e] = fmaf(p, v[e], st.acc[i][e]);
    }
  }
  st.m = mn;
}

// grid (T, H, splits), block kThreads. G = lanes per key (power of two, G * 16 bytes >= a D-row).
// Writes out[r, h*D ..] when the row needs one split, else partial[r][h][split] = (m, l, acc[D]).
template <typename Elem>
__global__ void __launch_bounds__(kThreads)
    attention_kernel(Elem* out, const Elem* qkv, CacheLayer<Elem> cache, const int* row_slot,
                     const int* row_pos, int H, int D, int G, float q_scale, float* partial, int max_splits) {
  constexpr int NE = Pack<Elem>::n, VPL = kVecsPerLane<Elem>;
  __shared__ float s_m[kWarps], s_l[kWarps], s_acc[kWarps][kMaxD];
  const int r = blockIdx.x, h = blockIdx.y, split = blockIdx.z, C = H * D, nv = D / NE;
  const int slot = row_slot[r];
  const SplitPlan plan = plan_splits(slot, row_pos[r], cache.max_ctx, gridDim.z);
  if (split >= plan.n_used) return;  // uniform over the block
  const int k0 = split * plan.chunk, k1 = min(plan.n_keys, k0 + plan.chunk);

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gl = lane % G;
  const int n_groups = kWarps * (32 / G), grp = warp * (32 / G) + lane / G;
  float q[VPL][NE];
#pragma unroll
  for (int i = 0; i < VPL; ++i) {
    const int v = gl + i * G;
    uint4 raw = make_uint4(0, 0, 0, 0);
    if (v < nv)
      raw = __ldg(reinterpret_cast<const uint4*>(qkv + size_t(r) * 3 * C + size_t(h) * D + size_t(v) * NE));
    Pack<Elem>::unpack(raw, q[i]);
#pragma unroll
    for (int e = 0; e < NE; ++e) q[i][e] *= q_scale;
  }
  const size_t head = (size_t(max(slot, 0)) * H + h) * cache.max_ctx * D;
  SoftmaxState<VPL, NE> st;
  for (int base = k0; base < k1; base += n_groups * kUnroll)  // same trip count for the whole block
    attend_step<Elem, VPL>(st, q, cache.k + head, cache.v + head, base, k1, grp, n_groups, gl, G, nv, D);

  for (int off = G; off < 32; off <<= 1) {  // lane groups of a warp: same lane position, other keys
    float om = __shfl_xor_sync(kFull, st.m, off), ol = __shfl_xor_sync(kFull, st.l, off), oacc[VPL][NE];
#pragma unroll
    for (int i = 0; i < VPL; ++i)
#pragma unroll
      for (int e = 0; e < NE; ++e) oacc[i][e] = __shfl_xor_sync(kFull, st.acc[i][e], off);
    st.merge(om, ol, oacc);
  }
  if (lane < G) {
    if (lane == 0) s_m[warp] = st.m, s_l[warp] = st.l;
#pragma unroll
    for (int i = 0; i < VPL; ++i) {
      const int v = lane + i * G;
      if (v < nv)
#pragma unroll
        for (int e = 0; e < NE; ++e) s_acc[warp][v * NE + e] = st.acc[i][e];
    }
  }
  __syncthreads();

  // Block combine: thread v owns the v-th 16-byte vector of the head's output (nv <= 64 < kThreads).
  const int v = threadIdx.x;
  if (v >= nv) return;
  float m = -INFINITY, l = 0.0f, w[kWarps], a[NE] = {};
#pragma unroll
  for (int x = 0; x < kWarps; ++x) m = fmaxf(m, s_m[x]);
  const float mu = m == -INFINITY ? 0.0f : m;
#pragma unroll
  for (int x = 0; x < kWarps; ++x) w[x] = exp2f(s_m[x] - mu), l += s_l[x] * w[x];
#pragma unroll
  for (int x = 0; x < kWarps; ++x)
#pragma unroll
    for (int e = 0; e < NE; ++e) a[e] += s_acc[x][v * NE + e] * w[x];
  if (plan.n_used == 1) {
#pragma unroll
    for (int e = 0; e < NE; ++e) a[e] /= l;  // l == 0 only for an invalid row: NaN on purpose
    *reinterpret_cast<uint4*>(out + size_t(r) * C + size_t(h) * D + size_t(v) * NE) = Pack<Elem>::pack(a);
    return;
  }
  float* p = partial + ((size_t(r) * H + h) * max_splits + split) * (D + 2);
  if (v == 0) p[0] = m, p[1] = l;
#pragma unroll
  for (int e = 0; e < NE; ++e) p[2 + v * NE + e] = a[e];
}

// grid (T, H), block kMergeThreads: out[r, h] = sum_s acc_s * 2^(m_s - M) / sum_s l_s * 2^(m_s - M).
template <typename Elem>
__global__ void __launch_bounds__(kMergeThreads)
    attention_merge_kernel(Elem* out, const int* row_slot, const int* row_pos, int H, int D, int max_ctx,
                           int n_splits, const float* partial, int max_splits) {
  __shared__ float s_w[kMaxSplits];
  __shared__ float s_inv_l;
  const int r = blockIdx.x, h = blockIdx.y, stride = D + 2;
  const SplitPlan plan = plan_splits(row_slot[r], row_pos[r], max_ctx, n_splits);
  if (plan.n_used <= 1) return;  // split 0 wrote this row directly
  const float* p = partial + (size_t(r) * H + h) * max_splits * stride;
  if (threadIdx.x < 32) {  // warp 0: the weights of the splits
    float m = -INFINITY, l = 0.0f;
    for (int s = threadIdx.x; s < plan.n_used; s += 32) m = fmaxf(m, p[size_t(s) * stride]);
    for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(kFull, m, off));
    const float mu = m == -INFINITY ? 0.0f : m;
    for (int s = threadIdx.x; s < plan.n_used; s += 32) {
      const float w = exp2f(p[size_t(s) * stride] - mu);
      s_w[s] = w;
      l += p[size_t(s) * stride + 1] * w;
    }
    for (int off = 16; off > 0; off >>= 1) l += __shfl_xor_sync(kFull, l, off);
    if (threadIdx.x == 0) s_inv_l = 1.0f / l;
  }
  __syncthreads();
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float a = 0.0f;
    for (int s = 0; s < plan.n_used; ++s) a += p[size_t(s) * stride + 2 + d] * s_w[s];
    out[size_t(r) * H * D + size_t(h) * D + d] = Pack<Elem>::to_elem(a * s_inv_l);
  }
}

// ---- host side ------------------------------------------------------------------------------------

int sm_count() {  // per device, asked once: the launchers stay free of blocking calls
  static std::atomic<int> cached[64];
  int dev = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  if (dev < 0 || dev >= 64) dev = 0;
  int n = cached[dev].load(std::memory_order_relaxed);
  if (n == 0) {
    CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
    cached[dev].store(n, std::memory_order_relaxed);
  }
  return n;
}

[[noreturn]] void fail(const char* op, const std::string& what) {
  throw Error(std::string("cuda::") + op + ": " + what);
}
bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Strings are built only on failure: the launchers run every decode step.
template <typename Elem>
void check_args(const char* op, const Elem* qkv, const CacheLayer<Elem>& cache, const int* row_slot,
                const int* row_pos, int T, int H, int D) {
  if (T < 0) fail(op, "T must be >= 0, got " + std::to_string(T));
  if (H < 1 || H > 65535) fail(op, "H must be in [1, 65535], got " + std::to_string(H));
  if (D < 8 || D > kMaxD || D % 8 != 0)
    fail(op, "D must be a multiple of 8 in [8, 256], got " + std::to_string(D));
  if (cache.max_ctx < 1) fail(op, "cache max_ctx must be >= 1, got " + std::to_string(cache.max_ctx));
  if (T > 0 && (!qkv || !cache.k || !cache.v || !row_slot || !row_pos)) fail(op, "null pointer argument");
  if (!aligned16(qkv) || !aligned16(cache.k) || !aligned16(cache.v))
    fail(op, "pointers must be 16-byte aligned");
}

// Splits per row: enough blocks for ~4 per SM, at most max_splits and one per kMinChunk keys.
int choose_splits(int T, int H, int max_ctx, const AttentionWorkspace& ws) {
  if (!ws.partial || ws.max_splits <= 1) return 1;
  const long long blocks = static_cast<long long>(T) * H, target = 4LL * sm_count();
  if (blocks >= target) return 1;
  const long long want = (target + blocks - 1) / blocks;
  const int by_ctx = (max_ctx + kMinChunk - 1) / kMinChunk;
  return static_cast<int>(std::min<long long>({want, ws.max_splits, by_ctx, kMaxSplits}));
}

}  // namespace

template <typename Elem>
void kv_write(CacheLayer<Elem> cache, const Elem* qkv, const int* row_slot, const int* row_pos, int T, int H,
              int D, cudaStream_t stream) {
  check_args("kv_write", qkv, cache, row_slot, row_pos, T, H, D);
  if (T == 0) return;
  const size_t total = size_t(T) * 2 * H * (D / Pack<Elem>::n);
  const int threads = 256;
  const unsigned blocks = static_cast<unsigned>(std::min<size_t>((total + threads - 1) / threads, 1u << 20));
  kv_write_kernel<Elem><<<blocks, threads, 0, stream>>>(cache, qkv, row_slot, row_pos, T, H, D);
  CUDA_CHECK_LAUNCH("kv_write_kernel", stream);
}

size_t attention_workspace_floats(int T, int H, int D, int max_splits) {
  if (T <= 0 || H <= 0 || D <= 0 || max_splits <= 0) return 0;
  return size_t(T) * H * max_splits * (D + 2);
}

template <typename Elem>
void attention(Elem* out, const Elem* qkv, CacheLayer<Elem> cache, const int* row_slot, const int* row_pos,
               int T, int H, int D, AttentionWorkspace ws, cudaStream_t stream) {
  check_args("attention", qkv, cache, row_slot, row_pos, T, H, D);
  if (T > 0 && !out) fail("attention", "null out pointer");
  if (!aligned16(out)) fail("attention", "out must be 16-byte aligned");
  if (T == 0) return;
  const int splits = choose_splits(T, H, cache.max_ctx, ws);
  const int nv = D / Pack<Elem>::n;
  int G = 1;
  while (G < nv && G < 32) G *= 2;
  const float q_scale = 1.4426950408889634f / std::sqrt(static_cast<float>(D));  // log2(e) / sqrt(D)
  const dim3 grid(static_cast<unsigned>(T), static_cast<unsigned>(H), static_cast<unsigned>(splits));
  attention_kernel<Elem><<<grid, kThreads, 0, stream>>>(out, qkv, cache, row_slot, row_pos, H, D, G, q_scale,
                                                     ws.partial, ws.max_splits);
  CUDA_CHECK_LAUNCH("attention_kernel", stream);
  if (splits == 1) return;
  const dim3 merge_grid(static_cast<unsigned>(T), static_cast<unsigned>(H));
  attention_merge_kernel<Elem><<<merge_grid, kMergeThreads, 0, stream>>>(
      out, row_slot, row_pos, H, D, cache.max_ctx, splits, ws.partial, ws.max_splits);
  CUDA_CHECK_LAUNCH("attention_merge_kernel", stream);
}

#define GEN_INSTANTIATE(Elem)                                                                              \
  template void kv_write<Elem>(CacheLayer<Elem>, const Elem*, const int*, const int*, int, int, int,      \
                               cudaStream_t);                                                             \
  template void attention<Elem>(Elem*, const Elem*, CacheLayer<Elem>, const int*, const int*, int, int, int, \
                                AttentionWorkspace, cudaStream_t);
GEN_INSTANTIATE(float)
GEN_INSTANTIATE(__half)
GEN_INSTANTIATE(__nv_bfloat16)
#undef GEN_INSTANTIATE

}  // namespace gen::cuda
