#include <omp.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "cpu/cpu_backend.h"
#ifdef GEN_WITH_CUDA
#include "cuda/cuda_backend.h"
#endif
#include "gen/device.h"
#include "gen/error.h"

#ifdef GEN_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

extern "C" void openblas_set_num_threads(int);

namespace gen {

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", b, units[u]);
  return buf;
}

int set_cpu_threads(int requested) {
  const int n = requested > 0 ? requested : omp_get_num_procs();
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
  return n;
}

const char* device_name(Device d) { return d == Device::cuda ? "cuda" : "cpu"; }

bool cuda_available(std::string* why) {
#ifdef GEN_WITH_CUDA
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err == cudaSuccess && n > 0) return true;
  if (why) {
    int driver = 0, runtime = 0;
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    if (err == cudaErrorInsufficientDriver && driver == 0) {
      *why = "no CUDA device found (no NVIDIA driver is loaded)";
    } else if (err == cudaErrorInsufficientDriver) {
      *why = "the NVIDIA driver is too old (driver supports CUDA " + std::to_string(driver / 1000) + "." +
             std::to_string(driver % 1000 / 10) + ", gen needs " + std::to_string(runtime / 1000) + "." +
             std::to_string(runtime % 1000 / 10) + ")";
    } else if (err == cudaSuccess || err == cudaErrorNoDevice) {
      *why = "no CUDA device found";
    } else {
      *why = std::string("CUDA is unusable: ") + cudaGetErrorString(err);
    }
  }
  return false;
#else
  if (why) *why = "gen was built without CUDA (GEN_CUDA=OFF or no nvcc at build time)";
  return false;
#endif
}

GpuMemory gpu_memory() {
  GpuMemory m;
  if (!cuda_available(&m.why)) return m;
#ifdef GEN_WITH_CUDA
  // cudaMemGetInfo creates the context on device 0: the free figure is what gen itself would see.
  cudaDeviceProp prop{};
  cudaError_t err = cudaGetDeviceProperties(&prop, 0);
  if (err == cudaSuccess) err = cudaMemGetInfo(&m.free_bytes, &m.total_bytes);
  if (err != cudaSuccess) {
    m.why = std::string("CUDA is unusable: ") + cudaGetErrorString(err);
    m.free_bytes = m.total_bytes = 0;
    return m;
  }
  m.usable = true;
  m.name = prop.name;
#endif
  return m;
}

namespace {
Device choose_device_only(const std::string& requested, std::string* note) {
  if (requested == "cpu") return Device::cpu;
  std::string why;
  if (requested == "cuda") {
    if (!cuda_available(&why)) throw InputError("--device cuda: " + why, "--device");
    return Device::cuda;
  }
  if (requested == "auto") {
    if (cuda_available(&why)) return Device::cuda;
    if (note) *note = "note: " + why + "; running on the CPU";
    return Device::cpu;
  }
  throw InputError("--device must be auto, cpu or cuda (got '" + requested + "')", "--device");
}

// The dtype on a device, checked: "" is the device's default (fp32 on the CPU, fp16 on CUDA).
void check_dtype(Device d, const std::string& dtype) {
  if (d == Device::cpu) {
    cpu::parse_dtype(dtype);
  } else if (dtype == "int8") {
    throw InputError("--dtype int8 is not supported on cuda yet (fp32, fp16 or bf16 there; int8 runs on the CPU)",
                     "--dtype");
  }
}
}  // namespace

Device choose_device(const std::string& requested, std::string* note, const std::string& dtype) {
  // int8 is a CPU dtype for now: auto takes the CPU for it rather than fail on a GPU.
  if (requested == "auto" && dtype == "int8") {
    if (cuda_available(nullptr) && note) *note = "note: --dtype int8 runs on the CPU only; running on the CPU";
    return Device::cpu;
  }
  if (requested == "cuda") check_dtype(Device::cuda, dtype);  // a dtype CUDA lacks, before asking for a GPU
  const Device d = choose_device_only(requested, note);
  check_dtype(d, dtype);
  return d;
}

std::unique_ptr<Backend> make_backend(Device d, std::shared_ptr<const Weights> weights, int threads,
                                      const std::string& dtype) {
  check_dtype(d, dtype);
  if (d == Device::cuda) {
#ifdef GEN_WITH_CUDA
    return make_cuda_backend(std::move(weights), parse_compute_dtype(dtype));
#else
    throw Error("gen was built without CUDA");  // choose_device() has already refused
#endif
  }
  return std::make_unique<CpuBackend>(std::move(weights), threads, cpu::parse_dtype(dtype));
}

}  // namespace gen
