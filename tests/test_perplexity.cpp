// Perplexity: the all-positions forward against Hugging Face's logits, gen's nll against Hugging
// Face's loss (tests/fixtures/perplexity_golden.json, 1e-4 relative), the window rule, batching of
// windows, the stop flag and the input errors.
#include <catch2/catch.hpp>
#include <cmath>

#include "fixture_model.h"
#include "cpu/cpu_backend.h"
#include "gen/error.h"
#include "gen/model.h"
#include "gen/perplexity.h"
#include "perplexity_golden.h"
#include "test_util.h"

using namespace gen;
using namespace gen::test;

namespace {

std::vector<int> slice(const std::vector<int>& ids, int begin, int end) {
  return std::vector<int>(ids.begin() + begin, ids.begin() + end);
}

// A CPU backend that raises `stop` after its first forward_all, as a Ctrl-C during the first call would.
class StopAfterFirst : public CpuBackend {
 public:
  StopAfterFirst(std::shared_ptr<const Weights> w, volatile std::sig_atomic_t* stop)
      : CpuBackend(w, 1), stop_(stop) {}
  void compute(const std::vector<SeqInput>& batch, KVCache* cache, float* logits_out, bool all_rows) override {
    CpuBackend::compute(batch, cache, logits_out, all_rows);
    if (!all_rows) return;
    ++calls;
    *stop_ = 1;
  }
  int calls = 0;

 private:
  volatile std::sig_atomic_t* stop_;
};

}  // namespace

TEST_CASE("forward_all gives Hugging Face's logits at every position", "[perplexity]") {
  for (const char* name : kFixtureNames) {
    Fixture f = load_fixture(name);
    CpuBackend be(f.weights, 2);
    const int V = f.cfg.vocab_size, T = int(f.input_ids.size());
    // Two sequences in one call: 9 tokens then all T; rows in batch order.
    std::vector<float> all(size_t(9 + T) * V);
    be.forward_all({SeqInput{0, slice(f.input_ids, 0, 9), 0}, SeqInput{1, f.input_ids, 0}}, nullptr,
                   all.data());
    for (int r = 0; r < 9 + T; ++r) {
      const int pos = r < 9 ? r : r - 9;
      INFO(name << " row " << r << " (position " << pos << ")");
      REQUIRE(check_logits_row(&all[size_t(r) * V], &f.logits[size_t(pos) * V], V, 1e-4) == "");
    }
    // Through the cache: a chunk at pos0 > 0 scores its rows against the cached prefix.
    auto cache = be.make_cache(1, f.cfg.n_positions);
    be.forward_all({SeqInput{0, slice(f.input_ids, 0, 3), 0}}, cache.get(), all.data());
    be.forward_all({SeqInput{0, slice(f.input_ids, 3, 10), 3}}, cache.get(), all.data());
    REQUIRE(cache->length(0) == 10);
    for (int r = 0; r < 7; ++r) {
      INFO(name << " cached chunk row " << r);
      REQUIRE(check_logits_row(&all[size_t(r) * V], &f.logits[size_t(3 + r) * V], V, 1e-4) == "");
    }
    // The last row equals forward()'s (which takes the last-row path).
    std::vector<float> last(V);
    be.forward_all({SeqInput{0, f.input_ids, 0}}, nullptr, all.data());
    be.forward({SeqInput{0, f.input_ids, 0}}, nullptr, last.data());
    REQUIRE(check_logits_row(&all[size_t(T - 1) * V], last.data(), V, 1e-5) == "");
  }
}

TEST_CASE("gen perplexity matches Hugging Face's loss to 1e-4 relative", "[perplexity]") {
  const PerplexityGolden g = load_perplexity_golden();
  REQUIRE(g.models.size() == 3);
  double worst = 0;
  for (const auto& [name, cases] : g.models) {
    Fixture f = load_fixture(name);
    CpuBackend be(f.weights, 2);
    for (const PerplexityCase& c : cases) {
      const PerplexityResult r = perplexity(be, slice(g.ids, 0, c.n_tokens), c.context);
      INFO(name << ": " << c.n_tokens << " tokens, context " << c.context << ": nll " << r.nll() << " vs "
                << c.nll);
      REQUIRE_FALSE(r.interrupted);
      REQUIRE(r.windows == c.windows);
      REQUIRE(r.tokens_scored == c.tokens_scored);
      const double rel = std::abs(r.nll() - c.nll) / c.nll;
      worst = std::max(worst, rel);
      REQUIRE(rel <= 1e-4);
      REQUIRE(r.ppl() == Approx(std::exp(c.nll)).epsilon(2e-4));
    }
  }
  WARN("worst relative nll error against Hugging Face: " << worst);
}

TEST_CASE("Windows: every context tokens, a short last window of >= 2 tokens, a 1-token rest dropped",
          "[perplexity]") {
  auto w = plan_windows(150, 64);
  REQUIRE(w.size() == 3);
  REQUIRE((w[2].start == 128 && w[2].len == 22));
  w = plan_windows(129, 64);  // 64 + 64 + 1: the lone last token has nothing to score
  REQUIRE(w.size() == 2);
  REQUIRE((w[1].start == 64 && w[1].len == 64));
  w = plan_windows(5, 2);  // [0,1] [2,3], then 4 alone
  REQUIRE(w.size() == 2);
  REQUIRE(plan_windows(2, 64).size() == 1);
  REQUIRE_THROWS_AS(plan_windows(1, 64), InputError);
  REQUIRE_THROWS_AS(plan_windows(10, 1), InputError);
}

TEST_CASE("Batching windows into one call does not change the result", "[perplexity]") {
  const PerplexityGolden g = load_perplexity_golden();
  Fixture f = load_fixture("tiny-bf16");
  CpuBackend be(f.weights, 2);
  const PerplexityResult batched = perplexity(be, g.ids, 37);
  const PerplexityResult single = perplexity(be, g.ids, 37, nullptr, 1);  // one window per call
  REQUIRE(batched.windows == single.windows);
  REQUIRE(batched.tokens_scored == single.tokens_scored);
  REQUIRE(batched.nll() == Approx(single.nll()).epsilon(1e-6));
}

TEST_CASE("The stop flag ends perplexity between calls and says how far it got", "[perplexity]") {
  const PerplexityGolden g = load_perplexity_golden();
  Fixture f = load_fixture("tiny-f32");
  volatile std::sig_atomic_t stop = 1;
  CpuBackend be(f.weights, 1);
  PerplexityResult r = perplexity(be, g.ids, 37, &stop);
  REQUIRE((r.interrupted && r.windows == 0 && r.tokens_scored == 0 && r.windows_planned == 5));
  stop = 0;
  StopAfterFirst once(f.weights, &stop);
  r = perplexity(once, g.ids, 37, &stop, 1);  // one window per call: stops after the first
  REQUIRE(once.calls == 1);
  REQUIRE((r.interrupted && r.windows == 1 && r.tokens_scored == 36));
}

TEST_CASE("perplexity rejects a context outside 2..n_positions, short input and unknown ids",
          "[perplexity]") {
  Fixture f = load_fixture("tiny-f32");  // n_positions 64, vocab 320
  CpuBackend be(f.weights, 1);
  const std::vector<int> ids = slice(f.input_ids, 0, 10);
  REQUIRE_THROWS_WITH(perplexity(be, ids, 1), Catch::Contains("--context 1 is outside 2..64"));
  REQUIRE_THROWS_WITH(perplexity(be, ids, 65), Catch::Contains("--context 65 is outside 2..64"));
  REQUIRE_THROWS_WITH(perplexity(be, {7}, 64), Catch::Contains("at least 2"));
  REQUIRE_THROWS_WITH(perplexity(be, {7, 320}, 64), Catch::Contains("token id 320 at 1 is outside [0, 320)"));
  try {
    perplexity(be, {}, 64);
    FAIL("no throw");
  } catch (const Error& e) {
    REQUIRE(e.code() == ExitCode::bad_input);
  }
}

TEST_CASE("token_nll is logsumexp minus the target's logit, in double, without overflow", "[perplexity]") {
  const float two[] = {1000.0f, 1000.0f};
  REQUIRE(token_nll(two, 2, 0) == Approx(std::log(2.0)).epsilon(1e-12));
  const float three[] = {0.0f, std::log(2.0f), std::log(5.0f)};  // probabilities 1/8, 2/8, 5/8
  REQUIRE(token_nll(three, 3, 2) == Approx(std::log(8.0 / 5.0)).epsilon(1e-6));
  REQUIRE(token_nll(three, 3, 0) == Approx(std::log(8.0)).epsilon(1e-6));
}

TEST_CASE("perplexity of a padded vocabulary leaves the padded rows out of the softmax", "[perplexity]") {
  TempDir dir;
  make_padded_pair(dir / "plain", dir / "padded", 260, 300);
  const Model plain = load_model(dir / "plain"), padded = load_model(dir / "padded");
  CpuBackend pb(plain.weights, 2), qb(padded.weights, 2);
  std::vector<int> ids(150);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int(i * 37 % 260);
  const PerplexityResult a = perplexity(pb, ids, 32), b = perplexity(qb, ids, 32);
  REQUIRE(b.tokens_scored == a.tokens_scored);
  // Included, the padded rows (+-100 x real rows) would hold nearly all of the mass: nll in the hundreds.
  REQUIRE(b.nll() == Approx(a.nll()).epsilon(1e-5));
  REQUIRE(a.nll() < 20);
  REQUIRE_THROWS_WITH(perplexity(qb, {7, 270}, 32), Catch::Contains("token id 270 at 1 is outside [0, 260)"));
}
