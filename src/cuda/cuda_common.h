// CUDA plumbing shared by the kernels and the CUDA backend: checked calls that throw, the device memory
// check, and RAII device buffers. Host code only needs the CUDA headers, not nvcc.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>
#include <utility>

#include "gen/error.h"

namespace gen::cuda {

[[noreturn]] void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t st, const char* call, const char* file, int line);
// After a launch on `stream`: the launch error, and with the sync check on also the kernel's own error
// (synchronizes, to find the faulty kernel). The sync is skipped while `stream` is being captured into
// a graph (a sync there is illegal and would break the capture): the graph's launch is checked instead.
void check_launch(const char* kernel, cudaStream_t stream, const char* file, int line);
// The sync check: on when GEN_SYNC_CHECK=1 was in the environment at the first launch; tests turn it
// on and off with set_sync_check.
bool sync_check();
void set_sync_check(bool on);

#define CUDA_CHECK(call)                                                                  \
  do {                                                                                    \
    cudaError_t err_ = (call);                                                            \
    if (err_ != cudaSuccess) ::gen::cuda::throw_cuda_error(err_, #call, __FILE__, __LINE__); \
  } while (0)
#define CUBLAS_CHECK(call)                                                                          \
  do {                                                                                              \
    cublasStatus_t st_ = (call);                                                                    \
    if (st_ != CUBLAS_STATUS_SUCCESS) ::gen::cuda::throw_cublas_error(st_, #call, __FILE__, __LINE__); \
  } while (0)
#define CUDA_CHECK_LAUNCH(name, stream) ::gen::cuda::check_launch(name, stream, __FILE__, __LINE__)

// Left free for the CUDA context and cuBLAS by every allocation that ensure_fits checks.
constexpr size_t kMemoryMargin = size_t(256) << 20;
// Throws Error when `bytes` more would not fit in the free device memory (with kMemoryMargin); `what`
// names the allocation in the message.
void ensure_fits(size_t bytes, const std::string& what);

// A move-only device allocation of n elements of T.
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t n) : n_(n) {
    if (n) CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p_), n * sizeof(T)));
  }
  ~DeviceBuffer() {
    if (p_) cudaFree(p_);
  }
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      if (p_) cudaFree(p_);
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  T* get() const { return p_; }
  size_t size() const { return n_; }
  size_t bytes() const { return n_ * sizeof(T); }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

}  // namespace gen::cuda
