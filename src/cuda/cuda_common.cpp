#include "cuda/cuda_common.h"

#include <cstdlib>
#include <cstring>

namespace gen::cuda {

void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line) {
  const char* base = std::strrchr(file, '/');
  throw Error(std::string("CUDA error: ") + cudaGetErrorString(err) + " in " + call + " (" + (base ? base + 1 : file) +
              ":" + std::to_string(line) + ")");
}

void check_launch(const char* kernel, const char* file, int line) {
  static const bool sync = [] {
    const char* v = std::getenv("GEN_SYNC_CHECK");
    return v && std::strcmp(v, "1") == 0;
  }();
  cudaError_t err = cudaGetLastError();
  if (err == cudaSuccess && sync) err = cudaDeviceSynchronize();
  if (err != cudaSuccess) throw_cuda_error(err, kernel, file, line);
}

}  // namespace gen::cuda
