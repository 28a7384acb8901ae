// bench_cpu_decode: CPU decode speed at batch 1 against the machine's memory bandwidth.
// Decode reads every weight once per token, so the bound is weight bytes / copy bandwidth.
//   bench_cpu_decode --model DIR            a checkpoint on disk
//   bench_cpu_decode --layers 12 --embd 768 a random one of that shape (default: GPT-2 124M)
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "cpu/cpu_backend.h"
#include "model/model_maker.h"
#include "model/safetensors.h"
#include "gen/sampler.h"

using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Best of several memcpy passes over buffers far larger than the caches; counts bytes read + written.
double copy_bandwidth() {
  const size_t n = size_t(512) << 20;
  std::vector<char> a(n, 1), b(n, 2);
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    auto t0 = Clock::now();
    std::memcpy(b.data(), a.data(), n);
    best = std::max(best, 2.0 * n / seconds_since(t0));
    a[rep] = b[n - 1 - rep];  // keep the copies observable
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir;
  gen::MakeModelSpec spec;
  spec.cfg = gen::ModelConfig::builtin("gpt2");
  auto& c = spec.cfg;
  int steps = 64, prompt = 16, threads = 0;
  CLI::App app{"bench_cpu_decode: CPU decode tokens/s against the memory bandwidth bound"};
  app.add_option("--model", model_dir, "checkpoint directory (default: a random one of the given shape)");
  app.add_option("--layers", c.n_layer);
  app.add_option("--heads", c.n_head);
  app.add_option("--embd", c.n_embd);
  app.add_option("--vocab", c.vocab_size);
  app.add_option("--steps", steps, "decode steps timed");
  app.add_option("--prompt", prompt, "prompt tokens before the timed steps");
  app.add_option("--threads", threads);
  CLI11_PARSE(app, argc, argv);
  try {
    if (model_dir.empty()) {
      model_dir = "bench_models/random-L" + std::to_string(c.n_layer) + "-C" + std::to_string(c.n_embd) + "-V" +
                  std::to_string(c.vocab_size);
      if (!std::filesystem::exists(model_dir + "/model.safetensors")) gen::make_random_model(model_dir, spec);
    }
    gen::ModelConfig cfg = gen::ModelConfig::load(model_dir + "/config.json");
    gen::SafeTensors st(model_dir + "/model.safetensors");
    auto w = std::make_shared<gen::Weights>(gen::Weights::load(st, cfg));
    gen::CpuBackend be(w, threads);
    auto cache = be.make_cache(1, prompt + steps + 1);
    std::vector<float> logits(cfg.vocab_size);
    std::vector<gen::SeqInput> batch(1);
    batch[0].tokens.resize(prompt);
    for (int i = 0; i < prompt; ++i) batch[0].tokens[i] = (i * 7919) % cfg.vocab_size;
    be.forward(batch, cache.get(), logits.data());
    double kv_bytes = 0;
    auto t0 = Clock::now();
    for (int s = 0; s < steps; ++s) {
      batch[0].tokens = {gen::argmax(logits.data(), cfg.vocab_size)};
      batch[0].pos0 = prompt + s;
      be.forward(batch, cache.get(), logits.data());
      kv_bytes += 2.0 * cfg.n_layer * (prompt + s + 1) * cfg.n_embd * sizeof(float);
    }
    const double secs = seconds_since(t0);
    const double weight_bytes = double(cfg.n_params()) * sizeof(float);
    const double bytes_per_token = weight_bytes + kv_bytes / steps;
    const double bw = copy_bandwidth();
    const double achieved = bytes_per_token * steps / secs;
    std::printf("model            %s (%d layers, n_embd %d, vocab %d, %.1f M params)\n", model_dir.c_str(),
                cfg.n_layer, cfg.n_embd, cfg.vocab_size, cfg.n_params() / 1e6);
    std::printf("decode           %.3f ms/token, %.1f tokens/s (batch 1, %d steps after a %d-token prompt)\n",
                secs * 1e3 / steps, steps / secs, steps, prompt);
    std::printf("bytes per token  %.1f MB (fp32 weights + KV cache read)\n", bytes_per_token / 1e6);
    std::printf("copy bandwidth   %.2f GB/s (memcpy, read + write)\n", bw / 1e9);
    std::printf("achieved         %.2f GB/s = %.0f%% of the copy bandwidth; bound %.1f tokens/s\n", achieved / 1e9,
                100.0 * achieved / bw, bw / bytes_per_token);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
