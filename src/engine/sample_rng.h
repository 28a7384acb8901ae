// The sampling algorithm's scalar steps and its counter-based RNG, shared by the CPU sampler
// (src/sampler.cpp) and the CUDA kernel (kernels/sampling.cu) so that equal logits give equal tokens.
//
// THE ALGORITHM: one token from logits l[0..n) with (temperature T, top_k, top_p, seed, step).
//  1. !(T > 0) (0, negative or NaN): greedy, the argmax of canonical(l) (NaN as -inf), ties to the lowest id.
//  2. z_i = scaled_logit(l_i, T) = l_i / T in fp32 (IEEE division), NaN -> -inf, -0 -> +0, so that the
//     float order of z and the integer order of order_key(z) agree (the GPU searches thresholds on keys).
//  3. top-k (0 < top_k < n): t = the top_k-th largest z (counted with multiplicity); keep z_i >= t, so ties
//     at the threshold are all kept.
//  4. top-p (top_p < 1): over the kept tokens, e_i = mass_weight(z_i, zmax) = exp(z_i - zmax) in fp32
//     (zmax = max z), S = sum of e_i, target = top_p * S, mass(v) = sum of e_j over kept j with z_j >= v.
//     tau = the largest kept z value v with mass(v) >= target (the smallest if rounding leaves none);
//     keep z_i >= tau. This is the smallest set of most likely tokens whose probability reaches top_p,
//     ties at the boundary all kept. Sums: the CPU accumulates in double, the GPU in fp32 block
//     reductions (small partial sums, so within ~1e-5 of exact; an fp32 running sum over 50k tokens
//     would drop ~1e-4 of the mass in the tiny terms).
//  5. Draw by Gumbel-max: among kept i, the argmax of z_i + g_i (fp32), ties to the lowest id, where
//     g_i = -log(-log(u_i)) and u_i = uniform(random_bits(stream_key(seed, step), i)). argmax(z + Gumbel)
//     is distributed as softmax(z) restricted to the kept set, and needs no sorting and no running sum,
//     so the GPU draws with one reduction.
// The draw of token `step` depends only on (seed, step, logits): a sequence's draws do not depend on the
// batch it runs in.
//
// Where the CPU and GPU can differ (rarely; tests must allow it or avoid it):
//  - top-p's sums are rounded differently: a boundary whose cumulative mass lies within ~1e-5 of the
//    target can fall on either side; the tokens drawn still agree unless a token at the boundary wins.
//  - expf and logf are each side's own (glibc vs CUDA, both within 1-2 ulp): a draw whose best two
//    values of z + g are within ~1e-6 of each other can go either way.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#ifndef GEN_HD
#ifdef __CUDACC__
#define GEN_HD __host__ __device__ inline
#else
#define GEN_HD inline
#endif
#endif

namespace gen::sampling {

// SplitMix64's output function: a bijection on 64 bits with full avalanche.
GEN_HD uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The key of the stream for token number `step` of a sequence seeded with `seed`.
GEN_HD uint64_t stream_key(uint64_t seed, int step) {
  return mix64(mix64(seed + 0x9E3779B97F4A7C15ull) + (uint64_t(uint32_t(step)) + 1) * 0xD1B54A32D192ED03ull);
}

// 64 random bits for token id i: output i + 1 of a SplitMix64 generator whose state starts at `key`.
GEN_HD uint64_t random_bits(uint64_t key, uint32_t i) {
  return mix64(key + (uint64_t(i) + 1) * 0x9E3779B97F4A7C15ull);
}

// (2k + 1) / 2^24 for the top 23 bits k: exact in fp32 and strictly inside (0, 1), so both logs are finite.
GEN_HD float uniform(uint64_t bits) {
  const uint32_t k = uint32_t(bits >> 41);
  return float(2 * k + 1) * 0x1p-24f;
}

// Standard Gumbel noise -log(-log(u)), in [-2.81, 16.64].
GEN_HD float gumbel(uint64_t key, uint32_t i) {
  const float u = uniform(random_bits(key, i));
  return -logf(-logf(u));
}

GEN_HD float canonical(float z) {
  if (z != z) return -INFINITY;  // NaN
  return z == 0.0f ? 0.0f : z;   // -0 -> +0
}

// The explicit _rn intrinsics on the device keep nvcc from fusing these into FMAs with neighbouring
// products, so both sides round each operation the same way.
GEN_HD float scaled_logit(float logit, float temperature) {
#ifdef __CUDA_ARCH__
  return canonical(__fdiv_rn(logit, temperature));
#else
  return canonical(logit / temperature);
#endif
}

// exp(z - zmax), written so that infinite logits give 1 for the maximum rather than exp(NaN).
GEN_HD float mass_weight(float z, float zmax) {
  if (z == zmax) return 1.0f;
#ifdef __CUDA_ARCH__
  return expf(__fsub_rn(z, zmax));
#else
  return expf(z - zmax);
#endif
}

GEN_HD float top_p_target(float top_p, float total) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(top_p, total);
#else
  return top_p * total;
#endif
}

GEN_HD float perturbed(float z, float g) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(z, g);
#else
  return z + g;
#endif
}

// A key whose unsigned order is the float order (for canonical, non-NaN values): the GPU searches the
// top-k and top-p thresholds as integers.
GEN_HD uint32_t order_key(float z) {
#ifdef __CUDA_ARCH__
  const uint32_t bits = __float_as_uint(z);
#else
  uint32_t bits;
  std::memcpy(&bits, &z, sizeof bits);
#endif
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

// The draw's order: the higher value wins, ties go to the lower id.
GEN_HD bool better(float s, int i, float best_s, int best_i) {
  return s > best_s || (s == best_s && i < best_i);
}

}  // namespace gen::sampling
