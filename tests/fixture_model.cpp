#include "fixture_model.h"

#include <cstring>
#include <filesystem>
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

void make_padded_pair(const std::string& plain, const std::string& padded, int ids, int rows) {
  MakeModelSpec spec;
  spec.cfg =
      ModelConfig::parse(R"({"n_layer": 2, "n_head": 2, "n_embd": 32, "n_positions": 64, "vocab_size": )" +
                             std::to_string(rows) + R"(, "eos_token_id": )" + std::to_string(ids - 1) + "}",
                         "make_padded_pair");
  spec.tokenizer_vocab = ids;
  spec.init_std = 0.3f;
  make_random_model(padded, spec);
  // Rewrite the padded file's wte rows [ids, rows) and write the plain one with wte cut to `ids` rows.
  std::vector<TensorToWrite> big, small;
  {
    SafeTensors st(padded + "/model.safetensors");
    for (const auto& [name, t] : st.tensors()) {
      TensorToWrite w{name, t.dtype, t.shape, std::vector<uint8_t>(t.data, t.data + t.nbytes)};
      big.push_back(w);
      if (name == "transformer.wte.weight") {
        const size_t C = size_t(t.shape[1]);
        float* v = reinterpret_cast<float*>(big.back().bytes.data());  // F32: make_random_model's default
        for (size_t k = 0; k < size_t(rows - ids); ++k) {  // +100 x row k/2, then -100 x the same row
          const float scale = k % 2 ? -100.0f : 100.0f;
          const size_t src = k / 2 % size_t(ids), dst = size_t(ids) + k;
          for (size_t c = 0; c < C; ++c) v[dst * C + c] = scale * v[src * C + c];
        }
        w.shape[0] = ids;
        w.bytes.resize(size_t(ids) * C * 4);
      }
      small.push_back(std::move(w));
    }
  }
  write_safetensors(padded + "/model.safetensors", big);
  std::filesystem::create_directories(plain);
  write_safetensors(plain + "/model.safetensors", small);
  ModelConfig cfg = spec.cfg;
  cfg.vocab_size = ids;
  write_file(plain + "/config.json", config_json(cfg));
  for (const char* f : {"vocab.json", "merges.txt"}) write_file(plain + "/" + f, read_file(padded + "/" + f));
}

std::shared_ptr<const Weights> make_random_weights(const std::string& dir, const MakeModelSpec& spec) {
  make_random_model(dir, spec);
  SafeTensors st(dir + "/model.safetensors");
  return std::make_shared<Weights>(Weights::load(st, ModelConfig::load(dir + "/config.json")));
}

}  // namespace gen::test
