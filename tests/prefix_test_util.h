// Requests for the prefix cache's tests on both backends (test_prefix_cache.cpp, test_cuda_prefix.cpp):
// prompts that share prefixes in several ways, and what each can reuse from the prompts before it.
#pragma once
#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <vector>

#include "cpu/cpu_backend.h"
#include "fixture_model.h"
#include "gen/generator.h"
#include "gen/prefix_cache.h"
#include "model/model_maker.h"
#include "test_util.h"

namespace gen::test {

// The model of these tests: room for long prompts (256 positions), 2 layers of 2 heads of 32, and the
// stand-in tokenizer's 320 ids (tiny_tokenizer(320)).
inline MakeModelSpec prefix_model_spec() {
  MakeModelSpec spec;
  spec.cfg.n_layer = 2;
  spec.cfg.n_head = 2;
  spec.cfg.n_embd = 64;
  spec.cfg.n_positions = 256;
  spec.cfg.vocab_size = 320;
  spec.cfg.eos_token_id = 319;
  spec.init_std = 0.1f;
  spec.seed = 11;
  return spec;
}

// The tests' model (prefix_model_spec) on the CPU backend, with the stand-in tokenizer.
struct CpuRig {
  CpuRig() : tok(tiny_tokenizer(320)) {
    w = make_random_weights(dir.path(), prefix_model_spec());
    be = std::make_unique<CpuBackend>(w, 2);
  }
  TempDir dir;
  std::shared_ptr<const Weights> w;
  std::unique_ptr<CpuBackend> be;
  Tokenizer tok;
};

// A run of every request at `batch`, its results by request index (each exactly once).
inline std::map<int, GenResult> run_all(Generator& g, const std::vector<Request>& reqs, int batch) {
  std::map<int, GenResult> out;
  RunCallbacks cb;
  cb.on_done = [&](int i, GenResult&& r) {
    REQUIRE(out.count(i) == 0);
    out[i] = std::move(r);
  };
  g.run(reqs, GenOptions{}, batch, cb);
  REQUIRE(out.size() == reqs.size());
  return out;
}

inline std::vector<int> random_ids(std::mt19937& rng, int n) {
  std::vector<int> ids(static_cast<size_t>(n));
  for (int& id : ids) id = int(rng() % 300u);
  return ids;
}

// Requests that share prefixes in several ways: one long shared prefix with suffixes of 1..20 tokens,
// a prompt that is the prefix itself, one of exactly two blocks of it, two that share only its first
// 20 tokens, and unrelated ones.
inline std::vector<Request> sharing_requests(std::mt19937& rng, float temperature) {
  const std::vector<int> shared = random_ids(rng, 70);
  std::vector<std::vector<int>> prompts;
  for (int i = 0; i < 12; ++i) {
    std::vector<int> p = shared;
    const auto suffix = random_ids(rng, 1 + int(rng() % 20u));
    p.insert(p.end(), suffix.begin(), suffix.end());
    prompts.push_back(p);
  }
  prompts.insert(prompts.begin() + 3, shared);
  prompts.insert(prompts.begin() + 5, std::vector<int>(shared.begin(), shared.begin() + 2 * PrefixCache::kBlock));
  for (int i = 0; i < 2; ++i) {
    std::vector<int> p(shared.begin(), shared.begin() + 20);
    const auto suffix = random_ids(rng, 30);
    p.insert(p.end(), suffix.begin(), suffix.end());
    prompts.insert(prompts.begin() + 2 + 6 * i, p);
  }
  prompts.insert(prompts.begin() + 1, random_ids(rng, 40));
  prompts.push_back(random_ids(rng, 3));
  std::vector<Request> reqs(prompts.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    reqs[i].index = int(i);
    reqs[i].prompt = prompts[i];
    reqs[i].opt.max_new_tokens = 1 + int(rng() % 12u);
    reqs[i].opt.sampling.temperature = temperature;
    reqs[i].opt.seed = 500 + i;
  }
  return reqs;
}

// What request i can copy: the whole blocks it shares with any earlier request (all but its last token).
inline int expected_reuse(const std::vector<Request>& reqs, size_t i) {
  int best = 0;
  const auto& p = reqs[i].prompt;
  for (size_t j = 0; j < i; ++j) {
    const auto& q = reqs[j].prompt;
    size_t n = 0;
    while (n + 1 < p.size() && n < q.size() && p[n] == q[n]) ++n;
    best = std::max(best, int(n) / PrefixCache::kBlock * PrefixCache::kBlock);
  }
  return best;
}

}  // namespace gen::test
