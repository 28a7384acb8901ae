// Graph capture on the GPU: a failed capture (on purpose, GEN_FAIL_GRAPH_CAPTURE=1, or by a throwing
// step) ends cleanly, leaves no error pending, turns graphs off with one note, and the steps run eagerly
// with the same tokens; and the sync check (GEN_SYNC_CHECK) lets tests capture launches. The decision
// itself is tested on the CPU (test_graph_policy.cpp).
#include <catch2/catch.hpp>
#include <cstdlib>
#include <string>
#include <vector>

#include "cuda/cuda_backend.h"
#include "cuda/cuda_common.h"
#include "cuda/decode_graphs.h"
#include "cuda_kernels.h"
#include "cuda_test_util.h"
#include "fixture_model.h"
#include "gen/generator.h"
#include "gen/notes.h"
#include "test_util.h"

using namespace gen;
using namespace gen::test;

namespace {

// Notes given while it lives, and an environment variable set to "1" meanwhile.
struct Capture {
  std::vector<std::string> notes;
  NoteSink before;
  std::string var;
  explicit Capture(std::string env_var = "") : var(std::move(env_var)) {
    before = set_note_sink([this](const std::string& n) { notes.push_back(n); });
    if (!var.empty()) setenv(var.c_str(), "1", 1);
  }
  ~Capture() {
    if (!var.empty()) unsetenv(var.c_str());
    set_note_sink(std::move(before));
  }
};

const char* const kNote = "CUDA graphs off for this run (capturing the decode step failed: ";

}  // namespace

TEST_CASE("a decode graph capture that fails falls back to eager steps, one note, nothing pending",
          "[cuda][graph]") {
  Fixture f = load_fixture("tiny-f32");
  Tokenizer tok = tiny_tokenizer(f.cfg.vocab_size);
  GenOptions o;
  o.max_new_tokens = int(f.greedy_new_tokens.size());
  o.sampling.temperature = 0;
  o.ignore_eos = true;
  {
    Capture quiet;  // graphs that work give no note
    auto gpu = make_cuda_backend(f.weights, ComputeDType::fp32);
    REQUIRE(Generator(*gpu, tok).generate(f.prompt_ids, o).tokens == f.greedy_new_tokens);
    REQUIRE(quiet.notes.empty());
  }
  Capture c("GEN_FAIL_GRAPH_CAPTURE");
  auto gpu = make_cuda_backend(f.weights, ComputeDType::fp32);
  Generator g(*gpu, tok);
  REQUIRE(g.generate(f.prompt_ids, o).tokens == f.greedy_new_tokens);
  REQUIRE(cudaGetLastError() == cudaSuccess);
  REQUIRE(c.notes.size() == 1);
  INFO(c.notes[0]);
  REQUIRE(c.notes[0].rfind(kNote, 0) == 0);
  REQUIRE(c.notes[0].find("decode steps run without them") != std::string::npos);
  // Off for the rest of the run: more steps, another batch size, no second note, the same tokens.
  std::vector<Request> reqs(3);
  for (int i = 0; i < 3; ++i) reqs[size_t(i)] = {i, f.prompt_ids, o};
  std::vector<std::vector<int>> got(3);
  RunCallbacks cb;
  cb.on_done = [&](int i, GenResult&& r) { got[size_t(i)] = r.tokens; };
  g.run(reqs, GenOptions{}, 3, cb);
  for (const auto& t : got) REQUIRE(t == f.greedy_new_tokens);
  REQUIRE(c.notes.size() == 1);
}

TEST_CASE("DecodeGraphs: a step that throws while captured ends the capture and says so once",
          "[cuda][graph]") {
  Capture c;
  gen::cuda::DecodeGraphs graphs;
  REQUIRE(graphs.enabled());
  cudaStream_t stream;
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  std::mt19937 rng(1);
  DeviceTensor<float> src = random_tensor<float>(1000, rng);
  DeviceTensor<__half> dst = poisoned_tensor<__half>(1000);
  bool throw_now = true;
  auto step = [&] {
    gen::cuda::convert_from_f32<__half>(dst.get(), src.get(), 1000, stream);
    if (throw_now) throw Error("a step that fails half way");
  };
  REQUIRE(!graphs.replay(1, {1, 1}, stream, step));
  REQUIRE(!graphs.enabled());
  REQUIRE(c.notes.size() == 1);
  REQUIRE(c.notes[0] == std::string(kNote) + "a step that fails half way); decode steps run without them");
  REQUIRE(cudaGetLastError() == cudaSuccess);
  cudaStreamCaptureStatus status;
  CUDA_CHECK(cudaStreamIsCapturing(stream, &status));
  REQUIRE(status == cudaStreamCaptureStatusNone);
  // The caller's eager step runs on the same stream; the captured copy never ran.
  REQUIRE(device_still_poisoned(dst.get(), 1000));
  throw_now = false;
  REQUIRE(!graphs.replay(1, {1, 1}, stream, step));  // off: nothing captured, nothing launched
  step();
  CUDA_CHECK(cudaStreamSynchronize(stream));
  const std::vector<float> got = dst.download();
  for (size_t i = 0; i < got.size(); ++i) REQUIRE(got[i] == round_t<__half>(src.host[i]));
  REQUIRE(c.notes.size() == 1);
  CUDA_CHECK(cudaStreamDestroy(stream));
}

TEST_CASE("the sync check does not break captures: launches inside one are checked at the graph's launch",
          "[cuda][graph]") {
  const bool was = gen::cuda::sync_check();
  gen::cuda::set_sync_check(true);
  std::mt19937 rng(2);
  const int T = 5, C = 768;
  DeviceTensor<float> x = random_tensor<float>(size_t(T) * C, rng);
  DeviceTensor<float> w = random_tensor<float>(C, rng, 1.0f, 0.1f), b = random_tensor<float>(C, rng);
  DeviceTensor<float> eager = poisoned_tensor<float>(size_t(T) * C),
                      replay = poisoned_tensor<float>(size_t(T) * C);
  cudaStream_t stream;
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  gen::cuda::add_layernorm<float>(x.get(), nullptr, nullptr, eager.get(), w.get(), b.get(), T, C, 1e-5f,
                                  stream);
  for (cudaStreamCaptureMode mode : {cudaStreamCaptureModeGlobal, cudaStreamCaptureModeThreadLocal}) {
    INFO("capture mode " << int(mode));
    poison_device(replay.get(), replay.n);
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    CUDA_CHECK(cudaStreamBeginCapture(stream, mode));
    REQUIRE_NOTHROW(gen::cuda::add_layernorm<float>(x.get(), nullptr, nullptr, replay.get(), w.get(), b.get(),
                                                    T, C, 1e-5f, stream));
    CUDA_CHECK(cudaStreamEndCapture(stream, &graph));  // still valid: no sync happened inside
    CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    CUDA_CHECK(cudaGraphLaunch(exec, stream));
    CUDA_CHECK(cudaStreamSynchronize(stream));
    REQUIRE(replay.download() == eager.download());
    CUDA_CHECK(cudaGraphExecDestroy(exec));
    CUDA_CHECK(cudaGraphDestroy(graph));
  }
  CUDA_CHECK(cudaStreamDestroy(stream));
  gen::cuda::set_sync_check(was);
}
