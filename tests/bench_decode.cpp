// bench_decode: CUDA decode tokens/s at batch 1/8/64 (captured graphs, sampling on the GPU) and
// prefill tokens/s at 128/512/1024 tokens, on a GPT-2 shaped model (random weights: speed does not
// depend on their values). Decode at batch 1 is set against the bandwidth bound: weight bytes per
// step over the measured device copy bandwidth.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cuda/cuda_backend.h"
#include "cuda/cuda_common.h"
#include "model/model_maker.h"
#include "model/safetensors.h"

using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Device-to-device copy, best of several: bytes read + written per second.
double copy_bandwidth() {
  const size_t n = size_t(1) << 30;
  gen::cuda::DeviceBuffer<char> a(n), b(n);
  cudaEvent_t e0, e1;
  CUDA_CHECK(cudaEventCreate(&e0));
  CUDA_CHECK(cudaEventCreate(&e1));
  float best_ms = 1e30f;
  for (int rep = 0; rep < 10; ++rep) {
    CUDA_CHECK(cudaEventRecord(e0));
    CUDA_CHECK(cudaMemcpy(b.get(), a.get(), n, cudaMemcpyDeviceToDevice));
    CUDA_CHECK(cudaEventRecord(e1));
    CUDA_CHECK(cudaEventSynchronize(e1));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
    best_ms = std::min(best_ms, ms);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return 2.0 * n / (best_ms * 1e-3);
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir, dtype = "fp16";
  gen::MakeModelSpec spec;
  spec.cfg = gen::ModelConfig::builtin("gpt2");
  auto& c = spec.cfg;
  int steps = 200;
  bool json = false;
  CLI::App app{"bench_decode: CUDA decode and prefill speed"};
  app.add_option("--model", model_dir, "checkpoint directory (default: random GPT-2 124M shape)");
  app.add_option("--layers", c.n_layer);
  app.add_option("--heads", c.n_head);
  app.add_option("--embd", c.n_embd);
  app.add_option("--dtype", dtype)->check(CLI::IsMember({"fp32", "fp16", "bf16"}));
  app.add_option("--steps", steps, "decode steps timed per batch size");
  app.add_flag("--json", json, "print one JSON object");
  CLI11_PARSE(app, argc, argv);
  try {
    if (model_dir.empty()) {
      model_dir = "bench_models/random-L" + std::to_string(c.n_layer) + "-C" + std::to_string(c.n_embd);
      if (!std::filesystem::exists(model_dir + "/model.safetensors")) gen::make_random_model(model_dir, spec);
    }
    gen::ModelConfig cfg = gen::ModelConfig::load(model_dir + "/config.json");
    gen::SafeTensors st(model_dir + "/model.safetensors");
    auto w = std::make_shared<gen::Weights>(gen::Weights::load(st, cfg));
    auto be = gen::make_cuda_backend(w, gen::parse_compute_dtype(dtype));
    const double elem = dtype == "fp32" ? 4 : 2;
    const double weight_bytes = double(cfg.n_params()) * elem;
    const double bw = copy_bandwidth();
    nlohmann::json out = {{"model", model_dir}, {"dtype", dtype}, {"params", cfg.n_params()},
                          {"copy_bandwidth_GBps", bw / 1e9}};
    const int prompt = 16;
    for (int B : {1, 8, 64}) {
      auto cache = be->make_cache(B, cfg.n_positions);
      std::vector<gen::SeqInput> batch(B);
      std::vector<gen::DrawParams> draws(B);
      std::vector<int> next(B);
      for (int i = 0; i < B; ++i) {
        batch[i] = {i, std::vector<int>(prompt, (i * 131 + 7) % cfg.vocab_size), 0};
        draws[i].sampling.temperature = 0;
      }
      be->forward_sample(batch, cache.get(), draws, next.data());
      auto step = [&](int s) {
        for (int i = 0; i < B; ++i) batch[i] = {i, {next[i]}, prompt + s};
        be->forward_sample(batch, cache.get(), draws, next.data());
      };
      for (int s = 0; s < 10; ++s) step(s);  // warm-up: graph capture
      auto t0 = Clock::now();
      for (int s = 10; s < 10 + steps; ++s) step(s);
      const double secs = seconds_since(t0);
      const double ms_per_step = secs * 1e3 / steps;
      out["decode"].push_back({{"batch", B}, {"ms_per_step", ms_per_step}, {"tokens_per_s", B * steps / secs},
                               {"weight_bandwidth_fraction", weight_bytes / (ms_per_step * 1e-3) / bw}});
    }
    for (int T : {128, 512, 1024}) {
      auto cache = be->make_cache(1, cfg.n_positions);
      std::vector<float> logits(cfg.vocab_size);
      gen::SeqInput s{0, std::vector<int>(T, 42), 0};
      be->forward({s}, cache.get(), logits.data());  // warm-up
      const int reps = 10;
      auto t0 = Clock::now();
      for (int r = 0; r < reps; ++r) be->forward({s}, cache.get(), logits.data());
      const double secs = seconds_since(t0) / reps;
      out["prefill"].push_back({{"tokens", T}, {"ms", secs * 1e3}, {"tokens_per_s", T / secs}});
    }
    if (json) {
      std::printf("%s\n", out.dump().c_str());
      return 0;
    }
    std::printf("bench_decode: %s, %s, %.1f M params, copy bandwidth %.0f GB/s\n", model_dir.c_str(), dtype.c_str(),
                cfg.n_params() / 1e6, bw / 1e9);
    for (auto& d : out["decode"]) {
      std::printf("decode  batch %3d  %8.3f ms/step  %10.0f tok/s  weights read at %5.1f%% of copy bandwidth\n",
                  d["batch"].get<int>(), d["ms_per_step"].get<double>(), d["tokens_per_s"].get<double>(),
                  100 * d["weight_bandwidth_fraction"].get<double>());
    }
    for (auto& p : out["prefill"]) {
      std::printf("prefill %5d tokens  %8.3f ms  %10.0f tok/s\n", p["tokens"].get<int>(), p["ms"].get<double>(),
                  p["tokens_per_s"].get<double>());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
