// One token per sequence, on the GPU, with the algorithm of engine/sample_rng.h (the twin of gen::sample).
//
// Launch shape: one block of kBlock threads per sequence; thread t handles ids t, t + kBlock, ... and
// re-reads its logits on every pass (a 50257-entry row is 200 KB, resident in L2). Passes:
//   1. argmax of z: zmax (and the greedy token);
//   2. top-k: the k-th largest z, searched on order_key(z): each pass counts the tokens at or above
//      kSplits keys spread over the open range (a 16-way bisection, ~8 passes over 32-bit keys);
//   3. top-p: the same search on the mass sum(exp(z - zmax)) instead of the count;
//   4. the Gumbel-max draw over the kept tokens: one argmax.
// Every sum is a fixed-order block reduction, so a row gives the same token on every run. No allocation,
// no host synchronization: the launcher can be captured in a CUDA graph.
#include <climits>
#include <string>

#include "cuda/cuda_common.h"
#include "cuda_kernels.h"
#include "engine/sample_rng.h"

namespace gen::cuda {

namespace {

using namespace gen::sampling;

constexpr int kBlock = 512;
constexpr int kWarps = kBlock / 32;
constexpr int kSplits = 15;          // keys tested per search pass: the range shrinks 16-fold
constexpr float kGumbelMax = 17.0f;  // above any gumbel(): lets a thread skip tokens that cannot win
constexpr unsigned kFull = 0xffffffffu;

struct Shared {
  float part[kWarps][kSplits];  // per-warp partial sums
  float total[kSplits];         // the block's sums, read by every thread
  float best_s[kWarps];
  int best_i[kWarps];
};

// One sequence's logits and its temperature.
struct Row {
  const float* logits;
  int V;
  float T;
  __device__ float z(int i) const { return scaled_logit(logits[i], T); }
};

// The best (value, id) of the block, returned to every thread. `better` is a total order (values are
// never NaN), so the result does not depend on the reduction's shape.
__device__ void block_best(float& s, int& id, Shared& sh) {
  for (int off = 16; off > 0; off >>= 1) {
    const float os = __shfl_xor_sync(kFull, s, off);
    const int oi = __shfl_xor_sync(kFull, id, off);
    if (better(os, oi, s, id)) s = os, id = oi;
  }
  const int warp = threadIdx.x / 32;
  if (threadIdx.x % 32 == 0) sh.best_s[warp] = s, sh.best_i[warp] = id;
  __syncthreads();
  s = sh.best_s[0], id = sh.best_i[0];
  for (int w = 1; w < kWarps; ++w) {
    if (better(sh.best_s[w], sh.best_i[w], s, id)) s = sh.best_s[w], id = sh.best_i[w];
  }
  __syncthreads();  // best_s/best_i are rewritten by the next call
}

// Sums acc[m] over the block into sh.total[m] (visible to every thread on return), in a fixed order.
// The barrier pair also orders this call's reads of sh.total before the next call's writes.
__device__ void block_sum(float (&acc)[kSplits], Shared& sh) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
  for (int m = 0; m < kSplits; ++m) {
    float v = acc[m];
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(kFull, v, off);
    if (lane == 0) sh.part[warp][m] = v;
  }
  __syncthreads();
  if (threadIdx.x < kSplits) {
    float s = 0.0f;
    for (int w = 0; w < kWarps; ++w) s += sh.part[w][threadIdx.x];
    sh.total[threadIdx.x] = s;
  }
  __syncthreads();
}

// f(t[m]) for ascending keys t: the number (mass = false) or the mass exp(z - zmax) (mass = true) of
// the tokens with order_key(z) >= t[m], into sh.total. Counts are exact in fp32 (V < 2^24).
__device__ void evaluate(const Row& row, bool mass, float zmax, const uint32_t (&t)[kSplits], Shared& sh) {
  float acc[kSplits];
#pragma unroll
  for (int m = 0; m < kSplits; ++m) acc[m] = 0.0f;
  for (int i = threadIdx.x; i < row.V; i += kBlock) {
    const float z = row.z(i);
    const uint32_t k = order_key(z);
    if (k < t[0]) continue;  // below every key tested: most tokens after the first pass
    const float w = mass ? mass_weight(z, zmax) : 1.0f;
#pragma unroll
    for (int m = 0; m < kSplits; ++m) acc[m] += k >= t[m] ? w : 0.0f;
  }
  block_sum(acc, sh);
}

// The largest key K in [lo, hi] with f(K) >= target, where f (see evaluate) is non-increasing and
// f(lo) >= target is given. The answer is always some token's key (f only steps there), so "keep
// order_key(z) >= K" is "keep z >= that token's z". Every thread runs the same iterations: lo and hi
// come from sh.total, which all threads read alike.
__device__ uint32_t search(const Row& row, bool mass, float zmax, float target, uint32_t lo, uint32_t hi,
                           Shared& sh) {
  while (lo < hi) {
    // Key m: ceil(range * (m + 1) / 16) past lo; ascending, in (lo, hi].
    const uint64_t range = hi - lo;
    auto key = [&](int m) { return lo + uint32_t((range * (m + 1) + kSplits) / (kSplits + 1)); };
    uint32_t t[kSplits];
#pragma unroll
    for (int m = 0; m < kSplits; ++m) t[m] = key(m);
    evaluate(row, mass, zmax, t, sh);
    int m = -1;  // the last key that still reaches the target (feasibility is a prefix: f is monotone)
    while (m + 1 < kSplits && sh.total[m + 1] >= target) ++m;
    const uint32_t new_lo = m < 0 ? lo : key(m);
    hi = m + 1 < kSplits ? max(new_lo, key(m + 1) - 1) : hi;
    lo = new_lo;
  }
  return lo;
}

// Step 5: Gumbel-max over the tokens with order_key(z) >= lo.
__device__ int draw(const Row& row, uint32_t lo, uint64_t seed, int step, Shared& sh) {
  const uint64_t key = stream_key(seed, step);
  float s = -INFINITY;
  int id = INT_MAX;
  for (int i = threadIdx.x; i < row.V; i += kBlock) {
    const float z = row.z(i);
    if (order_key(z) < lo || perturbed(z, kGumbelMax) < s) continue;
    const float v = perturbed(z, gumbel(key, uint32_t(i)));
    if (better(v, i, s, id)) s = v, id = i;
  }
  block_best(s, id, sh);
  return id;
}

__global__ void __launch_bounds__(kBlock)
    sample_kernel(int* out, const float* logits, const SampleParams* params, int V, int ld, bool check_finite) {
  __shared__ Shared sh;
  const SampleParams p = params[blockIdx.x];
  const bool greedy = !(p.temperature > 0.0f);
  const Row row{logits + size_t(blockIdx.x) * ld, V, greedy ? 1.0f : p.temperature};

  float zmax = -INFINITY;
  int top = INT_MAX;
  uint32_t worst = 0;  // the largest |logit|'s bits: Inf and NaN sort above every finite value
  for (int i = threadIdx.x; i < V; i += kBlock) {
    const float l = row.logits[i];
    worst = max(worst, __float_as_uint(l) & 0x7fffffffu);
    const float z = scaled_logit(l, row.T);
    if (better(z, i, zmax, top)) zmax = z, top = i;
  }
  if (check_finite && __syncthreads_or(worst >= 0x7f800000u)) {  // uniform: every thread returns
    if (threadIdx.x == 0) out[blockIdx.x] = -1;
    return;
  }
  block_best(zmax, top, sh);
  if (greedy) {  // uniform over the block: p is the block's
    if (threadIdx.x == 0) out[blockIdx.x] = top;
    return;
  }
  const uint32_t hi = order_key(zmax);
  uint32_t lo = 0;  // keep order_key(z) >= lo: all tokens
  if (p.top_k > 0 && p.top_k < V) lo = search(row, false, zmax, float(p.top_k), lo, hi, sh);
  if (p.top_p < 1.0f) {
    uint32_t t[kSplits];
#pragma unroll
    for (int m = 0; m < kSplits; ++m) t[m] = lo;
    evaluate(row, true, zmax, t, sh);  // S, the mass of the tokens top-k kept
    const float target = top_p_target(p.top_p, sh.total[0]);
    lo = search(row, true, zmax, target, lo, hi, sh);
  }
  const int token = draw(row, lo, p.seed, p.step, sh);
  if (threadIdx.x == 0) out[blockIdx.x] = token;
}

}  // namespace

void sample(int* out_tokens, const float* logits, const SampleParams* params, int B, int V, cudaStream_t stream,
            int ld, bool check_finite) {
  if (B <= 0) return;
  if (V <= 0 || V >= (1 << 24)) {  // counts are summed in fp32
    throw Error("cuda::sample: vocabulary size " + std::to_string(V) + " is outside 1 .. 2^24 - 1");
  }
  if (ld == 0) ld = V;
  if (ld < V) throw Error("cuda::sample: row stride " + std::to_string(ld) + " is below V " + std::to_string(V));
  sample_kernel<<<B, kBlock, 0, stream>>>(out_tokens, logits, params, V, ld, check_finite);
  CUDA_CHECK_LAUNCH("sample", stream);
}

}  // namespace gen::cuda
