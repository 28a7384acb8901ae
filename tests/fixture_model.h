// The Hugging Face fixtures of tests/fixtures/<name>/ (made by scripts/make_fixtures.py).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "gen/config.h"
#include "model/model_maker.h"
#include "model/weights.h"

namespace gen::test {

struct Fixture {
  std::string dir;
  ModelConfig cfg;
  std::shared_ptr<const Weights> weights;
  std::vector<int> input_ids;        // [T]
  std::vector<float> logits;         // [T, V] reference, computed in float64 by transformers
  std::vector<int> prompt_ids;
  std::vector<int> greedy_new_tokens;  // transformers generate(), do_sample=False
};

Fixture load_fixture(const std::string& name);

// A random checkpoint made in `dir` by the model maker, loaded as the backends load one.
std::shared_ptr<const Weights> make_random_weights(const std::string& dir, const MakeModelSpec& spec);
inline const char* const kFixtureNames[] = {"tiny-f32", "tiny-f16", "tiny-bf16", "tiny-noprefix"};

}  // namespace gen::test
