// The generation loop on the CPU backend against Hugging Face's greedy continuations, and its stop
// conditions, streaming and seeding.
#include <catch2/catch.hpp>

#include "fixture_model.h"
#include "cpu/cpu_backend.h"
#include "gen/error.h"
#include "gen/generator.h"
#include "gen/model.h"
#include "model/safetensors.h"
#include "model_test_util.h"
#include "test_util.h"

#include <algorithm>
#include <cmath>

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

TEST_CASE("A batch run's cache holds what its longest request needs, and no more than the context", "[generator]") {
  Fixture f = load_fixture("tiny-f32");
  Tokenizer tok = tiny_tokenizer(f.cfg.vocab_size);
  CpuBackend be(f.weights, 1);
  Generator g(be, tok);
  const int P = int(f.prompt_ids.size());
  for (int extra : {3, 100000}) {  // prompt + 3 + 5 positions; or more than the context holds
    std::vector<Request> reqs(2);
    reqs[0].prompt = f.prompt_ids;
    reqs[0].opt = greedy(3, true);
    reqs[1].index = 1;
    reqs[1].prompt = std::vector<int>(f.prompt_ids.begin(), f.prompt_ids.begin() + P - 1);
    reqs[1].opt = greedy(extra + 5, true);
    std::vector<GenResult> out(2);
    RunCallbacks cb;
    cb.on_done = [&](int i, GenResult&& r) { out[size_t(i)] = std::move(r); };
    g.run(reqs, reqs[0].opt, 2, cb);
    const int positions = std::min(P - 1 + extra + 5, f.cfg.n_positions);
    INFO("extra " << extra);
    REQUIRE(out[0].kv_bytes_allocated == KVCache::bytes_for(f.cfg.n_layer, f.cfg.n_embd, 2, positions, 4));
    REQUIRE(out[0].tokens == std::vector<int>(f.greedy_new_tokens.begin(), f.greedy_new_tokens.begin() + 3));
    REQUIRE(out[1].finish_reason == (extra > 3 ? "context" : "length"));
    REQUIRE(int(out[1].tokens.size()) == (extra > 3 ? f.cfg.n_positions - (P - 1) : extra + 5));
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

TEST_CASE("A vocabulary padded past the tokenizer never draws a padded id", "[generator]") {
  TempDir dir;
  make_padded_pair(dir / "plain", dir / "padded", 260, 300);
  const Model plain = load_model(dir / "plain"), padded = load_model(dir / "padded");
  REQUIRE(padded.cfg.vocab_size == 300);
  REQUIRE(padded.weights->cfg.usable_vocab() == 260);  // the backends read the weights' config
  REQUIRE(plain.cfg.usable_vocab() == 260);
  const std::vector<int> prompt = plain.tokenizer->encode("Padded rows, masked.");
  CpuBackend pb(plain.weights, 2), qb(padded.weights, 2);

  // Unmasked (a config that does not know of the padding) a padded row wins the argmax.
  CpuBackend raw(std::make_shared<Weights>(Weights::load(SafeTensors(dir / "padded/model.safetensors"),
                                                         ModelConfig::load(dir / "padded/config.json"))),
                 1);
  std::vector<float> want(260), got(300);
  raw.forward({SeqInput{0, prompt, 0}}, nullptr, got.data());
  REQUIRE(argmax(got.data(), 300) >= 260);
  // Masked: the real ids' logits are the unpadded model's, the padded ones -inf.
  pb.forward({SeqInput{0, prompt, 0}}, nullptr, want.data());
  qb.forward({SeqInput{0, prompt, 0}}, nullptr, got.data());
  REQUIRE(check_close(got.data(), want.data(), 260, 1e-5, 1e-5) == "");
  for (int i = 260; i < 300; ++i) REQUIRE(got[size_t(i)] == -INFINITY);

  Generator gp(pb, *plain.tokenizer), gq(qb, *padded.tokenizer);
  for (float t : {0.0f, 0.8f}) {
    for (bool use_cache : {true, false}) {
      GenOptions o = greedy(30, use_cache);
      o.sampling.temperature = t;
      o.sampling.top_p = t > 0 ? 0.95f : 1.0f;
      o.seed = 5;
      const GenResult a = gp.generate(prompt, o), b = gq.generate(prompt, o);
      INFO("temperature " << t << (use_cache ? " with" : " without") << " the cache");
      REQUIRE(b.tokens.size() == 30);
      REQUIRE(b.tokens == a.tokens);
      REQUIRE(*std::max_element(b.tokens.begin(), b.tokens.end()) < 260);
    }
  }
}

TEST_CASE("Logits that are not finite stop the run with an error naming the step", "[generator]") {
  TempDir dir;
  MakeModelSpec spec;
  spec.cfg = ModelConfig::parse(
      R"({"n_layer": 1, "n_head": 2, "n_embd": 32, "n_positions": 64, "vocab_size": 300, "eos_token_id": 299})", "test");
  make_random_model(dir.path(), spec);
  // Finite weights that overflow: ln_f's gain 1e38 and bias 3.4e38 take the final activations past
  // fp32's range (inf), and the LM head's sums of +inf and -inf give NaN.
  std::vector<TensorToWrite> tensors;
  {
    SafeTensors st(dir / "model.safetensors");
    for (const auto& [name, t] : st.tensors()) {
      tensors.push_back({name, t.dtype, t.shape, std::vector<uint8_t>(t.data, t.data + t.nbytes)});
      if (name == "transformer.ln_f.weight" || name == "transformer.ln_f.bias") {
        const float big = name == "transformer.ln_f.bias" ? 3.4e38f : 1e38f;
        tensors.back().bytes = gen::test::encode(std::vector<float>(size_t(t.shape[0]), big), t.dtype);
      }
    }
  }
  write_safetensors(dir / "model.safetensors", tensors);
  const Model m = load_model(dir.path());  // every weight is finite: the load takes it
  CpuBackend be(m.weights, 1);
  Generator g(be, *m.tokenizer);
  for (float t : {0.0f, 1.0f}) {
    GenOptions o = greedy(5, true);
    o.sampling.temperature = t;
    REQUIRE_THROWS_WITH(g.generate({1, 2, 3}, o), "the logits at step 0 are not finite (NaN or Inf)");
  }
}
