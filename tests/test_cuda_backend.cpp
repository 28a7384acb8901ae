// The CUDA backend against the CPU backend (the reference): whole-model logits through the cache and
// without it, in fp32 (1e-4) and fp16/bf16 (1e-2 / 3e-2), greedy tokens, batches, graphs.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "fixture_model.h"
#include "cpu/cpu_backend.h"
#include "cuda/cuda_backend.h"
#include "gen/generator.h"
#include "gen/model.h"
#include "model/model_maker.h"
#include "gen/perplexity.h"
#include "perplexity_golden.h"
#include "random_inputs.h"
#include "test_util.h"

using namespace gen;
using namespace gen::test;

namespace {

double tolerance(ComputeDType dt) { return dt == ComputeDType::fp32 ? 1e-4 : dt == ComputeDType::fp16 ? 1e-2 : 3e-2; }
const char* dtype_name(ComputeDType dt) { return dt == ComputeDType::fp32 ? "fp32" : dt == ComputeDType::fp16 ? "fp16" : "bf16"; }

// A random checkpoint with GPT-2's head size (64) and vocabulary size, made on the fly.
std::shared_ptr<const Weights> gpt2_like(const TempDir& dir) {
  MakeModelSpec spec;
  spec.cfg.n_layer = 2;
  spec.cfg.n_head = 4;
  spec.cfg.n_embd = 256;
  spec.cfg.n_positions = 1100;
  spec.cfg.vocab_size = 50257;
  spec.init_std = 0.05f;
  return make_random_weights(dir.path(), spec);
}

}  // namespace

TEST_CASE("CUDA logits equal the CPU backend's through the cache in uneven chunks", "[cuda][backend]") {
  for (const char* name : kFixtureNames) {
    Fixture f = load_fixture(name);
    for (ComputeDType dt : {ComputeDType::fp32, ComputeDType::fp16, ComputeDType::bf16}) {
      auto gpu = make_cuda_backend(f.weights, dt);
      CpuBackend cpu(f.weights, 2);
      const int V = f.cfg.vocab_size, T = int(f.input_ids.size());
      auto gcache = gpu->make_cache(1, f.cfg.n_positions);
      auto ccache = cpu.make_cache(1, f.cfg.n_positions);
      std::vector<float> g(V), c(V);
      std::vector<int> cuts = {0, 3, 10};
      for (int t = 11; t <= T; ++t) cuts.push_back(t);
      for (size_t i = 1; i < cuts.size(); ++i) {
        SeqInput s{0, std::vector<int>(f.input_ids.begin() + cuts[i - 1], f.input_ids.begin() + cuts[i]), cuts[i - 1]};
        gpu->forward({s}, gcache.get(), g.data());
        cpu.forward({s}, ccache.get(), c.data());
        INFO(name << " " << dtype_name(dt) << " tokens " << cuts[i - 1] << ".." << cuts[i]);
        REQUIRE(check_logits_row(g.data(), c.data(), V, tolerance(dt)) == "");
      }
      // Without a cache: the whole sequence at once.
      gpu->forward({SeqInput{0, f.input_ids, 0}}, nullptr, g.data());
      INFO(name << " " << dtype_name(dt) << " no cache");
      REQUIRE(check_logits_row(g.data(), &f.logits[size_t(T - 1) * V], V, tolerance(dt)) == "");
    }
  }
}

TEST_CASE("CUDA at GPT-2's head size and vocabulary: long prefill, batch of uneven sequences", "[cuda][backend]") {
  TempDir dir;
  auto w = gpt2_like(dir);
  const int V = w->cfg.vocab_size;
  CpuBackend cpu(w, 2);
  for (ComputeDType dt : {ComputeDType::fp32, ComputeDType::fp16}) {
    auto gpu = make_cuda_backend(w, dt);
    // Lengths 1, 31, 64, 1025: one sequence each, then all four together in one batch.
    std::vector<SeqInput> batch;
    const int lens[4] = {1, 31, 64, 1025};
    for (int i = 0; i < 4; ++i) batch.push_back(SeqInput{i, random_ids(lens[i], V, i), 0});
    std::vector<float> together(4 * size_t(V)), ref(V);
    auto cache = gpu->make_cache(4, 1100);
    gpu->forward(batch, cache.get(), together.data());
    for (int i = 0; i < 4; ++i) {
      cpu.forward({batch[i]}, nullptr, ref.data());
      INFO(dtype_name(dt) << " sequence of " << lens[i] << " tokens in a batch");
      REQUIRE(check_logits_row(&together[size_t(i) * V], ref.data(), V, tolerance(dt)) == "");
    }
    // One decode step for all four, each at its own position, against the CPU's full recompute.
    std::vector<SeqInput> step;
    for (int i = 0; i < 4; ++i) step.push_back(SeqInput{i, {(i * 7919 + 13) % V}, lens[i]});
    gpu->forward(step, cache.get(), together.data());
    for (int i = 0; i < 4; ++i) {
      SeqInput full = batch[i];
      full.tokens.push_back(step[i].tokens[0]);
      cpu.forward({full}, nullptr, ref.data());
      INFO(dtype_name(dt) << " decode step after " << lens[i] << " tokens");
      REQUIRE(check_logits_row(&together[size_t(i) * V], ref.data(), V, tolerance(dt)) == "");
    }
  }
}

TEST_CASE("CUDA greedy tokens equal the CPU's in fp32, with the cache (graphs) and without", "[cuda][backend]") {
  for (const char* name : kFixtureNames) {
    Fixture f = load_fixture(name);
    Tokenizer tok = tiny_tokenizer(f.cfg.vocab_size);
    auto gpu = make_cuda_backend(f.weights, ComputeDType::fp32);
    Generator g(*gpu, tok);
    for (bool use_cache : {true, false}) {
      GenOptions o;
      o.max_new_tokens = int(f.greedy_new_tokens.size());
      o.sampling.temperature = 0;
      o.use_cache = use_cache;
      o.ignore_eos = true;
      INFO(name << (use_cache ? " with" : " without") << " the cache");
      REQUIRE(g.generate(f.prompt_ids, o).tokens == f.greedy_new_tokens);
    }
  }
}

TEST_CASE("CUDA sampling with a seed gives the CPU's tokens on the same model (fp32)", "[cuda][backend]") {
  Fixture f = load_fixture("tiny-f32");
  Tokenizer tok = tiny_tokenizer(f.cfg.vocab_size);
  auto gpu = make_cuda_backend(f.weights, ComputeDType::fp32);
  CpuBackend cpu(f.weights, 2);
  GenOptions o;
  o.max_new_tokens = 20;
  o.sampling = {0.8f, 40, 0.95f};
  o.ignore_eos = true;
  for (uint64_t seed : {1u, 2u, 3u}) {
    o.seed = seed;
    INFO("seed " << seed);
    REQUIRE(Generator(*gpu, tok).generate(f.prompt_ids, o).tokens == Generator(cpu, tok).generate(f.prompt_ids, o).tokens);
  }
}

TEST_CASE("CUDA forward_all and perplexity equal the CPU's, and the decode graphs still work after",
          "[cuda][backend][perplexity]") {
  const PerplexityGolden golden = load_perplexity_golden();
  for (const auto& [name, cases] : golden.models) {
    Fixture f = load_fixture(name);
    Tokenizer tok = tiny_tokenizer(f.cfg.vocab_size);
    CpuBackend cpu(f.weights, 2);
    const int V = f.cfg.vocab_size, T = int(f.input_ids.size());
    // Two sequences in one call, without a cache: rows [9 + T, V] in batch order.
    const std::vector<SeqInput> batch = {
        SeqInput{0, std::vector<int>(f.input_ids.begin(), f.input_ids.begin() + 9), 0},
        SeqInput{1, f.input_ids, 0}};
    std::vector<float> ref(size_t(9 + T) * V), got(ref.size());
    cpu.forward_all(batch, nullptr, ref.data());
    for (ComputeDType dt : {ComputeDType::fp32, ComputeDType::fp16, ComputeDType::bf16}) {
      auto gpu = make_cuda_backend(f.weights, dt);
      poison(got);  // every element must be written
      gpu->forward_all(batch, nullptr, got.data());
      for (int r = 0; r < 9 + T; ++r) {
        INFO(name << " " << dtype_name(dt) << " forward_all row " << r);
        REQUIRE(check_logits_row(&got[size_t(r) * V], &ref[size_t(r) * V], V, tolerance(dt)) == "");
      }
      // Through the cache: a chunk at pos0 3 against Hugging Face's rows 3..9.
      auto cache = gpu->make_cache(1, f.cfg.n_positions);
      const auto ids0 = f.input_ids.begin();
      gpu->forward_all({SeqInput{0, std::vector<int>(ids0, ids0 + 3), 0}}, cache.get(), got.data());
      gpu->forward_all({SeqInput{0, std::vector<int>(ids0 + 3, ids0 + 10), 3}}, cache.get(), got.data());
      for (int r = 0; r < 7; ++r) {
        INFO(name << " " << dtype_name(dt) << " cached chunk row " << r);
        REQUIRE(check_logits_row(&got[size_t(r) * V], &f.logits[size_t(3 + r) * V], V, tolerance(dt)) == "");
      }
      for (const PerplexityCase& c : cases) {
        const std::vector<int> ids(golden.ids.begin(), golden.ids.begin() + c.n_tokens);
        const PerplexityResult g = perplexity(*gpu, ids, c.context), h = perplexity(cpu, ids, c.context);
        INFO(name << " " << dtype_name(dt) << " " << c.n_tokens << " tokens, context " << c.context
                  << ": nll " << g.nll() << " cpu " << h.nll() << " hf " << c.nll);
        REQUIRE((g.windows == c.windows && g.tokens_scored == c.tokens_scored));
        REQUIRE(std::abs(g.nll() - h.nll()) <= tolerance(dt) * h.nll());
        REQUIRE(std::abs(g.nll() - c.nll) <= tolerance(dt) * c.nll);
      }
      if (dt == ComputeDType::fp32) {  // forward_all's buffers leave the captured decode step intact
        GenOptions o;
        o.max_new_tokens = int(f.greedy_new_tokens.size());
        o.sampling.temperature = 0;
        o.ignore_eos = true;
        INFO(name << " greedy through the cache after forward_all");
        REQUIRE(Generator(*gpu, tok).generate(f.prompt_ids, o).tokens == f.greedy_new_tokens);
        gpu->forward_all(batch, nullptr, got.data());
        REQUIRE(Generator(*gpu, tok).generate(f.prompt_ids, o).tokens == f.greedy_new_tokens);
      }
    }
  }
}

TEST_CASE("CUDA perplexity at GPT-2's vocabulary over 1024-token windows equals the CPU's",
          "[cuda][backend][perplexity]") {
  TempDir dir;
  auto w = gpt2_like(dir);
  CpuBackend cpu(w, 0);
  // 1024 + 1024 + 52 tokens: 206 MB of logits per full window, one window per call.
  const std::vector<int> ids = random_ids(2100, w->cfg.vocab_size, 5);
  const PerplexityResult h = perplexity(cpu, ids, 1024);
  REQUIRE((h.windows == 3 && h.tokens_scored == 2097));
  for (ComputeDType dt : {ComputeDType::fp32, ComputeDType::fp16}) {
    auto gpu = make_cuda_backend(w, dt);
    const PerplexityResult g = perplexity(*gpu, ids, 1024);
    INFO(dtype_name(dt) << ": nll " << g.nll() << " cpu " << h.nll());
    REQUIRE(g.tokens_scored == h.tokens_scored);
    REQUIRE(std::abs(g.nll() - h.nll()) <= tolerance(dt) * h.nll());
  }
}

TEST_CASE("CUDA continuous batching gives each prompt its tokens alone, at batch sizes 1, 3 and 16 (fp32)",
          "[cuda][batch]") {
  Fixture f = load_fixture("tiny-f32");
  Tokenizer tok = tiny_tokenizer(f.cfg.vocab_size);
  auto gpu = make_cuda_backend(f.weights, ComputeDType::fp32);
  CpuBackend cpu(f.weights, 2);
  Generator g(*gpu, tok);
  std::vector<Request> reqs(21);
  for (int i = 0; i < 21; ++i) {  // uneven prompts and budgets: slots free and refill mid-run
    reqs[i].index = i;
    reqs[i].prompt = random_ids(1 + (i * 7) % 30, f.cfg.vocab_size, 100 + i);
    reqs[i].opt.max_new_tokens = 1 + (i * 5) % 24;
    reqs[i].opt.sampling = {i % 2 ? 0.9f : 0.0f, 40, 1.0f};
    reqs[i].opt.seed = 7 + uint64_t(i);
  }
  std::vector<std::vector<int>> alone;
  for (const auto& r : reqs) {
    alone.push_back(g.generate(r.prompt, r.opt).tokens);
    REQUIRE(alone.back() == Generator(cpu, tok).generate(r.prompt, r.opt).tokens);
  }
  for (bool use_cache : {true, false}) {
    for (int batch : {1, 3, 16}) {
      std::vector<std::vector<int>> got(reqs.size());
      RunCallbacks cb;
      cb.on_done = [&](int i, GenResult&& r) { got[size_t(i)] = r.tokens; };
      GenOptions run_opt;
      run_opt.use_cache = use_cache;
      g.run(reqs, run_opt, batch, cb);
      INFO("batch " << batch << (use_cache ? " with" : " without") << " the cache");
      REQUIRE(got == alone);
    }
  }
}

TEST_CASE("CUDA decode graphs replayed over many steps at GPT-2's head size: split attention, growing "
          "positions, a refilled slot, another slot alone",
          "[cuda][backend][graph]") {
  // The fixtures' 64-position context never splits attention; here (1100 positions, 4 heads, batch
  // 1-2) every decode step splits the context, and the keys cross many 64-key chunk boundaries while
  // one captured graph per batch size replays. A graph that froze a step's positions, slots or split
  // plan would draw tokens the CPU does not rank first, or leave a cache the final eager step exposes.
  TempDir dir;
  auto w = gpt2_like(dir);
  const int V = w->cfg.vocab_size;
  CpuBackend cpu(w, 0);
  for (ComputeDType dt : {ComputeDType::fp32, ComputeDType::fp16}) {
    auto gpu = make_cuda_backend(w, dt);
    auto gcache = gpu->make_cache(2, 1100);
    auto ccache = cpu.make_cache(2, 1100);
    std::vector<std::vector<int>> seq = {random_ids(100, V, 11), random_ids(300, V, 12)};  // slot s: seq[s]
    std::vector<int> done = {0, 0};  // leading tokens of seq[s] in both caches
    std::vector<float> ref(2 * size_t(V)), got(2 * size_t(V));
    std::vector<int> next(2);
    auto batch_of = [&](const std::vector<int>& slots) {
      std::vector<SeqInput> b;
      for (int s : slots) b.push_back(SeqInput{s, std::vector<int>(seq[s].begin() + done[s], seq[s].end()), done[s]});
      return b;
    };
    // One greedy step on the GPU (a graph replay once each slot has one new token); each drawn token
    // must be the CPU's argmax up to the tolerance. Both backends continue with the GPU's tokens.
    auto step = [&](const std::vector<int>& slots) {
      const std::vector<SeqInput> batch = batch_of(slots);
      DrawParams greedy;
      greedy.sampling.temperature = 0;
      gpu->forward_sample(batch, gcache.get(), std::vector<DrawParams>(batch.size(), greedy), next.data());
      cpu.forward(batch, ccache.get(), ref.data());
      for (size_t i = 0; i < slots.size(); ++i) {
        const int s = slots[i];
        const float* r = &ref[i * size_t(V)];
        double top = r[0], scale = 0;
        for (int j = 0; j < V; ++j) {
          top = std::max(top, double(r[j]));
          scale = std::max(scale, double(std::fabs(r[j])));
        }
        INFO(dtype_name(dt) << " slot " << s << " drawing position " << seq[s].size() << ": token " << next[i]);
        REQUIRE((next[i] >= 0 && next[i] < V));
        REQUIRE(double(r[next[i]]) >= top - 4 * tolerance(dt) * scale);
        done[s] = int(seq[s].size());
        seq[s].push_back(next[i]);
      }
    };
    step({0, 1});                                 // two prefills (eager)
    for (int k = 0; k < 70; ++k) step({0, 1});   // batch-2 graph
    seq[0] = random_ids(37, V, 13);               // slot 0 refilled by a new prompt (pos0 0)
    done[0] = 0;
    step({0, 1});                                 // mixed: a prefill and a decode row (eager)
    for (int k = 0; k < 70; ++k) step({0, 1});   // the same batch-2 graph, slot 0 restarted
    for (int k = 0; k < 40; ++k) step({1});      // a batch-1 graph on slot 1
    // One eager step for both: logits through the K and V the graph replays wrote.
    const std::vector<SeqInput> last = batch_of({0, 1});
    gpu->forward(last, gcache.get(), got.data());
    cpu.forward(last, ccache.get(), ref.data());
    for (int i = 0; i < 2; ++i) {
      INFO(dtype_name(dt) << " final eager step of slot " << i << " at position " << last[i].pos0);
      REQUIRE(check_logits_row(&got[size_t(i) * V], &ref[size_t(i) * V], V, tolerance(dt)) == "");
    }
  }
}

TEST_CASE("CUDA on a padded vocabulary draws what the CPU draws, never a padded id, and NaN logits stop it",
          "[cuda][backend]") {
  TempDir dir;
  make_padded_pair(dir / "plain", dir / "padded", 260, 300);
  const Model padded = load_model(dir / "padded");
  auto gpu = make_cuda_backend(padded.weights, ComputeDType::fp32);
  CpuBackend cpu(padded.weights, 2);
  const std::vector<int> prompt = padded.tokenizer->encode("Padded rows, masked.");
  for (float t : {0.0f, 0.8f}) {
    for (bool use_cache : {true, false}) {  // with the cache, decode steps replay graphs
      GenOptions o;
      o.max_new_tokens = 24;
      o.sampling = {t, 0, 0.95f};
      o.seed = 3;
      o.use_cache = use_cache;
      o.ignore_eos = true;
      INFO("temperature " << t << (use_cache ? " with" : " without") << " the cache");
      const GenResult a = Generator(*gpu, *padded.tokenizer).generate(prompt, o);
      REQUIRE(a.tokens == Generator(cpu, *padded.tokenizer).generate(prompt, o).tokens);
      REQUIRE(*std::max_element(a.tokens.begin(), a.tokens.end()) < 260);
    }
  }
  std::vector<float> logits(300);
  gpu->forward({SeqInput{0, prompt, 0}}, nullptr, logits.data());
  REQUIRE(std::all_of(logits.begin() + 260, logits.end(), [](float v) { return v == -INFINITY; }));

  // ln_f's gain and bias near fp32's limit: the logits overflow, and the run stops at step 0.
  auto w = std::make_shared<Weights>(Weights::load(SafeTensors(dir / "padded/model.safetensors"), padded.cfg));
  float* gain = w->data.data() + (w->lnf_w - w->data.data());
  float* bias = w->data.data() + (w->lnf_b - w->data.data());
  std::fill(gain, gain + padded.cfg.n_embd, 1e38f);
  std::fill(bias, bias + padded.cfg.n_embd, 3.4e38f);
  auto bad = make_cuda_backend(w, ComputeDType::fp32);
  GenOptions o;
  o.max_new_tokens = 4;
  REQUIRE_THROWS_WITH(Generator(*bad, *padded.tokenizer).generate(prompt, o),
                      "the logits at step 0 are not finite (NaN or Inf)");
}

TEST_CASE("CUDA fp16 and bf16 equal the CPU on a checkpoint with GPT-2's outlier channels", "[cuda][backend][outliers]") {
  // gen-make-model --outliers: three residual channels reach 2000-3000 (fp16 keeps steps of 2 there,
  // bf16 of 16), the layernorms' statistics are theirs, and every row, prefilled or decoded through the
  // cache, must still give the CPU's logits. test_outliers.cpp shows the channels are there.
  TempDir dir;
  MakeModelSpec spec;
  spec.cfg.n_layer = 4;
  spec.cfg.n_head = 12;
  spec.cfg.n_embd = 768;
  spec.cfg.n_positions = 256;
  spec.cfg.vocab_size = 50257;
  spec.outliers = 3;
  auto w = make_random_weights(dir.path(), spec);
  const int V = w->cfg.vocab_size, T = 100, P = 90;
  CpuBackend cpu(w, 0);
  const std::vector<int> ids = random_ids(T, V, 21);
  std::vector<float> ref(size_t(T) * V), got(size_t(P) * V);
  cpu.forward_all({SeqInput{0, ids, 0}}, nullptr, ref.data());
  for (ComputeDType dt : {ComputeDType::fp32, ComputeDType::fp16, ComputeDType::bf16}) {
    auto gpu = make_cuda_backend(w, dt);
    auto cache = gpu->make_cache(1, spec.cfg.n_positions);
    gpu->forward_all({SeqInput{0, std::vector<int>(ids.begin(), ids.begin() + P), 0}}, cache.get(), got.data());
    for (int r = 0; r < P; ++r) {
      INFO(dtype_name(dt) << " outliers, prefill row " << r);
      REQUIRE(check_logits_row(&got[size_t(r) * V], &ref[size_t(r) * V], V, tolerance(dt)) == "");
    }
    for (int t = P; t < T; ++t) {
      gpu->forward({SeqInput{0, {ids[size_t(t)]}, t}}, cache.get(), got.data());
      INFO(dtype_name(dt) << " outliers, decode row " << t);
      REQUIRE(check_logits_row(got.data(), &ref[size_t(t) * V], V, tolerance(dt)) == "");
    }
  }
}
