// gen serve's engine without HTTP: Generator::serve over a live queue gives each request the tokens it
// gets alone, whatever arrives meanwhile; cancellation frees the slot; log-probabilities equal a float64
// log-softmax and do not change the draws; the OpenAI text of a choice (a stop string cut off, never
// streamed in part).
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <random>
#include <thread>

#include "cpu/cpu_backend.h"
#include "fixture_model.h"
#include "gen/generator.h"
#include "gen/perplexity.h"
#include "gen/prefix_cache.h"
#include "prefix_test_util.h"
#include "serve/engine.h"
#include "serve/request.h"
#include "serve/response.h"
#include "test_util.h"

using namespace gen;
using namespace gen::test;

namespace {


Request request(std::vector<int> prompt, int n, float temperature, uint64_t seed) {
  Request r;
  r.prompt = std::move(prompt);
  r.opt.max_new_tokens = n;
  r.opt.sampling.temperature = temperature;
  r.opt.seed = seed;
  r.opt.ignore_eos = true;
  return r;
}

// Every event of a job until it is finished: the results by choice, and the streamed text.
std::map<int, GenResult> drain(serve::Job& job, std::map<int, std::string>* streamed = nullptr) {
  std::map<int, GenResult> out;
  for (bool last = false; !last;) {
    last = job.finished();
    for (auto& e : job.wait(std::chrono::milliseconds(last ? 0 : 50))) {
      if (streamed) (*streamed)[e.choice] += e.text;
      if (e.done) out[e.choice] = std::move(e.result);
    }
  }
  return out;
}

}  // namespace

TEST_CASE("serve: jobs submitted while the engine runs get the tokens of a batch run", "[serve]") {
  CpuRig rig;
  std::mt19937 rng(5);
  std::vector<Request> reqs;
  for (int i = 0; i < 10; ++i) reqs.push_back(request(random_ids(rng, 5 + i * 7), 6 + i, i % 2 ? 0.8f : 0.0f, 100 + i));
  for (int i = 0; i < 10; ++i) reqs[size_t(i)].index = i;
  Generator g(*rig.be, rig.tok);
  const auto expected = run_all(g, reqs, 1);

  PrefixCache prefix(*rig.be, 1 << 20);
  g.set_prefix_cache(&prefix);
  serve::Metrics metrics;
  serve::EngineOptions eo;
  eo.batch_size = 3;
  eo.max_queue = 16;
  serve::Engine engine(g, *rig.be, eo, metrics, &prefix);
  engine.start();
  std::vector<std::shared_ptr<serve::Job>> jobs;
  for (size_t i = 0; i < reqs.size(); ++i) {  // one job of one sequence each, arriving over time
    auto job = std::make_shared<serve::Job>();
    job->seqs.push_back(reqs[i]);
    job->prompt_of.push_back(0);
    engine.submit(job);
    jobs.push_back(job);
    if (i % 3 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  for (size_t i = 0; i < jobs.size(); ++i) {
    std::map<int, std::string> streamed;
    auto got = drain(*jobs[i], &streamed);
    REQUIRE(got.size() == 1);
    INFO("request " << i);
    CHECK(got[0].tokens == expected.at(int(i)).tokens);
    CHECK(got[0].finish_reason == "length");
    CHECK(streamed[0] == got[0].text);
  }
  engine.shutdown(std::chrono::milliseconds(1000));
  CHECK(metrics.render().find("gen_completions_total{finish_reason=\"length\"} 10") != std::string::npos);
}

TEST_CASE("serve: a cancelled job ends \"cancelled\" and frees its slot for the next", "[serve]") {
  CpuRig rig;
  std::mt19937 rng(6);
  Generator g(*rig.be, rig.tok);
  serve::Metrics metrics;
  serve::EngineOptions eo;
  eo.batch_size = 1;
  eo.max_queue = 4;
  serve::Engine engine(g, *rig.be, eo, metrics, nullptr);
  engine.start();
  auto slow = std::make_shared<serve::Job>();
  slow->seqs.push_back(request(random_ids(rng, 8), 200, 0, 1));
  slow->prompt_of.push_back(0);
  auto next = std::make_shared<serve::Job>();
  next->seqs.push_back(request(random_ids(rng, 8), 4, 0, 1));
  next->prompt_of.push_back(0);
  engine.submit(slow);
  engine.submit(next);
  while (slow->wait(std::chrono::milliseconds(50)).empty()) {
  }
  slow->cancel();
  auto a = drain(*slow);
  auto b = drain(*next);
  CHECK(a[0].finish_reason == "cancelled");
  CHECK(a[0].tokens.size() < 200);
  CHECK(b[0].finish_reason == "length");
  CHECK(b[0].tokens.size() == 4);
  engine.shutdown(std::chrono::milliseconds(0));
}

TEST_CASE("serve: a full queue refuses with 503, a job larger than the queue with 400", "[serve]") {
  CpuRig rig;
  Generator g(*rig.be, rig.tok);
  serve::Metrics metrics;
  serve::EngineOptions eo;
  eo.batch_size = 1;
  eo.max_queue = 2;
  serve::Engine engine(g, *rig.be, eo, metrics, nullptr);  // not started: nothing leaves the queue
  auto job = [](int n) {
    auto j = std::make_shared<serve::Job>();
    for (int i = 0; i < n; ++i) {
      j->seqs.push_back(request({1, 2, 3}, 2, 0, 1));
      j->prompt_of.push_back(0);
    }
    return j;
  };
  try {
    engine.submit(job(3));
    FAIL("no refusal");
  } catch (const serve::ApiError& e) {
    CHECK(e.status() == 400);
  }
  engine.submit(job(2));
  try {
    engine.submit(job(1));
    FAIL("no refusal");
  } catch (const serve::ApiError& e) {
    CHECK(e.status() == 503);
    CHECK(e.code() == "queue_full");
  }
  CHECK(engine.waiting() == 2);
}

TEST_CASE("serve: log-probabilities equal a float64 log-softmax and leave the draws as they were", "[serve]") {
  CpuRig rig;
  std::mt19937 rng(8);
  Generator g(*rig.be, rig.tok);
  Request plain = request(random_ids(rng, 9), 7, 0.9f, 77);
  Request with_lp = plain;
  with_lp.opt.logprobs = 3;
  const GenResult a = g.generate(plain.prompt, plain.opt);
  const GenResult b = g.generate(with_lp.prompt, with_lp.opt);
  CHECK(a.tokens == b.tokens);
  REQUIRE(b.logprobs.size() == b.tokens.size());
  CHECK(a.logprobs.empty());
  // The first token's against the prompt's logits, by hand in float64.
  std::vector<float> logits(size_t(rig.w->cfg.vocab_size));
  auto cache = rig.be->make_cache(1, 64);
  std::vector<SeqInput> batch(1);
  batch[0].tokens = plain.prompt;
  rig.be->forward(batch, cache.get(), logits.data());
  double mx = -1e300, sum = 0;
  for (float x : logits) mx = std::max(mx, double(x));
  for (float x : logits) sum += std::exp(double(x) - mx);
  const auto lp = [&](int id) { return double(logits[size_t(id)]) - mx - std::log(sum); };
  CHECK(b.logprobs[0].token == b.tokens[0]);
  CHECK(b.logprobs[0].logprob == Approx(lp(b.tokens[0])).epsilon(1e-6));
  REQUIRE(b.logprobs[0].top.size() == 3);
  const int best = int(std::max_element(logits.begin(), logits.end()) - logits.begin());
  CHECK(b.logprobs[0].top[0].first == best);
  CHECK(b.logprobs[0].top[0].second == Approx(lp(best)).epsilon(1e-6));
  CHECK(b.logprobs[0].top[0].second >= b.logprobs[0].top[1].second);
  CHECK(b.logprobs[0].top[1].second >= b.logprobs[0].top[2].second);
}

TEST_CASE("serve: a choice's text ends before its stop string and never streams part of one", "[serve]") {
  serve::ChoiceText t({"END", "\n\n"});
  std::string sent;
  sent += t.push("Hello E");
  CHECK(sent == "Hello");  // "E" may begin "END": held back (2 bytes: " E")
  sent += t.push("N");
  sent += t.push("D and more");
  sent += t.finish(true);
  CHECK(sent == "Hello ");
  CHECK(t.text() == "Hello ");

  serve::ChoiceText u({"xyz"});
  std::string s2 = u.push("ab\xC3");  // never cuts a character: the held-back tail starts at one
  s2 += u.push("\xA9" "cd");
  s2 += u.finish(false);
  CHECK(s2 == "ab\xC3\xA9" "cd");

  serve::ChoiceText none({});
  CHECK(none.push("abc") == "abc");
  CHECK(none.finish(true) == "");
  CHECK(serve::finish_reason("eos") == "stop");
  CHECK(serve::finish_reason("context") == "length");
  CHECK(serve::finish_reason("cancelled").empty());  // OpenAI has none: null, then the error event
  CHECK(serve::finish_reason("interrupted").empty());
}

TEST_CASE("serve: a job's waiter wakes at once for the first event and for the end, not at its timeout", "[serve]") {
  // The first event and a sequence's end wake the waiting HTTP thread at once, even with a long wake
  // interval (a stream's gathering, a whole answer's hour): the bug it guards against was an answer
  // that waited out a poll interval after its last token.
  serve::Job job;
  job.seqs.resize(1);
  job.prompt_of.push_back(0);
  job.wake_interval = std::chrono::hours(1);
  job.start(1);
  const auto waits = [&](auto push) {
    std::thread t([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      push();
    });
    const auto t0 = std::chrono::steady_clock::now();
    auto events = job.wait(std::chrono::seconds(20));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    t.join();
    CHECK(s < 10);  // woken by the push; a missed wake waits the whole 20 s
    return events;
  };
  auto first = waits([&] {
    serve::SeqEvent e;
    e.text = "a";
    job.push(std::move(e));
  });
  CHECK(first.size() == 1);
  CHECK_FALSE(job.finished());
  serve::SeqEvent mid;  // gathered (the interval has not passed), taken by the next wait
  mid.text = "b";
  job.push(std::move(mid));
  CHECK(job.wait(std::chrono::milliseconds(0)).size() == 1);
  auto end = waits([&] {
    serve::SeqEvent e;
    e.done = true;
    job.push(std::move(e));
  });
  CHECK(end.size() == 1);
  CHECK(job.finished());
}

TEST_CASE("serve: prompt_logprobs of a prompt and its continuation equal the generation's logprobs", "[serve]") {
  CpuRig rig;
  std::mt19937 rng(12);
  Generator g(*rig.be, rig.tok);
  Request r = request(random_ids(rng, 40), 9, 0, 3);
  r.opt.logprobs = 2;
  const GenResult gen = g.generate(r.prompt, r.opt);
  std::vector<int> all = r.prompt;
  all.insert(all.end(), gen.tokens.begin(), gen.tokens.end());
  // Chunks of 7 positions: the pass crosses chunk edges with its cache.
  const std::vector<TokenLogprob> scored = prompt_logprobs(*rig.be, all, 2, 7);
  REQUIRE(scored.size() == all.size() - 1);
  for (size_t k = 0; k < gen.tokens.size(); ++k) {
    const TokenLogprob& a = scored[r.prompt.size() - 1 + k];  // predicts all[prompt + k] = token k
    const TokenLogprob& b = gen.logprobs[k];
    INFO("token " << k);
    CHECK(a.token == b.token);
    CHECK(a.logprob == Approx(b.logprob).margin(1e-4));
    REQUIRE(a.top.size() == 2);
    CHECK(a.top[0].first == b.top[0].first);
    CHECK(a.top[0].second == Approx(b.top[0].second).margin(1e-4));
  }
}
