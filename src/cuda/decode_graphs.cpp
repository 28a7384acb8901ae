#include "cuda/decode_graphs.h"

#include <cstdlib>
#include <cstring>

namespace gen::cuda {

namespace {
bool env_is_1(const char* name) {
  const char* v = std::getenv(name);
  return v && std::strcmp(v, "1") == 0;
}
}  // namespace

DecodeGraphs::DecodeGraphs() : enabled_(!env_is_1("GEN_SYNC_CHECK") && !env_is_1("GEN_NO_GRAPH")) {}

void DecodeGraphs::clear() {
  for (auto& [b, g] : graphs_) cudaGraphExecDestroy(g);
  graphs_.clear();
}

cudaGraphExec_t DecodeGraphs::find(int B, GraphKey key) {
  if (!(key == key_)) {  // captured over other buffers
    clear();
    key_ = key;
  }
  auto it = graphs_.find(B);
  return it == graphs_.end() ? nullptr : it->second;
}

void DecodeGraphs::begin_capture(cudaStream_t stream) {
  CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
}

void DecodeGraphs::abort_capture(cudaStream_t stream) {
  cudaGraph_t graph = nullptr;
  cudaStreamEndCapture(stream, &graph);
  if (graph) cudaGraphDestroy(graph);
}

cudaGraphExec_t DecodeGraphs::end_capture(int B, cudaStream_t stream) {
  cudaGraph_t graph = nullptr;
  CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  cudaGraphExec_t exec = nullptr;
  const cudaError_t err = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  CUDA_CHECK(err);
  graphs_.emplace(B, exec);
  return exec;
}

}  // namespace gen::cuda
