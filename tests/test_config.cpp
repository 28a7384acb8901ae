// The config unit (src/model/config.cpp): config.json parsing and validation, and the built-in GPT-2
// shapes.
#include <catch2/catch.hpp>
#include <string>

#include "gen/config.h"
#include "gen/error.h"
#include "model_test_util.h"

using namespace gen;

namespace {

const char* kGpt2Config = R"({
  "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
  "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02,
  "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768, "n_head": 12,
  "n_layer": 12, "n_positions": 1024, "resid_pdrop": 0.1, "summary_activation": null,
  "summary_first_dropout": 0.1, "summary_proj_to_labels": true, "summary_type": "cls_index",
  "summary_use_proj": true, "task_specific_params": {"text-generation": {"do_sample": true, "max_length": 50}},
  "vocab_size": 50257
})";

// kGpt2Config with one field replaced ("" as the value removes it).
std::string gpt2_with(const std::string& key, const std::string& value, std::string s = kGpt2Config) {
  const size_t at = s.find("\"" + key + "\":");
  const size_t end = s.find_first_of(",\n}", s.find(':', at) + 2);
  if (value.empty()) return s.erase(at, end + 1 - at);
  return s.replace(at, end - at, "\"" + key + "\": " + value);
}

}  // namespace

TEST_CASE("config: the real gpt2 config.json", "[loader]") {
  const ModelConfig c = ModelConfig::parse(kGpt2Config, "config.json");
  CHECK(c.n_layer == 12);
  CHECK(c.n_head == 12);
  CHECK(c.n_embd == 768);
  CHECK(c.head_dim() == 64);
  CHECK(c.n_positions == 1024);
  CHECK(c.vocab_size == 50257);
  CHECK(c.layer_norm_epsilon == 1e-5f);
  CHECK(c.activation_function == "gelu_new");
  CHECK(c.eos_token_id == 50256);
  CHECK(c.n_params() == 124439808);  // GPT-2 small, as Hugging Face counts it

  CHECK(ModelConfig::parse(gpt2_with("n_ctx", "2048"), "c").n_positions == 1024);  // n_positions wins
  const std::string legacy = gpt2_with("n_ctx", "512");
  CHECK(ModelConfig::parse(legacy, "c").n_positions == 1024);
  CHECK(ModelConfig::parse(gpt2_with("n_positions", "", legacy), "old").n_positions == 512);
  const ModelConfig defaults = ModelConfig::parse(
      R"({"n_layer": 24, "n_head": 16, "n_embd": 1024, "n_positions": 1024, "vocab_size": 50257})", "m");
  CHECK(defaults.n_params() == 354823168);  // GPT-2 medium
  CHECK(defaults.eos_token_id == 50256);
  CHECK(defaults.layer_norm_epsilon == 1e-5f);
}

TEST_CASE("config: broken configs are rejected by name", "[loader]") {
  REQUIRE_INPUT_ERROR(ModelConfig::parse(gpt2_with("n_head", ""), "c.json"),
                      "missing field 'n_head' (c.json)");
  REQUIRE_INPUT_ERROR(ModelConfig::parse(gpt2_with("n_embd", "0"), "c"), "'n_embd' must be positive, got 0");
  REQUIRE_INPUT_ERROR(ModelConfig::parse(gpt2_with("n_embd", "-8"), "c"),
                      "'n_embd' must be positive, got -8");
  REQUIRE_INPUT_ERROR(ModelConfig::parse(gpt2_with("n_embd", "100"), "c"),
                      "n_embd 100 is not divisible by n_head 12");
  REQUIRE_INPUT_ERROR(ModelConfig::parse(gpt2_with("n_embd", "768.0"), "c"), "'n_embd' must be an integer");
  REQUIRE_INPUT_ERROR(ModelConfig::parse(gpt2_with("n_embd", "\"768\""), "c"), "'n_embd' must be an integer");
  REQUIRE_INPUT_ERROR(ModelConfig::parse(gpt2_with("n_layer", "1000000000000"), "c"),
                      "'n_layer' is 1000000000000");
  REQUIRE_INPUT_ERROR(ModelConfig::parse(gpt2_with("n_layer", "99999999999999999999"), "c"), "'n_layer'");
  REQUIRE_INPUT_ERROR(ModelConfig::parse(gpt2_with("vocab_size", "4294967297"), "c"), "'vocab_size' is");
  REQUIRE_INPUT_ERROR(ModelConfig::parse(gpt2_with("activation_function", "\"relu\""), "c"),
                      "unsupported activation_function 'relu' (only gelu_new)");
  REQUIRE_INPUT_ERROR(ModelConfig::parse(gpt2_with("model_type", "\"bert\""), "c"), "model_type 'bert'");
  REQUIRE_INPUT_ERROR(ModelConfig::parse(gpt2_with("layer_norm_epsilon", "0"), "c"), "layer_norm_epsilon");
  REQUIRE_INPUT_ERROR(ModelConfig::parse(gpt2_with("layer_norm_epsilon", "1e300"), "c"),
                      "layer_norm_epsilon");
  REQUIRE_INPUT_ERROR(ModelConfig::parse(gpt2_with("layer_norm_epsilon", "\"x\""), "c"),
                      "layer_norm_epsilon");
  REQUIRE_INPUT_ERROR(ModelConfig::parse(gpt2_with("eos_token_id", "50257"), "c"), "eos_token_id 50257");
  REQUIRE_INPUT_ERROR(ModelConfig::parse(gpt2_with("eos_token_id", "-1"), "c"), "eos_token_id -1");
  // Without eos_token_id a vocabulary too small for 50256 means a model with no EOS.
  CHECK(ModelConfig::parse(R"({"n_layer": 1, "n_head": 1, "n_embd": 8, "n_positions": 4, "vocab_size": 11})", "c")
            .eos_token_id == -1);
  // Hugging Face options that would change the math are refused, not ignored.
  CHECK(ModelConfig::parse(gpt2_with("n_ctx", "1024, \"n_inner\": 3072"), "c").n_embd == 768);
  REQUIRE_INPUT_ERROR(ModelConfig::parse(gpt2_with("n_ctx", "1024, \"n_inner\": 1000"), "c"),
                      "unsupported n_inner 1000");
  REQUIRE_INPUT_ERROR(ModelConfig::parse(gpt2_with("n_ctx", "1024, \"tie_word_embeddings\": false"), "c"),
                      "unsupported tie_word_embeddings false");
  REQUIRE_INPUT_ERROR(
      ModelConfig::parse(gpt2_with("n_ctx", "1024, \"scale_attn_by_inverse_layer_idx\": true"), "c"),
      "unsupported scale_attn_by_inverse_layer_idx true");
  REQUIRE_INPUT_ERROR(ModelConfig::parse("{\"n_layer\": 12,", "c"), "config is not valid JSON");
  REQUIRE_INPUT_ERROR(ModelConfig::parse("", "c"), "config is not valid JSON");
  REQUIRE_INPUT_ERROR(ModelConfig::parse("[12, 12]", "c"), "config is not a JSON object");
  REQUIRE_INPUT_ERROR(ModelConfig::parse(std::string(5000, '['), "c"), "nested too deeply");
  REQUIRE_INPUT_ERROR(ModelConfig::load("/nonexistent/config.json"), "cannot open config");
}

TEST_CASE("built-in GPT-2 shapes have Hugging Face's parameter counts", "[loader]") {
  CHECK(ModelConfig::builtin("gpt2").n_params() == 124439808);
  CHECK(ModelConfig::builtin("gpt2-medium").n_params() == 354823168);
  CHECK(ModelConfig::builtin("gpt2-large").n_params() == 774030080);
  CHECK(ModelConfig::builtin("gpt2-xl").n_params() == 1557611200);
  CHECK_THROWS_WITH(ModelConfig::builtin("gpt3"), Catch::Contains("unknown model name 'gpt3'"));
}
