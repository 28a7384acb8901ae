// The generation loop on the CPU backend against Hugging Face's greedy continuations, and its stop
// conditions, streaming and seeding.
#include <catch2/catch.hpp>

#include "fixture_model.h"
#include "cpu/cpu_backend.h"
#include "gen/error.h"
#include "gen/generator.h"
#include "model/safetensors.h"
#include "test_util.h"

using namespace gen;
using namespace gen::test;

namespace {
GenOptions greedy(int n, bool use_cache) {
  GenOptions o;
  o.max_new_tokens = n;
  o.sampling.temperature = 0;
  o.use_cache = use_cache;
  o.ignore_eos = true;  // the fixtures were generated with eos_token_id=None
  return o;
}
}  // namespace

TEST_CASE("Greedy tokens equal Hugging Face generate(), with and without the cache", "[generator]") {
  for (const char* name : kFixtureNames) {
    Fixture f = load_fixture(name);
    CpuBackend be(f.weights, 2);
    Tokenizer tok = tiny_tokenizer(f.cfg.vocab_size);
    Generator g(be, tok);
    const int n = int(f.greedy_new_tokens.size());
    for (bool use_cache : {true, false}) {
      GenResult r = g.generate(f.prompt_ids, greedy(n, use_cache));
      INFO(name << (use_cache ? " with" : " without") << " the cache");
      REQUIRE(r.tokens == f.greedy_new_tokens);
      REQUIRE(r.finish_reason == "length");
      REQUIRE(r.timing.decode_steps == n - 1);
      REQUIRE(r.kv_bytes_allocated == (use_cache ? KVCache::bytes_for(f.cfg.n_layer, f.cfg.n_embd, 1,
                                                                        f.cfg.n_positions, 4)
                                                 : 0));
    }
  }
}

TEST_CASE("Generation stops at EOS, at the context, or at the token budget", "[generator]") {
  Fixture f = load_fixture("tiny-f32");
  Tokenizer tok = tiny_tokenizer(f.cfg.vocab_size);
  const auto& expect = f.greedy_new_tokens;
  const int P = int(f.prompt_ids.size());

  SECTION("EOS is the 4th greedy token: 4 tokens, the EOS included, not in the text") {
    ModelConfig cfg = f.cfg;
    cfg.eos_token_id = expect[3];
    CpuBackend be(std::make_shared<Weights>(Weights::load(SafeTensors(f.dir + "/model.safetensors"), cfg)), 1);
    Generator g(be, tok);
    GenOptions o = greedy(20, true);
    o.ignore_eos = false;
    GenResult r = g.generate(f.prompt_ids, o);
    REQUIRE(r.finish_reason == "eos");
    REQUIRE(r.tokens == std::vector<int>(expect.begin(), expect.begin() + 4));
    REQUIRE(r.text == tok.decode(std::vector<int>(expect.begin(), expect.begin() + 3)));
    o.ignore_eos = true;
    REQUIRE(g.generate(f.prompt_ids, o).tokens.size() == 20);
  }
  SECTION("a context of prompt + 3 positions: 3 tokens, finish 'context'") {
    CpuBackend be(f.weights, 1);
    Generator g(be, tok);
    for (bool use_cache : {true, false}) {
      GenOptions o = greedy(20, use_cache);
      o.max_ctx = P + 3;
      GenResult r = g.generate(f.prompt_ids, o);
      REQUIRE(r.finish_reason == "context");
      REQUIRE(r.tokens == std::vector<int>(expect.begin(), expect.begin() + 3));
      o.max_new_tokens = 3;  // exactly filling the context is the budget's doing
      REQUIRE(g.generate(f.prompt_ids, o).finish_reason == "length");
      o.max_ctx = P - 1;
      REQUIRE_THROWS_AS(g.generate(f.prompt_ids, o), InputError);
    }
  }
  SECTION("a prompt longer than the context is an input error") {
    CpuBackend be(f.weights, 1);
    Generator g(be, tok);
    REQUIRE_THROWS_WITH(g.encode_prompt(std::string(100, 'x'), 40),
                        Catch::Contains("prompt is") && Catch::Contains("longer than the context of 40"));
    REQUIRE(g.encode_prompt("", 40) == std::vector<int>{f.cfg.vocab_size - 1});  // empty prompt: EOS
  }
}

TEST_CASE("Streamed text equals the decoded tokens, and a seed fixes a sampled continuation", "[generator]") {
  Fixture f = load_fixture("tiny-f16");
  CpuBackend be(f.weights, 2);
  Tokenizer tok = tiny_tokenizer(f.cfg.vocab_size);
  Generator g(be, tok);
  GenOptions o;
  o.max_new_tokens = 25;
  o.sampling = {0.9f, 50, 0.95f};
  o.ignore_eos = true;
  auto run = [&](uint64_t seed, bool use_cache) {
    o.seed = seed;
    o.use_cache = use_cache;
    std::string streamed;
    GenResult r = g.generate(f.prompt_ids, o, [&](const std::string& s) { streamed += s; });
    REQUIRE(streamed == r.text);
    REQUIRE(r.text == tok.decode(r.tokens));
    return r.tokens;
  };
  const auto a = run(11, true);
  REQUIRE(a == run(11, true));
  REQUIRE(a == run(11, false));  // same logits, same draws
  REQUIRE(a != run(12, true));
}
