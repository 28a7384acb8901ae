// bench_cpu_decode: CPU decode speed against the machine's memory bandwidth, per dtype and batch.
// A decode step reads every weight once (in the run's dtype) and the KV cache, so the bound is those
// bytes over the copy bandwidth, measured with the same threads as the decode.
//   bench_cpu_decode --model DIR            a checkpoint on disk
//   bench_cpu_decode --layers 12 --embd 768 a random one of that shape (default: GPT-2 124M)
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <new>
#include <vector>

#include <omp.h>
#include <sys/mman.h>

#include "cpu/cpu_backend.h"
#include "model/model_maker.h"
#include "model/safetensors.h"
#include "gen/sampler.h"

using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Best of several memcpy passes over buffers far larger than the caches, each of `threads` threads
// copying its own slice (a single-thread copy understates what a threaded decode reaches); counts
// bytes read + written.
double copy_bandwidth(int threads) {
  const size_t n = size_t(512) << 20;
  std::vector<char> a(n, 1), b(n, 2);
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    auto t0 = Clock::now();
#pragma omp parallel num_threads(threads)
    {
      const size_t part = n / size_t(omp_get_num_threads()), at = part * size_t(omp_get_thread_num());
      std::memcpy(b.data() + at, a.data() + at, part);
    }
    best = std::max(best, 2.0 * n / seconds_since(t0));
    a[rep] = b[n - 1 - rep];  // keep the copies observable
  }
  return best;
}

// Best of several passes that only read (a sum) over a buffer far larger than the caches, with
// `threads` threads: what a decode, which reads its weights and writes almost nothing, can reach.
// On huge pages where the kernel gives them, as cpu::Linear holds its weights.
double read_bandwidth(int threads) {
  const size_t n = size_t(512) << 20, words = n / sizeof(uint64_t);
  std::unique_ptr<uint64_t, decltype(&std::free)> buf(static_cast<uint64_t*>(std::aligned_alloc(size_t(2) << 20, n)),
                                                      &std::free);
  if (!buf) throw std::bad_alloc();
  madvise(buf.get(), n, MADV_HUGEPAGE);
  uint64_t* a = buf.get();
  std::fill(a, a + words, uint64_t(3));
  double best = 0;
  uint64_t total = 0;
  for (int rep = 0; rep < 5; ++rep) {
    auto t0 = Clock::now();
    uint64_t sum = 0;
#pragma omp parallel for simd num_threads(threads) schedule(static) reduction(+ : sum)
    for (size_t i = 0; i < words; ++i) sum += a[i];
    best = std::max(best, double(n) / seconds_since(t0));
    total += sum;
  }
  if (total == 1) std::printf(" ");  // keep the sums observable
  return best;
}

// Bytes of weights one step reads: the layers' matrices and the tied LM head in the dtype (int8: plus
// an fp32 scale per output column), everything else fp32.
double weight_bytes(const gen::ModelConfig& c, gen::cpu::Precision p) {
  const double matrix = double(c.matrix_params()), scales = double(c.matrix_columns());
  const double rest = double(c.n_params()) - matrix;
  if (p == gen::cpu::Precision::fp32) return 4 * double(c.n_params());
  if (p == gen::cpu::Precision::bf16) return 2 * matrix + 4 * rest;
  return matrix + 4 * scales + 4 * rest;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir;
  gen::MakeModelSpec spec;
  spec.cfg = gen::ModelConfig::builtin("gpt2");
  auto& c = spec.cfg;
  int steps = 64, prompt = 16, threads = 0, batch_size = 1;
  std::string dtype = "fp32";
  CLI::App app{"bench_cpu_decode: CPU decode tokens/s against the memory bandwidth bound"};
  app.add_option("--model", model_dir, "checkpoint directory (default: a random one of the given shape)");
  app.add_option("--layers", c.n_layer);
  app.add_option("--heads", c.n_head);
  app.add_option("--embd", c.n_embd);
  app.add_option("--vocab", c.vocab_size);
  app.add_option("--steps", steps, "decode steps timed");
  app.add_option("--prompt", prompt, "prompt tokens before the timed steps");
  app.add_option("--threads", threads);
  app.add_option("--dtype", dtype, "fp32 | bf16 | int8");
  app.add_option("--batch", batch_size, "sequences decoded together");
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
    const gen::cpu::Precision precision = gen::cpu::parse_dtype(dtype);
    gen::CpuBackend be(w, threads, precision);
    const int B = std::max(1, batch_size);
    auto cache = be.make_cache(B, prompt + steps + 1);
    std::vector<float> logits(size_t(B) * cfg.vocab_size);
    std::vector<gen::SeqInput> batch(B);
    for (int b = 0; b < B; ++b) {
      batch[b].slot = b;
      batch[b].tokens.resize(prompt);
      for (int i = 0; i < prompt; ++i) batch[b].tokens[i] = (i * 7919 + b * 104729) % cfg.vocab_size;
    }
    be.forward(batch, cache.get(), logits.data());
    double kv_bytes = 0;
    auto t0 = Clock::now();
    for (int s = 0; s < steps; ++s) {
      for (int b = 0; b < B; ++b) {
        batch[b].tokens = {gen::argmax(&logits[size_t(b) * cfg.vocab_size], cfg.vocab_size)};
        batch[b].pos0 = prompt + s;
      }
      be.forward(batch, cache.get(), logits.data());
      kv_bytes += B * 2.0 * cfg.n_layer * (prompt + s + 1) * cfg.n_embd * sizeof(float);
    }
    const double secs = seconds_since(t0);
    const double bytes_per_step = weight_bytes(cfg, precision) + kv_bytes / steps;
    const int bw_threads = threads > 0 ? threads : omp_get_num_procs();
    const double bw = copy_bandwidth(bw_threads), read_bw = read_bandwidth(bw_threads);
    const double achieved = bytes_per_step * steps / secs;
    std::printf("model            %s (%d layers, n_embd %d, vocab %d, %.1f M params)\n", model_dir.c_str(),
                cfg.n_layer, cfg.n_embd, cfg.vocab_size, cfg.n_params() / 1e6);
    std::printf("decode           %s, %.3f ms/step, %.1f tokens/s (batch %d, %d steps after a %d-token prompt)\n",
                be.dtype().c_str(), secs * 1e3 / steps, B * steps / secs, B, steps, prompt);
    std::printf("bytes per step   %.1f MB (%s weights + KV cache read)\n", bytes_per_step / 1e6, be.dtype().c_str());
    std::printf("copy bandwidth   %.2f GB/s (memcpy on %d threads, read + write)\n", bw / 1e9, bw_threads);
    std::printf("read bandwidth   %.2f GB/s (a sum on %d threads, read only)\n", read_bw / 1e9, bw_threads);
    std::printf("achieved         %.2f GB/s = %.0f%% of the read bandwidth, %.0f%% of the copy bandwidth; bound %.1f tokens/s\n",
                achieved / 1e9, 100.0 * achieved / read_bw, 100.0 * achieved / bw, B * read_bw / bytes_per_step);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
