// The captured decode steps: one CUDA graph per batch size. A graph bakes every device pointer it was
// captured with (the cache's layers, the activations, the pinned step inputs), so each is keyed on the
// cache id and the activations' generation, and replay drops every graph of another key: no graph can
// run over a freed or replaced buffer.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <exception>
#include <map>

#include "cuda/cuda_common.h"
#include "cuda/graph_policy.h"

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
  // On unless the environment turns graphs off (GraphPolicy: GEN_NO_GRAPH=1, GEN_SYNC_CHECK=1).
  DecodeGraphs();
  ~DecodeGraphs() { clear(); }
  DecodeGraphs(const DecodeGraphs&) = delete;
  DecodeGraphs& operator=(const DecodeGraphs&) = delete;

  bool enabled() const { return policy_.enabled(); }
  const GraphPolicy& policy() const { return policy_; }
  // Destroys every graph (before a buffer they use is freed).
  void clear();

  // Launches on `stream` the graph for batch size B under `key`, capturing it from `enqueue()` (which
  // enqueues the step on `stream`) when there is none; graphs of another key are destroyed first.
  // Returns false, having launched nothing, when graphs are off or the capture failed for any reason:
  // then the capture is ended, what it made destroyed, no error left pending, graphs are off for the
  // run (one note says why) and the caller enqueues the step itself, eagerly.
  template <typename Enqueue>
  bool replay(int B, GraphKey key, cudaStream_t stream, Enqueue&& enqueue) {
    if (!policy_.enabled()) return false;
    cudaGraphExec_t exec = find(B, key);
    if (!exec) {
      try {
        begin_capture(stream);
        enqueue();
        if (policy_.fail_on_purpose()) break_capture(stream);
        exec = end_capture(B, stream);
      } catch (const std::exception& e) {
        abort_capture(stream);
        capture_failed(e.what());
        return false;
      }
    }
    CUDA_CHECK(cudaGraphLaunch(exec, stream));
    return true;
  }

 private:
  cudaGraphExec_t find(int B, GraphKey key);  // nullptr when none; adopts `key`
  void begin_capture(cudaStream_t stream);
  // Ends a failed capture if the stream is still capturing, destroys the partial graph, and clears the
  // error it left (cudaGetLastError), so that no later launch check reports it.
  void abort_capture(cudaStream_t stream);
  cudaGraphExec_t end_capture(int B, cudaStream_t stream);  // instantiates and keeps it
  // GEN_FAIL_GRAPH_CAPTURE=1: what a real failure does, a call that is illegal while capturing (a
  // stream sync), which invalidates the capture; throws its error.
  static void break_capture(cudaStream_t stream);
  void capture_failed(const std::string& why);  // graphs off, destroyed; the policy's note once

  std::map<int, cudaGraphExec_t> graphs_;  // batch size -> decode step, all under key_
  GraphKey key_;
  GraphPolicy policy_;
};

}  // namespace gen::cuda
