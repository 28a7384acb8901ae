// Random inputs and poisoned outputs for the tests (DESIGN.md section 4: draw fresh random inputs, never
// test on zeros; poison outputs before a kernel runs and check every element was written).
// The device side (DeviceBuffer poisoning, tensors rounded to fp16/bf16) is in cuda_test_util.h.
#pragma once
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

namespace gen::test {

// n draws of mean + sd * N(0, 1), in order, from a fresh std::normal_distribution<float> on rng (so
// consecutive calls on one rng give fresh values, and a call of even n leaves no draw cached).
inline std::vector<float> random_normal(size_t n, std::mt19937& rng, float mean = 0.0f, float sd = 1.0f) {
  std::normal_distribution<float> dist(mean, sd);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// The same from std::mt19937(seed).
inline std::vector<float> random_normal(size_t n, uint32_t seed, float mean = 0.0f, float sd = 1.0f) {
  std::mt19937 rng(seed);
  return random_normal(n, rng, mean, sd);
}

// n ids in [0, V) (token ids, or any index below V): rng() % V each.
inline std::vector<int> random_ids(size_t n, int V, std::mt19937& rng) {
  std::vector<int> ids(n);
  for (int& id : ids) id = int(rng() % unsigned(V));
  return ids;
}

// n ids in [0, V) from a seed without a generator: Knuth's multiplicative hash of the position,
// ((i + 1) * 2654435761 + 97 * seed) mod V. Different seeds give different sequences.
inline std::vector<int> random_ids(int n, int V, uint32_t seed) {
  std::vector<int> ids(size_t(n > 0 ? n : 0));
  for (int i = 0; i < n; ++i) ids[i] = int((uint64_t(i + 1) * 2654435761u + seed * 97u) % uint64_t(V));
  return ids;
}

// Every byte 0xFF: NaN in fp32, fp16 and bf16 (and -1 in a signed integer), so that an output element
// a kernel forgot to write cannot pass a comparison.
inline constexpr unsigned char kPoisonByte = 0xFF;

template <typename T>
void poison(T* p, size_t n) {
  std::memset(static_cast<void*>(p), kPoisonByte, n * sizeof(T));
}

template <typename T>
void poison(std::vector<T>& v) {
  poison(v.data(), v.size());
}

// A host buffer of n poisoned elements.
template <typename T>
std::vector<T> poisoned(size_t n) {
  std::vector<T> v(n);
  poison(v);
  return v;
}

// Whether every byte of p[0, n) is still the poison: a guard past the end of an output was not touched.
template <typename T>
bool still_poisoned(const T* p, size_t n) {
  const auto* b = reinterpret_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n * sizeof(T); ++i) {
    if (b[i] != kPoisonByte) return false;
  }
  return true;
}

}  // namespace gen::test
