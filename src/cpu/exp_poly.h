// exp_poly: the vectorizable exp of the CPU kernels (GELU, decode attention's softmax).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

namespace gen::cpu {

// exp(x) in float, Cephes' expf: 2^n times a degree-6 polynomial on [-ln2/2, ln2/2], about 1 ulp. Plain
// arithmetic (the rounding by a magic number, 2^n by its bits) so that a loop of it vectorizes.
inline float exp_poly(float x) {
  x = std::min(88.3f, std::max(-87.3f, x));
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x / ln2)
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (int32_t(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

}  // namespace gen::cpu
