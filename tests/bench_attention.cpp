// Decode attention bandwidth: bytes of K and V read per second by gen::cuda::attention, against the
// device's copy bandwidth (cudaMemcpy device to device, bytes read + written per second).
// Shape: GPT-2 small (H 12, D 64); batch B in {1, 8, 32, 64}, one row per slot at pos = context - 1.
// Each timed run replays a CUDA graph of many attention calls (as the decode step does), and the
// calls cycle through a pool of cache layers larger than L2 so that K and V come from HBM.
//   bench_attention [--dtype fp16|bf16|fp32] [--json] [--iters N] [--max-splits S]
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cuda/cuda_common.h"
#include "cuda_kernels.h"

using namespace gen::cuda;

namespace {

constexpr int kH = 12, kD = 64, kC = kH * kD, kMaxCtx = 1024;
constexpr size_t kPoolMin = size_t(1) << 30;  // cache pool: far beyond the 50-60 MB of an H100/H200 L2

struct Result {
  int batch, context;
  double us, kv_gbps, fraction;
};

// Milliseconds of `work` on `stream`, best of `reps` after one warm-up run.
template <typename F>
float best_ms(cudaStream_t stream, int reps, F&& work) {
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  work();
  float best = 1e30f;
  for (int i = 0; i < reps; ++i) {
    CUDA_CHECK(cudaEventRecord(start, stream));
    work();
    CUDA_CHECK(cudaEventRecord(stop, stream));
    CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    best = std::min(best, ms);
  }
  CUDA_CHECK(cudaEventDestroy(start));
  CUDA_CHECK(cudaEventDestroy(stop));
  return best;
}

double copy_gbps(cudaStream_t stream) {
  const size_t bytes = kPoolMin;
  DeviceBuffer<char> a(bytes), b(bytes);
  CUDA_CHECK(cudaMemset(a.get(), 1, bytes));
  const float ms = best_ms(stream, 5, [&] {
    CUDA_CHECK(cudaMemcpyAsync(b.get(), a.get(), bytes, cudaMemcpyDeviceToDevice, stream));
  });
  return 2.0 * bytes / (ms * 1e-3) / 1e9;
}

// One (batch, context) point: a graph of `iters` attention calls over distinct cache layers.
template <typename T>
Result bench_point(int B, int ctx, int iters, int max_splits, double copy, cudaStream_t stream) {
  const size_t layer_elems = size_t(B) * kH * kMaxCtx * kD;  // one of K or V
  const size_t layer_bytes = 2 * layer_elems * sizeof(T);
  const int n_layers = int(std::max<size_t>(2, kPoolMin / layer_bytes));
  DeviceBuffer<T> pool(2 * layer_elems * n_layers), qkv(size_t(B) * 3 * kC), out(size_t(B) * kC);
  // Byte 0x3c: finite values in every dtype (about 1.06 in fp16); speed does not depend on them.
  CUDA_CHECK(cudaMemset(pool.get(), 0x3c, pool.bytes()));
  CUDA_CHECK(cudaMemset(qkv.get(), 0x3c, qkv.bytes()));
  std::vector<int> h_slot(B), h_pos(B, ctx - 1);
  for (int b = 0; b < B; ++b) h_slot[b] = b;
  DeviceBuffer<int> slot(B), pos(B);
  CUDA_CHECK(cudaMemcpy(slot.get(), h_slot.data(), B * sizeof(int), cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(pos.get(), h_pos.data(), B * sizeof(int), cudaMemcpyHostToDevice));
  DeviceBuffer<float> partial(attention_workspace_floats(B, kH, kD, max_splits));
  const AttentionWorkspace ws{partial.get(), max_splits};
  auto call = [&](int i) {
    T* base = pool.get() + 2 * layer_elems * (i % n_layers);
    attention<T>(out.get(), qkv.get(), CacheLayer<T>{base, base + layer_elems, kMaxCtx}, slot.get(),
                 pos.get(), B, kH, kD, ws, stream);
  };
  call(0);  // loads the kernels before capture
  CUDA_CHECK(cudaStreamSynchronize(stream));

  cudaGraph_t graph;
  cudaGraphExec_t exec;
  CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < iters; ++i) call(i);
  CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  const float ms = best_ms(stream, 3, [&] { CUDA_CHECK(cudaGraphLaunch(exec, stream)); });
  CUDA_CHECK(cudaGraphExecDestroy(exec));
  CUDA_CHECK(cudaGraphDestroy(graph));

  const double s = ms * 1e-3 / iters, kv_bytes = 2.0 * B * kH * ctx * kD * sizeof(T);
  const double gbps = kv_bytes / s / 1e9;
  return {B, ctx, s * 1e6, gbps, gbps / copy};
}

template <typename T>
std::vector<Result> bench_all(int iters, int max_splits, double copy, cudaStream_t stream) {
  std::vector<Result> rs;
  for (int B : {1, 8, 32, 64})
    for (int ctx : {128, 512, 1024}) rs.push_back(bench_point<T>(B, ctx, iters, max_splits, copy, stream));
  return rs;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Decode attention: K/V bytes read per second against the device copy bandwidth"};
  std::string dtype = "fp16";
  bool json = false;
  int iters = 200, max_splits = 32;
  app.add_option("--dtype", dtype, "storage dtype")->check(CLI::IsMember({"fp16", "bf16", "fp32"}));
  app.add_flag("--json", json, "print one JSON object instead of the table");
  app.add_option("--iters", iters, "attention calls per timed graph")->check(CLI::Range(1, 100000));
  app.add_option("--max-splits", max_splits, "workspace splits per row")->check(CLI::Range(1, 64));
  CLI11_PARSE(app, argc, argv);
  try {
    cudaStream_t stream;
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    const double copy = copy_gbps(stream);
    const std::vector<Result> rs = dtype == "fp16" ? bench_all<__half>(iters, max_splits, copy, stream)
                                   : dtype == "bf16"
                                       ? bench_all<__nv_bfloat16>(iters, max_splits, copy, stream)
                                       : bench_all<float>(iters, max_splits, copy, stream);
    CUDA_CHECK(cudaStreamDestroy(stream));
    if (json) {
      nlohmann::json j = {{"bench", "attention"},
                          {"dtype", dtype},
                          {"H", kH},
                          {"D", kD},
                          {"max_splits", max_splits},
                          {"copy_gbps", copy},
                          {"results", nlohmann::json::array()}};
      for (const auto& r : rs)
        j["results"].push_back({{"batch", r.batch},
                                {"context", r.context},
                                {"us", r.us},
                                {"kv_gbps", r.kv_gbps},
                                {"fraction_of_copy", r.fraction}});
      std::cout << j.dump() << "\n";
      return 0;
    }
    std::printf("copy bandwidth %.0f GB/s (device to device, read + write)\n", copy);
    std::printf("decode attention, %s, H %d, D %d, max_splits %d\n", dtype.c_str(), kH, kD, max_splits);
    std::printf("%6s %8s %10s %10s %8s\n", "batch", "context", "us/call", "KV GB/s", "of copy");
    for (const auto& r : rs)
      std::printf("%6d %8d %10.2f %10.0f %7.0f%%\n", r.batch, r.context, r.us, r.kv_gbps, 100 * r.fraction);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
