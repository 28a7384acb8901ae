// The CUDA backend: weights in one device allocation (fp16 by default), cuBLAS GEMMs with fp32
// accumulation, gen's kernels for the rest, a preallocated device KV cache, sampling on the GPU and a
// captured CUDA graph per batch size for decode steps. Only a factory here: callers see a Backend.
#pragma once
#include <memory>
#include <string>

#include "gen/backend.h"
#include "model/weights.h"

namespace gen {

enum class ComputeDType { fp32, fp16, bf16 };
ComputeDType parse_compute_dtype(const std::string& s);  // "fp32" | "fp16" | "bf16"; "" is fp16

// Throws Error when no device can be used, or when the weights do not fit (bytes needed, bytes free).
std::unique_ptr<Backend> make_cuda_backend(std::shared_ptr<const Weights> weights, ComputeDType dtype);

}  // namespace gen
