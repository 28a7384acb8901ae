#include "cuda/cuda_common.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "gen/device.h"

namespace gen::cuda {

void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line) {
  const char* base = std::strrchr(file, '/');
  throw Error(std::string("CUDA error: ") + cudaGetErrorString(err) + " in " + call + " (" + (base ? base + 1 : file) +
              ":" + std::to_string(line) + ")");
}

// Unlike throw_cuda_error, the full path of the file (as the message always said).
void throw_cublas_error(cublasStatus_t st, const char* call, const char* file, int line) {
  throw Error(std::string("cuBLAS error ") + cublasGetStatusString(st) + " in " + call + " (" + file + ":" +
              std::to_string(line) + ")");
}

void ensure_fits(size_t bytes, const std::string& what) {
  size_t free = 0, total = 0;
  CUDA_CHECK(cudaMemGetInfo(&free, &total));
  if (bytes + kMemoryMargin > free) {
    throw Error("not enough GPU memory for " + what + ": need " + human_bytes(double(bytes)) + " (+" +
                human_bytes(double(kMemoryMargin)) + " margin), free " + human_bytes(double(free)) + " of " +
                human_bytes(double(total)));
  }
}

namespace {
std::atomic<bool>& sync_flag() {
  static std::atomic<bool> on{[] {
    const char* v = std::getenv("GEN_SYNC_CHECK");
    return v && std::strcmp(v, "1") == 0;
  }()};
  return on;
}

// Whether work on `stream` is being captured now. A failed query counts as capturing (no sync), and its
// error is cleared so that it is not taken for the kernel's.
bool capturing(cudaStream_t stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &status) != cudaSuccess) {
    cudaGetLastError();
    return true;
  }
  return status != cudaStreamCaptureStatusNone;
}
}  // namespace

bool sync_check() { return sync_flag().load(); }
void set_sync_check(bool on) { sync_flag().store(on); }

void check_launch(const char* kernel, cudaStream_t stream, const char* file, int line) {
  cudaError_t err = cudaGetLastError();
  if (err == cudaSuccess && sync_check() && !capturing(stream)) err = cudaDeviceSynchronize();
  if (err != cudaSuccess) throw_cuda_error(err, kernel, file, line);
}

}  // namespace gen::cuda
