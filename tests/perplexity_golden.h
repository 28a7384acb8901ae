// tests/fixtures/perplexity_golden.json (scripts/make_perplexity_fixture.py): Hugging Face's loss
// over non-overlapping windows, per tiny checkpoint, for the CPU and CUDA perplexity tests.
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_util.h"

namespace gen::test {

struct PerplexityCase {
  int n_tokens = 0;  // the first n_tokens of PerplexityGolden::ids
  int context = 0;
  double nll = 0;  // Hugging Face's loss, windows combined as gen does
  long tokens_scored = 0;
  int windows = 0;
};

struct PerplexityGolden {
  std::vector<int> ids;
  std::map<std::string, std::vector<PerplexityCase>> models;  // "tiny-f32" -> its cases
};

inline PerplexityGolden load_perplexity_golden() {
  auto j = nlohmann::json::parse(read_file(fixture("perplexity_golden.json")));
  PerplexityGolden g;
  g.ids = j["input_ids"].get<std::vector<int>>();
  for (auto& [name, cases] : j["models"].items()) {
    for (auto& c : cases) {
      g.models[name].push_back({c["n_tokens"].get<int>(), c["context"].get<int>(), c["nll"].get<double>(),
                                c["tokens_scored"].get<long>(), c["windows"].get<int>()});
    }
  }
  return g;
}

}  // namespace gen::test
