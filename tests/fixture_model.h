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

// One random model (2 layers x 32, 64 positions) written twice with the same tokenizer
// (byte_level_tokenizer of `ids`): `plain` with `ids` rows of wte, and `padded` with `rows` > ids, as
// nanoGPT and llm.c export. The padded rows are +-100 x real rows: unmasked, one of them wins every
// argmax and holds nearly all of the softmax.
void make_padded_pair(const std::string& plain, const std::string& padded, int ids, int rows);

}  // namespace gen::test
