// Whether decode steps replay captured CUDA graphs, and what a failed capture does: the decision alone,
// in plain C++ (no CUDA header), so that gen_tests checks it on any machine. DecodeGraphs applies it.
//
// Graphs are off from the start with GEN_NO_GRAPH=1 or GEN_SYNC_CHECK=1 (the sync check wants every
// kernel launched, and checked, one by one). A capture that fails for any reason turns them off for the
// rest of the run: the step runs eagerly, and the first failure alone gives a note (gen/notes.h).
// GEN_FAIL_GRAPH_CAPTURE=1 makes every capture fail on purpose, to test that path on a GPU.
#pragma once
#include <cstring>
#include <functional>
#include <string>

namespace gen::cuda {

class GraphPolicy {
 public:
  using Getenv = std::function<const char*(const char*)>;  // std::getenv, or a test's table

  explicit GraphPolicy(const Getenv& getenv) {
    auto is_1 = [&](const char* name) {
      const char* v = getenv(name);
      return v && std::strcmp(v, "1") == 0;
    };
    fail_on_purpose_ = is_1("GEN_FAIL_GRAPH_CAPTURE");
    if (is_1("GEN_NO_GRAPH")) off_because_ = "GEN_NO_GRAPH=1";
    if (is_1("GEN_SYNC_CHECK")) off_because_ = "GEN_SYNC_CHECK=1";
    enabled_ = off_because_.empty();
  }

  bool enabled() const { return enabled_; }
  // GEN_FAIL_GRAPH_CAPTURE=1: DecodeGraphs breaks each capture it makes.
  bool fail_on_purpose() const { return fail_on_purpose_; }
  // Why graphs are off ("" while they are on).
  const std::string& off_because() const { return off_because_; }

  // A capture failed with `why` (the error's text): graphs are off from now on. Returns the note to
  // give, once per run: "" when graphs were already off.
  std::string capture_failed(const std::string& why) {
    if (!enabled_) return "";
    enabled_ = false;
    off_because_ = "capturing the decode step failed: " + why;
    return "CUDA graphs off for this run (" + off_because_ + "); decode steps run without them";
  }

 private:
  bool enabled_ = true;
  bool fail_on_purpose_ = false;
  std::string off_because_;
};

}  // namespace gen::cuda
