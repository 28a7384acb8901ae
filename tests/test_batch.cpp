// Continuous batching: every prompt of a batch run gets exactly what it gets alone, whatever the batch
// size; sessions reuse their cached prefix; stop strings and interruption end sequences cleanly.
#include <catch2/catch.hpp>
#include <map>
#include <random>

#include "fixture_model.h"
#include "cpu/cpu_backend.h"
#include "gen/error.h"
#include "gen/generator.h"
#include "test_util.h"

using namespace gen;
using namespace gen::test;

namespace {

// A fixture model on the CPU backend with its generator.
struct Rig {
  explicit Rig(const char* name) : f(load_fixture(name)), be(f.weights, 2), tok(tiny_tokenizer(f.cfg.vocab_size)) {}
  Fixture f;
  CpuBackend be;
  Tokenizer tok;
  Generator g{be, tok};
};

// Prompts of uneven lengths and budgets, so sequences finish at different steps and waiting ones
// take their slots mid-run.
std::vector<Request> mixed_requests(int n, int vocab, int max_prompt, uint64_t seed, float temperature) {
  std::mt19937 rng{unsigned(seed)};
  std::vector<Request> reqs(n);
  for (int i = 0; i < n; ++i) {
    reqs[i].index = i;
    const int len = 1 + int(rng() % unsigned(max_prompt));
    for (int t = 0; t < len; ++t) reqs[i].prompt.push_back(int(rng() % unsigned(vocab)));
    reqs[i].opt.max_new_tokens = 1 + int(rng() % 24u);
    reqs[i].opt.sampling.temperature = temperature;
    reqs[i].opt.sampling.top_k = 40;
    reqs[i].opt.seed = 1000 + uint64_t(i);
  }
  return reqs;
}

std::map<int, GenResult> run_all(Generator& g, const std::vector<Request>& reqs, int batch, bool use_cache,
                                 int* max_live = nullptr) {
  std::map<int, GenResult> out;
  RunCallbacks cb;
  cb.on_done = [&](int i, GenResult&& r) {
    REQUIRE(out.count(i) == 0);  // exactly once
    out[i] = std::move(r);
  };
  cb.on_step = [&](const StepInfo& s) {
    if (max_live) *max_live = std::max(*max_live, s.batch);
  };
  GenOptions run_opt;
  run_opt.use_cache = use_cache;
  g.run(reqs, run_opt, batch, cb);
  REQUIRE(out.size() == reqs.size());
  return out;
}

}  // namespace

TEST_CASE("Each prompt of a batch run gets the tokens it gets alone, at batch sizes 1, 3 and 16", "[batch]") {
  Rig rig("tiny-f32");
  const Fixture& f = rig.f;
  Generator& g = rig.g;
  for (float temperature : {0.0f, 0.9f}) {
    const auto reqs = mixed_requests(21, f.cfg.vocab_size, 30, temperature > 0 ? 7 : 5, temperature);
    std::vector<GenResult> alone;
    for (const auto& r : reqs) {
      GenOptions o = r.opt;
      alone.push_back(g.generate(r.prompt, o));
    }
    for (int batch : {1, 3, 16}) {
      int max_live = 0;
      auto got = run_all(g, reqs, batch, true, &max_live);
      REQUIRE(max_live == batch);
      for (const auto& r : reqs) {
        INFO("temperature " << temperature << ", batch " << batch << ", prompt " << r.index);
        REQUIRE(got[r.index].tokens == alone[size_t(r.index)].tokens);
        REQUIRE(got[r.index].finish_reason == alone[size_t(r.index)].finish_reason);
        REQUIRE(got[r.index].text == alone[size_t(r.index)].text);
        REQUIRE(got[r.index].prompt_tokens == r.prompt);
      }
    }
    auto nocache = run_all(g, reqs, 3, false);
    for (const auto& r : reqs) REQUIRE(nocache[r.index].tokens == alone[size_t(r.index)].tokens);
  }
}

TEST_CASE("Continuous batching refills a freed slot in the next step", "[batch]") {
  Rig rig("tiny-f32");
  Generator& g = rig.g;
  std::vector<Request> reqs(3);
  for (int i = 0; i < 3; ++i) {
    reqs[i].index = i;
    reqs[i].prompt = {1 + i, 2, 3};
    reqs[i].opt.max_new_tokens = i == 0 ? 2 : 10;
    reqs[i].opt.sampling.temperature = 0;
    reqs[i].opt.ignore_eos = true;
  }
  std::vector<StepInfo> steps;
  RunCallbacks cb;
  cb.on_step = [&](const StepInfo& s) { steps.push_back(s); };
  GenOptions run_opt;
  const int n = g.run(reqs, run_opt, 2, cb);
  // Step 0 prefills prompts 0 and 1; prompt 0 ends after step 1; step 2 prefills prompt 2 beside
  // prompt 1's decode (3 + 1 new tokens); prompt 1 ends after step 9 and prompt 2 after step 11.
  REQUIRE(n == 12);
  REQUIRE(steps[0].new_tokens == 6);
  REQUIRE(steps[1].new_tokens == 2);
  REQUIRE(steps[2].batch == 2);
  REQUIRE(steps[2].new_tokens == 4);
  REQUIRE(steps[10].batch == 1);
}

TEST_CASE("A session reuses its cached prefix and gives the tokens of a fresh run", "[batch]") {
  Rig rig("tiny-f16");
  Generator& g = rig.g;
  GenOptions o;
  o.max_new_tokens = 6;
  o.sampling.temperature = 0;
  o.ignore_eos = true;
  Session s;
  std::vector<int> conv = {5, 6, 7, 8, 9};
  GenResult r1 = g.generate(conv, o, {}, &s);
  REQUIRE(r1.timing.cached_tokens == 0);
  REQUIRE(r1.timing.prefill_tokens == 5);
  REQUIRE(s.tokens.size() == 5 + 6 - 1);  // the last drawn token was never fed
  conv.insert(conv.end(), r1.tokens.begin(), r1.tokens.end());
  conv.insert(conv.end(), {11, 12, 13});
  GenResult r2 = g.generate(conv, o, {}, &s);
  REQUIRE(r2.timing.cached_tokens == 10);
  REQUIRE(r2.timing.prefill_tokens == int(conv.size()) - 10);
  REQUIRE(r2.tokens == g.generate(conv, o).tokens);
  // A prompt that diverges early reuses only the common prefix.
  std::vector<int> other = {5, 6, 99, 1};
  GenResult r3 = g.generate(other, o, {}, &s);
  REQUIRE(r3.timing.cached_tokens == 2);
  REQUIRE(r3.tokens == g.generate(other, o).tokens);
  // The same prompt again: everything but its last token comes from the cache.
  GenResult r4 = g.generate(other, o, {}, &s);
  REQUIRE(r4.timing.cached_tokens == 3);
  REQUIRE(r4.tokens == r3.tokens);
}

TEST_CASE("Stop strings end a sequence once its text contains one", "[batch]") {
  Rig rig("tiny-f32");
  const Fixture& f = rig.f;
  Generator& g = rig.g;
  GenOptions o;
  o.max_new_tokens = 30;
  o.sampling.temperature = 0;
  o.ignore_eos = true;
  const GenResult full = g.generate(f.prompt_ids, o);
  // An ASCII stop string from the middle of the text (whole characters, so the streamed text holds it
  // as soon as its last token is drawn).
  size_t at = 2;
  while (at + 1 < full.text.size() && (full.text[at] & 0x80 || full.text[at + 1] & 0x80)) ++at;
  REQUIRE(at + 1 < full.text.size());
  const std::string stop = full.text.substr(at, 2);
  o.stop_strings = {"never there \x01\x02", stop};
  const GenResult r = g.generate(f.prompt_ids, o);
  REQUIRE(r.finish_reason == "stop");
  REQUIRE(r.text.find(stop) != std::string::npos);
  REQUIRE(r.tokens.size() < full.tokens.size());
  REQUIRE(std::equal(r.tokens.begin(), r.tokens.end(), full.tokens.begin()));
  o.max_new_tokens = int(r.tokens.size()) - 1;  // one token less: the stop string is not complete yet
  REQUIRE(g.generate(f.prompt_ids, o).text.find(stop) == std::string::npos);
}

TEST_CASE("An interrupted batch reports its live sequences once, as interrupted, and no waiting one", "[batch]") {
  Rig rig("tiny-f32");
  const Fixture& f = rig.f;
  Generator& g = rig.g;
  auto reqs = mixed_requests(10, f.cfg.vocab_size, 10, 3, 0);
  for (auto& r : reqs) {
    r.opt.max_new_tokens = 20;
    r.opt.ignore_eos = true;
  }
  volatile std::sig_atomic_t stop = 0;
  GenOptions run_opt;
  run_opt.stop = &stop;
  std::map<int, GenResult> out;
  RunCallbacks cb;
  cb.on_done = [&](int i, GenResult&& r) { out[i] = std::move(r); };
  cb.on_step = [&](const StepInfo& s) {
    if (s.step == 4) stop = 1;
  };
  REQUIRE(g.run(reqs, run_opt, 4, cb) == 5);
  GenOptions o = reqs[0].opt;
  o.stop = &stop;  // already set: nothing runs, and generate() says so
  const GenResult none = g.generate(reqs[0].prompt, o);
  REQUIRE(none.finish_reason == "interrupted");
  REQUIRE(none.tokens.empty());
  REQUIRE(none.prompt_tokens == reqs[0].prompt);
  REQUIRE(out.size() == 4);
  for (auto& [i, r] : out) {
    REQUIRE(i < 4);
    REQUIRE(r.finish_reason == "interrupted");
    REQUIRE(r.tokens.size() == 5);
  }
}

TEST_CASE("A batch run checks every prompt before it starts", "[batch]") {
  Rig rig("tiny-f32");
  Generator& g = rig.g;
  std::vector<Request> reqs(2);
  reqs[0].prompt = {1, 2};
  reqs[1].prompt = std::vector<int>(65, 3);  // n_positions is 64
  int done = 0;
  RunCallbacks cb;
  cb.on_done = [&](int, GenResult&&) { ++done; };
  REQUIRE_THROWS_WITH(g.run(reqs, GenOptions{}, 2, cb), Catch::Contains("prompt is 65 tokens"));
  REQUIRE(done == 0);
  reqs.pop_back();
  REQUIRE_THROWS_WITH(g.run(reqs, GenOptions{}, 0, cb), Catch::Contains("--batch-size 0"));
}
