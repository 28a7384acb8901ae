// The devices gen runs on: what this machine has (a usable GPU and its memory, the host's available
// memory), the choice between them, and the factory that makes a backend for one.
#pragma once
#include <cstddef>
#include <memory>
#include <string>

#include "gen/backend.h"

namespace gen {

struct Weights;

enum class Device { cpu, cuda };
const char* device_name(Device d);
// True when a CUDA device can be used; otherwise `why` says why not (no device, old driver, or a
// build without CUDA).
bool cuda_available(std::string* why);
// Memory of CUDA device 0 as cudaMemGetInfo sees it now. `usable` false: `why` says why (as
// cuda_available) and the sizes are 0. Never throws: callers only report it.
struct GpuMemory {
  bool usable = false;
  std::string why;
  std::string name;        // e.g. "NVIDIA H200"
  size_t total_bytes = 0;
  size_t free_bytes = 0;
};
GpuMemory gpu_memory();
// What the host can still allocate, in bytes: MemAvailable of /proc/meminfo (what can be allocated
// without swapping), capped by what the process's memory cgroup has left (cgroup_memory_left: a Slurm
// task's allocation, a container's limit). 0 when unknown (no /proc/meminfo and no cgroup limit), so a
// caller refusing work must treat 0 as "cannot tell". (src/engine/host_memory.cpp)
size_t host_memory_available();
// MemAvailable from the text of a /proc/meminfo ("MemAvailable:  123456 kB"); 0 when absent or malformed.
size_t parse_mem_available(const std::string& meminfo_text);
// From the text of /proc/self/cgroup: the least of limit - working set over the process's memory cgroup
// and its ancestors, cgroup v2 (ROOT/PATH/memory.max, memory.current less memory.stat's inactive_file)
// or v1 (ROOT/memory/PATH/memory.limit_in_bytes, memory.usage_in_bytes less total_inactive_file);
// SIZE_MAX when no group has a limit or none can be read.
size_t cgroup_memory_left(const std::string& proc_self_cgroup, const std::string& root);
// "auto" | "cpu" | "cuda". auto falls back to the CPU and sets `note`; cuda without a usable GPU
// throws with the reason.
// The dtype is checked for the chosen device here, before any slow load: the CPU runs fp32, bf16 and
// int8; CUDA fp32, fp16 and bf16. auto with --dtype int8 takes the CPU (a note says so when a GPU is
// there).
Device choose_device(const std::string& requested, std::string* note, const std::string& dtype = "");
// dtype: "" (the device's default: fp32 on the CPU, fp16 on CUDA) or one the device runs.
std::unique_ptr<Backend> make_backend(Device d, std::shared_ptr<const Weights> weights, int threads,
                                      const std::string& dtype = "");

// Sets the CPU thread count of OpenMP and OpenBLAS (`requested` <= 0: the core count) and returns it.
// main() calls it first, so that no parallel region ever runs with an environment's OMP_NUM_THREADS
// (100000 of them crashed libgomp in the first region).
int set_cpu_threads(int requested);

// "1.50 MiB" style.
std::string human_bytes(double bytes);

}  // namespace gen
