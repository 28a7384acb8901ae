#include "cuda/decode_graphs.h"

#include <cstdlib>

#include "gen/notes.h"

namespace gen::cuda {

DecodeGraphs::DecodeGraphs() : policy_([](const char* name) { return std::getenv(name); }) {}

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
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &status) != cudaSuccess || status != cudaStreamCaptureStatusNone) {
    // Active or invalidated: either way the capture must end (an invalidated one returns its error
    // and no graph) before the stream takes eager work again.
    cudaGraph_t graph = nullptr;
    cudaStreamEndCapture(stream, &graph);
    if (graph) cudaGraphDestroy(graph);
  }
  cudaGetLastError();  // capture errors are not sticky: this clears them for the next launch check
}

void DecodeGraphs::break_capture(cudaStream_t stream) { CUDA_CHECK(cudaStreamSynchronize(stream)); }

void DecodeGraphs::capture_failed(const std::string& why) {
  clear();
  const std::string note = policy_.capture_failed(why);
  if (!note.empty()) notify(note);
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
