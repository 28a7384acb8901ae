// The captured decode steps: one CUDA graph per batch size. A graph bakes every device pointer it was
// captured with (the cache's layers, the activations, the pinned step inputs), so each is keyed on the
// cache id and the activations' generation, and replay drops every graph of another key: no graph can
// run over a freed or replaced buffer.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <map>

#include "cuda/cuda_common.h"

namespace gen::cuda {

// What a graph's pointers depend on besides the weights (uploaded once): the cache it writes and the
// activations' generation (Activations::generation(), bumped on every reallocation).
struct GraphKey {
  uint64_t cache_id = 0;
  uint64_t generation = 0;
  bool operator==(const GraphKey& o) const { return cache_id == o.cache_id && generation == o.generation; }
};

class DecodeGraphs {
 public:
  // Off with GEN_SYNC_CHECK=1 (a captured launch cannot be synchronized) or GEN_NO_GRAPH=1.
  DecodeGraphs();
  ~DecodeGraphs() { clear(); }
  DecodeGraphs(const DecodeGraphs&) = delete;
  DecodeGraphs& operator=(const DecodeGraphs&) = delete;

  bool enabled() const { return enabled_; }
  // Destroys every graph (before a buffer they use is freed).
  void clear();

  // Launches on `stream` the graph for batch size B under `key`, capturing it from `enqueue()` (which
  // enqueues the step on `stream`) when there is none. Graphs of another key are destroyed first.
  template <typename Enqueue>
  void replay(int B, GraphKey key, cudaStream_t stream, Enqueue&& enqueue) {
    cudaGraphExec_t exec = find(B, key);
    if (!exec) {
      begin_capture(stream);
      try {
        enqueue();
      } catch (...) {
        abort_capture(stream);
        throw;
      }
      exec = end_capture(B, stream);
    }
    CUDA_CHECK(cudaGraphLaunch(exec, stream));
  }

 private:
  cudaGraphExec_t find(int B, GraphKey key);  // nullptr when none; adopts `key`
  void begin_capture(cudaStream_t stream);
  void abort_capture(cudaStream_t stream);                  // ends a failed capture, drops what it made
  cudaGraphExec_t end_capture(int B, cudaStream_t stream);  // instantiates and keeps it

  std::map<int, cudaGraphExec_t> graphs_;  // batch size -> decode step, all under key_
  GraphKey key_;
  bool enabled_ = true;
};

}  // namespace gen::cuda
