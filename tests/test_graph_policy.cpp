// The decode graphs' decision (cuda/graph_policy.h, plain C++): what the environment turns off, what a
// failed capture does, and that its note reaches the engine's note sink once. The GPU side of the same
// path (a capture failed on purpose, then eager steps) is in test_cuda_graphs.cpp.
#include <catch2/catch.hpp>
#include <map>
#include <string>
#include <vector>

#include "cuda/graph_policy.h"
#include "gen/notes.h"

using gen::cuda::GraphPolicy;

namespace {

GraphPolicy policy_with(const std::map<std::string, std::string>& env) {
  return GraphPolicy([&env](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

}  // namespace

TEST_CASE("decode graphs are on unless the environment turns them off", "[graphs]") {
  CHECK(policy_with({}).enabled());
  CHECK(policy_with({{"GEN_NO_GRAPH", "0"}, {"GEN_SYNC_CHECK", ""}}).enabled());
  const GraphPolicy no_graph = policy_with({{"GEN_NO_GRAPH", "1"}});
  CHECK(!no_graph.enabled());
  CHECK(no_graph.off_because() == "GEN_NO_GRAPH=1");
  const GraphPolicy sync = policy_with({{"GEN_SYNC_CHECK", "1"}});
  CHECK(!sync.enabled());
  CHECK(sync.off_because() == "GEN_SYNC_CHECK=1");
  CHECK(!policy_with({}).fail_on_purpose());
  const GraphPolicy fail = policy_with({{"GEN_FAIL_GRAPH_CAPTURE", "1"}});
  CHECK(fail.fail_on_purpose());
  CHECK(fail.enabled());  // on, so that a capture is tried and fails
}

TEST_CASE("a failed capture turns graphs off for the run, with one note", "[graphs]") {
  GraphPolicy p = policy_with({{"GEN_FAIL_GRAPH_CAPTURE", "1"}});
  const std::string note = p.capture_failed("operation not permitted when stream is capturing");
  CHECK(!p.enabled());
  CHECK(note ==
        "CUDA graphs off for this run (capturing the decode step failed: operation not permitted when "
        "stream is capturing); decode steps run without them");
  CHECK(p.off_because() ==
        "capturing the decode step failed: operation not permitted when stream is capturing");
  CHECK(p.capture_failed("again").empty());  // already off: no second note, the first reason stays
  CHECK(p.off_because().find("again") == std::string::npos);
  // Off from the start: a failure (there is none to have, but the rule holds) gives no note.
  GraphPolicy off = policy_with({{"GEN_NO_GRAPH", "1"}});
  CHECK(off.capture_failed("x").empty());
  CHECK(off.off_because() == "GEN_NO_GRAPH=1");
}

TEST_CASE("notes go to the installed sink, or to stderr without one", "[notes]") {
  std::vector<std::string> got;
  gen::NoteSink before = gen::set_note_sink([&](const std::string& n) { got.push_back(n); });
  gen::notify("first");
  gen::notify("second");
  gen::set_note_sink([](const std::string&) { throw std::runtime_error("a broken sink"); });
  REQUIRE_NOTHROW(gen::notify("lost"));  // a sink that throws loses its note, not the run
  gen::set_note_sink(std::move(before));
  CHECK(got == std::vector<std::string>{"first", "second"});
}
