// Device-side test helpers for gen_cuda_tests: fp32 / fp16 / bf16 conversions as the kernels round,
// poisoned device buffers (all bytes 0xFF, NaN in every float type) and random device tensors whose host
// image holds exactly the values the kernel sees. Host-side draws are in random_inputs.h.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <random>
#include <type_traits>
#include <vector>

#include "cuda/cuda_common.h"
#include "random_inputs.h"

namespace gen::test {

using gen::cuda::DeviceBuffer;

// Poisoned elements after every DeviceTensor by default: an output's guard must stay untouched.
inline constexpr size_t kGuard = 16;

inline float to_f(float v) { return v; }
inline float to_f(__half v) { return __half2float(v); }
inline float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }

// v rounded to nearest even in T.
template <typename T>
T to_t(float v) {
  if constexpr (std::is_same_v<T, float>)
    return v;
  else if constexpr (std::is_same_v<T, __half>)
    return __float2half_rn(v);
  else
    return __float2bfloat16_rn(v);
}

template <typename T>
float round_t(float v) {
  return to_f(to_t<T>(v));
}

// Every byte of dev[0, n) set to 0xFF (kPoisonByte): NaN for floats, -1 for ints.
template <typename T>
void poison_device(T* dev, size_t n) {
  CUDA_CHECK(cudaMemset(dev, kPoisonByte, n * sizeof(T)));
}
template <typename T>
void poison(DeviceBuffer<T>& d) {
  poison_device(d.get(), d.size());
}

// Whether every byte of dev[0, n) is still the poison.
template <typename T>
bool device_still_poisoned(const T* dev, size_t n) {
  std::vector<T> h(n);
  CUDA_CHECK(cudaMemcpy(h.data(), dev, n * sizeof(T), cudaMemcpyDeviceToHost));
  return still_poisoned(h.data(), n);
}

template <typename T>
void upload(DeviceBuffer<T>& d, const std::vector<T>& h) {
  CUDA_CHECK(cudaMemcpy(d.get(), h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
}
template <typename T>
DeviceBuffer<T> upload(const std::vector<T>& h) {
  DeviceBuffer<T> d(h.size());
  upload(d, h);
  return d;
}
inline DeviceBuffer<int> upload_ints(const std::vector<int>& h) { return upload(h); }

// dev[0, n) as fp32.
template <typename T>
std::vector<float> download(const T* dev, size_t n) {
  std::vector<T> h(n);
  CUDA_CHECK(cudaMemcpy(h.data(), dev, n * sizeof(T), cudaMemcpyDeviceToHost));
  std::vector<float> f(n);
  for (size_t i = 0; i < n; ++i) f[i] = to_f(h[i]);
  return f;
}
template <typename T>
std::vector<float> download(const DeviceBuffer<T>& d) {
  return download(d.get(), d.size());
}

// A device tensor of n elements of T followed by `guard` poisoned elements that no kernel may write, and
// the host image of its n values in fp32.
template <typename T>
struct DeviceTensor {
  size_t n = 0, guard = 0;
  std::vector<float> host;  // [n]
  DeviceBuffer<T> dev;      // [n + guard]
  T* get() const { return dev.get(); }
  std::vector<float> download() const { return gen::test::download(dev.get(), n); }
  bool guard_intact() const { return device_still_poisoned(dev.get() + n, guard); }
};

// n + guard poisoned elements; host stays empty.
template <typename T>
DeviceTensor<T> poisoned_tensor(size_t n, size_t guard = kGuard) {
  DeviceTensor<T> t;
  t.n = n;
  t.guard = guard;
  t.dev = DeviceBuffer<T>(n + guard);
  poison(t.dev);
  return t;
}

// values rounded to T into the first values.size() elements; host gets the rounded values.
template <typename T>
void upload(DeviceTensor<T>& t, const std::vector<float>& values) {
  std::vector<T> v(values.size());
  t.host.resize(values.size());
  for (size_t i = 0; i < v.size(); ++i) v[i] = to_t<T>(values[i]), t.host[i] = to_f(v[i]);
  CUDA_CHECK(cudaMemcpy(t.dev.get(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
}

// random_normal(n, rng, mean, sd) rounded to T, then `guard` poisoned elements.
template <typename T>
DeviceTensor<T> random_tensor(size_t n, std::mt19937& rng, float mean = 0.0f, float sd = 1.0f,
                              size_t guard = kGuard) {
  DeviceTensor<T> t = poisoned_tensor<T>(n, guard);
  upload(t, random_normal(n, rng, mean, sd));
  return t;
}
template <typename T>
DeviceTensor<T> random_tensor(size_t n, uint32_t seed, float mean = 0.0f, float sd = 1.0f,
                              size_t guard = kGuard) {
  std::mt19937 rng(seed);
  return random_tensor<T>(n, rng, mean, sd, guard);
}

}  // namespace gen::test
