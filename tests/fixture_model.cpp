#include "fixture_model.h"

#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "model/safetensors.h"
#include "test_util.h"

namespace gen::test {

Fixture load_fixture(const std::string& name) {
  Fixture f;
  f.dir = fixture(name);
  f.cfg = ModelConfig::load(f.dir + "/config.json");
  SafeTensors st(f.dir + "/model.safetensors");
  f.weights = std::make_shared<Weights>(Weights::load(st, f.cfg));
  auto g = nlohmann::json::parse(read_file(f.dir + "/golden.json"));
  f.input_ids = g["input_ids"].get<std::vector<int>>();
  f.prompt_ids = g["prompt_ids"].get<std::vector<int>>();
  f.greedy_new_tokens = g["greedy_new_tokens"].get<std::vector<int>>();
  std::string raw = read_file(f.dir + "/logits.f32");
  f.logits.resize(raw.size() / 4);
  std::memcpy(f.logits.data(), raw.data(), f.logits.size() * 4);
  if (f.logits.size() != f.input_ids.size() * size_t(f.cfg.vocab_size)) {
    throw std::runtime_error(name + ": logits.f32 does not hold [T, V] floats");
  }
  return f;
}

std::shared_ptr<const Weights> make_random_weights(const std::string& dir, const MakeModelSpec& spec) {
  make_random_model(dir, spec);
  SafeTensors st(dir + "/model.safetensors");
  return std::make_shared<Weights>(Weights::load(st, ModelConfig::load(dir + "/config.json")));
}

}  // namespace gen::test
