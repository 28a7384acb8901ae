// Loader tests: dtype conversions, the safetensors reader and writer, config.json validation, and
// matching a GPT-2 checkpoint into Weights.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <random>

#include "gen/config.h"
#include "gen/error.h"
#include "model/safetensors.h"
#include "model/weights.h"
#include "test_util.h"

using namespace gen;

namespace {

// Checks the exception type (InputError, not merely some exception) and a piece of its message.
struct MessageContains : Catch::MatcherBase<InputError> {
  std::string part;
  explicit MessageContains(std::string p) : part(std::move(p)) {}
  bool match(const InputError& e) const override {
    return std::string(e.what()).find(part) != std::string::npos;
  }
  std::string describe() const override { return "message contains \"" + part + "\""; }
};
#define REQUIRE_INPUT_ERROR(expr, part) REQUIRE_THROWS_MATCHES(expr, gen::InputError, MessageContains(part))

float bits_f(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// A safetensors image: length prefix, header text as given, `data_bytes` bytes of data.
std::vector<uint8_t> image(const std::string& header, size_t data_bytes, uint64_t n_override = 0) {
  const uint64_t n = n_override ? n_override : header.size();
  std::vector<uint8_t> out(8);
  std::memcpy(out.data(), &n, 8);
  out.insert(out.end(), header.begin(), header.end());
  for (size_t i = 0; i < data_bytes; ++i) out.push_back(static_cast<uint8_t>(i * 7 + 1));
  return out;
}

std::map<std::string, TensorView> parse(const std::vector<uint8_t>& file) {
  return parse_safetensors(file.data(), file.size(), "mem.safetensors");
}

std::vector<uint8_t> encode(const std::vector<float>& v, DType t) {
  std::vector<uint8_t> out(v.size() * dtype_size(t));
  for (size_t i = 0; i < v.size(); ++i) {
    if (t == DType::F32) {
      std::memcpy(&out[4 * i], &v[i], 4);
    } else {
      const uint16_t h = t == DType::F16 ? float_to_half(v[i]) : float_to_bf16(v[i]);
      std::memcpy(&out[2 * i], &h, 2);
    }
  }
  return out;
}

std::vector<float> decode(const std::vector<uint8_t>& b, DType t) {
  std::vector<float> out(b.size() / dtype_size(t));
  to_float(t, b.data(), out.size(), out.data());
  return out;
}

ModelConfig tiny_config() {
  return ModelConfig::parse(R"({"n_layer": 2, "n_head": 2, "n_embd": 8, "n_positions": 5,
                                "vocab_size": 11, "eos_token_id": 10})",
                            "tiny");
}

struct Checkpoint {
  std::vector<TensorToWrite> tensors;
  std::map<std::string, std::vector<float>> expect;  // spec name -> values after dtype rounding
};

// Every tensor gets distinct random values, so a pointer to the wrong tensor cannot pass.
Checkpoint tiny_checkpoint(const ModelConfig& cfg, DType dt, const std::string& prefix, bool extras) {
  std::mt19937 rng(1234);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  Checkpoint ck;
  for (const WeightSpec& s : gpt2_weight_specs(cfg)) {
    int64_t n = 1;
    for (int64_t d : s.shape) n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = dist(rng);
    ck.tensors.push_back({prefix + s.name, dt, s.shape, encode(v, dt)});
    ck.expect[s.name] = decode(ck.tensors.back().bytes, dt);
  }
  if (extras) {
    const int64_t P = cfg.n_positions;
    for (int i = 0; i < cfg.n_layer; ++i) {
      const std::string h = prefix + "h." + std::to_string(i) + ".attn.";
      ck.tensors.push_back(
          {h + "bias", DType::F32, {1, 1, P, P}, encode(std::vector<float>(P * P, 1.0f), DType::F32)});
      ck.tensors.push_back({h + "masked_bias", DType::F32, {}, encode({-1e4f}, DType::F32)});
    }
    ck.tensors.push_back({"lm_head.weight", dt, {cfg.vocab_size, cfg.n_embd}, ck.tensors[0].bytes});
  }
  return ck;
}

std::vector<const float*> pointers_in_spec_order(const Weights& w) {
  std::vector<const float*> p = {w.wte, w.wpe};
  for (const LayerWeights& l : w.layers) {
    p.insert(p.end(), {l.ln1_w, l.ln1_b, l.qkv_w, l.qkv_b, l.proj_w, l.proj_b, l.ln2_w, l.ln2_b, l.fc_w,
                       l.fc_b, l.fcproj_w, l.fcproj_b});
  }
  p.push_back(w.lnf_w);
  p.push_back(w.lnf_b);
  return p;
}

void load_tiny(const std::vector<TensorToWrite>& tensors) {
  test::TempDir dir;
  write_safetensors(dir / "model.safetensors", tensors);
  SafeTensors st(dir / "model.safetensors");
  Weights::load(st, tiny_config());
}

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

TEST_CASE("fp16 conversions: known bit patterns and round to nearest even", "[loader]") {
  CHECK(half_to_float(0x3C00) == 1.0f);
  CHECK(half_to_float(0x7BFF) == 65504.0f);
  CHECK(half_to_float(0x0001) == std::ldexp(1.0f, -24));
  CHECK(half_to_float(0x03FF) == 1023 * std::ldexp(1.0f, -24));
  CHECK(half_to_float(0x0400) == std::ldexp(1.0f, -14));
  CHECK(half_to_float(0xC000) == -2.0f);
  CHECK(std::signbit(half_to_float(0x8000)));
  CHECK(half_to_float(0x7C00) == std::numeric_limits<float>::infinity());
  CHECK(half_to_float(0xFC00) == -std::numeric_limits<float>::infinity());
  CHECK(std::isnan(half_to_float(0x7E00)));
  CHECK(std::isnan(half_to_float(0x7C01)));

  CHECK(float_to_half(1.0f) == 0x3C00);
  CHECK(float_to_half(65504.0f) == 0x7BFF);
  CHECK(float_to_half(65519.0f) == 0x7BFF);
  CHECK(float_to_half(65520.0f) == 0x7C00);  // the midpoint to the next power rounds to inf
  CHECK(float_to_half(1e10f) == 0x7C00);
  CHECK(float_to_half(-std::numeric_limits<float>::infinity()) == 0xFC00);
  CHECK(float_to_half(std::ldexp(1.0f, -24)) == 0x0001);
  CHECK(float_to_half(std::ldexp(1.0f, -25)) == 0x0000);         // tie, to even (0)
  CHECK(float_to_half(std::ldexp(1.0001f, -25)) == 0x0001);      // just above the tie
  CHECK(float_to_half(std::ldexp(3.0f, -25)) == 0x0002);         // 1.5 ulp, tie, to even (2)
  CHECK(float_to_half(std::ldexp(2047.0f, -25)) == 0x0400);      // tie at the top of subnormals
  CHECK(float_to_half(1.0f + std::ldexp(1.0f, -11)) == 0x3C00);  // tie, to even
  CHECK(float_to_half(1.0f + std::ldexp(3.0f, -11)) == 0x3C02);  // tie, to even
  CHECK(float_to_half(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)) == 0x3C01);
  CHECK(float_to_half(-0.0f) == 0x8000);
  CHECK(float_to_half(1e-30f) == 0x0000);
  const uint16_t n = float_to_half(std::numeric_limits<float>::quiet_NaN());
  CHECK(((n & 0x7C00) == 0x7C00 && (n & 0x3FF) != 0));
  CHECK(std::isnan(half_to_float(float_to_half(bits_f(0x7F800001)))));  // payload only in low bits

  for (uint32_t h = 0; h < 0x10000; ++h) {  // every non-nan half survives float and back
    const float f = half_to_float(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    REQUIRE(float_to_half(f) == h);
  }
}

TEST_CASE("bf16 conversions: known bit patterns and round to nearest even", "[loader]") {
  CHECK(bf16_to_float(0x3F80) == 1.0f);
  CHECK(bf16_to_float(0xC040) == -3.0f);
  CHECK(float_to_bf16(1.0f) == 0x3F80);
  CHECK(float_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3F80);  // tie, to even
  CHECK(float_to_bf16(1.0f + std::ldexp(3.0f, -8)) == 0x3F82);  // tie, to even
  CHECK(float_to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)) == 0x3F81);
  CHECK(float_to_bf16(std::numeric_limits<float>::max()) == 0x7F80);  // rounds up to inf
  CHECK(float_to_bf16(std::numeric_limits<float>::infinity()) == 0x7F80);
  CHECK(std::isnan(bf16_to_float(float_to_bf16(bits_f(0x7F800001)))));  // would truncate to inf
  CHECK(std::isnan(bf16_to_float(float_to_bf16(-std::numeric_limits<float>::quiet_NaN()))));
  for (uint32_t b = 0; b < 0x10000; ++b) {
    const float f = bf16_to_float(static_cast<uint16_t>(b));
    if (std::isnan(f)) continue;
    REQUIRE(float_to_bf16(f) == b);
  }
}

TEST_CASE("to_float agrees with the scalar conversions for every dtype", "[loader]") {
  const std::vector<float> v = {0.0f, -1.5f, 3.14159f, 1e-6f, 70000.0f, -1e-9f, 12345.678f};
  for (DType t : {DType::F32, DType::F16, DType::BF16}) {
    const std::vector<uint8_t> b = encode(v, t);
    const std::vector<float> got = decode(b, t);
    for (size_t i = 0; i < v.size(); ++i) {
      const float ref = t == DType::F32   ? v[i]
                        : t == DType::F16 ? half_to_float(float_to_half(v[i]))
                                          : bf16_to_float(float_to_bf16(v[i]));
      CHECK(got[i] == ref);
    }
  }
  CHECK(dtype_size(DType::F32) == 4);
  CHECK(dtype_size(DType::BF16) == 2);
  CHECK(std::string(dtype_name(DType::BF16)) == "BF16");
}

TEST_CASE("write_safetensors then SafeTensors reads back the same tensors", "[loader]") {
  test::TempDir dir;
  const std::vector<TensorToWrite> in = {
      {"a", DType::F32, {2, 3}, encode({1, 2, 3, 4, 5, 6}, DType::F32)},
      {"b.half", DType::F16, {3}, encode({0.5f, -2, 7}, DType::F16)},
      {"c", DType::BF16, {1, 2}, encode({9, -0.25f}, DType::BF16)},
      {"empty", DType::F32, {0, 4}, {}},
      {"scalar", DType::F32, {}, encode({42}, DType::F32)},
  };
  write_safetensors(dir / "x.safetensors", in);
  const std::string raw = test::read_file(dir / "x.safetensors");
  uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  CHECK(n % 8 == 0);  // padded so that the data section is aligned

  SafeTensors st(dir / "x.safetensors");
  REQUIRE(st.tensors().size() == in.size());
  for (const TensorToWrite& t : in) {
    const TensorView* v = st.find(t.name);
    REQUIRE(v != nullptr);
    CHECK(v->dtype == t.dtype);
    CHECK(v->shape == t.shape);
    CHECK(v->numel() * int64_t(dtype_size(t.dtype)) == int64_t(t.bytes.size()));
    REQUIRE(v->nbytes == t.bytes.size());
    CHECK((v->nbytes == 0 || std::memcmp(v->data, t.bytes.data(), v->nbytes) == 0));
  }
  CHECK(st.find("missing") == nullptr);
  CHECK(st.find("a")->offset == 0);
  CHECK(st.find("b.half")->offset == 24);  // contiguous in the given order
}

TEST_CASE("parse_safetensors accepts metadata, gaps and empty tensors", "[loader]") {
  auto t = parse(image(R"({"__metadata__": {"format": "pt"},
      "x": {"dtype": "F16", "shape": [2], "data_offsets": [8, 12]},
      "e": {"dtype": "BF16", "shape": [3, 0], "data_offsets": [8, 8]},
      "y": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}})",
                       16));
  REQUIRE(t.size() == 3);
  CHECK(t.at("x").offset == 8);
  CHECK(t.at("x").numel() == 2);
  CHECK(t.at("e").numel() == 0);
  CHECK(t.at("y").numel() == 1);
}

TEST_CASE("parse_safetensors rejects broken files with a specific message", "[loader]") {
  const std::string ok = R"({"x": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}})";
  auto entry = [](const std::string& body) { return R"({"x": {)" + body + "}}"; };
  REQUIRE(parse(image(ok, 16)).size() == 1);
  REQUIRE_INPUT_ERROR(parse({}), "empty file");
  REQUIRE_INPUT_ERROR(parse({1, 2, 3, 4, 5}), "file too small");
  REQUIRE_INPUT_ERROR(parse(image(ok, 16, 4096)), "exceeds the file size");
  REQUIRE_INPUT_ERROR(parse(image(ok, 16, uint64_t(1) << 40)), "100 MB limit");
  REQUIRE_INPUT_ERROR(parse(image("{\"x\": ", 0)), "not valid JSON");
  REQUIRE_INPUT_ERROR(parse(image("[1, 2]", 0)), "not a JSON object");
  REQUIRE_INPUT_ERROR(parse(image(std::string(100000, '['), 0)), "nested too deeply");
  REQUIRE_INPUT_ERROR(parse(image(entry(R"("dtype": "F64", "shape": [2], "data_offsets": [0, 16])"), 16)),
                      "unsupported dtype 'F64' for tensor 'x'");
  REQUIRE_INPUT_ERROR(parse(image(entry(R"("dtype": "F32", "shape": [-2, 2], "data_offsets": [0, 16])"), 16)),
                      "negative dimension -2");
  REQUIRE_INPUT_ERROR(
      parse(image(entry(R"("dtype": "F32", "shape": [2.0, 2], "data_offsets": [0, 16])"), 16)),
      "non-negative integers");
  REQUIRE_INPUT_ERROR(parse(image(entry(R"("dtype": "F32", "shape": [2, 3], "data_offsets": [0, 16])"), 16)),
                      "do not match shape [2, 3]");
  REQUIRE_INPUT_ERROR(parse(image(entry(R"("dtype": "F32", "shape": [2, 2], "data_offsets": [16, 0])"), 16)),
                      "do not match shape");
  REQUIRE_INPUT_ERROR(parse(image(entry(R"("dtype": "F32", "shape": [2, 2], "data_offsets": [8, 24])"), 16)),
                      "outside the data section");
  REQUIRE_INPUT_ERROR(
      parse(
          image(entry(R"("dtype": "F32", "shape": [4294967296, 4294967296, 8], "data_offsets": [0, 0])"), 0)),
      "shape too large");
  REQUIRE_INPUT_ERROR(parse(image(entry(R"("dtype": "F32", "shape": [2, 2])"), 16)),
                      "missing 'data_offsets' for tensor 'x'");
  REQUIRE_INPUT_ERROR(
      parse(image(entry(R"("dtype": "F32", "shape": [4], "data_offsets": [0, 16], "z": 1)"), 16)),
      "unexpected key 'z'");
  REQUIRE_INPUT_ERROR(parse(image(entry(R"("dtype": "F32", "shape": [4], "data_offsets": [0])"), 16)),
                      "data_offsets must be two");
  REQUIRE_INPUT_ERROR(parse(image(R"({"x": [1]})", 0)), "not a JSON object for tensor 'x'");
  REQUIRE_INPUT_ERROR(parse(image(R"({"__metadata__": {"a": 1}})", 0)), "__metadata__");
  REQUIRE_INPUT_ERROR(parse(image(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                                      "b": {"dtype": "F16", "shape": [2], "data_offsets": [12, 16]}})",
                                  16)),
                      "tensors 'a' and 'b' overlap");
}

TEST_CASE("parse_safetensors throws only InputError on mutated headers", "[loader]") {
  const std::vector<uint8_t> good = image(R"({"__metadata__": {"k": "v"},
      "a": {"dtype": "F16", "shape": [2, 3], "data_offsets": [0, 12]},
      "b": {"dtype": "BF16", "shape": [2], "data_offsets": [12, 16]}})",
                                          16);
  std::mt19937 rng(7);
  const char alphabet[] = "{}[]\",:0123456789-.eE \\uabF";
  int rejected = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<uint8_t> f = good;
    for (int k = 0, n = 1 + int(rng() % 4); k < n; ++k) {
      const size_t at = 8 + rng() % (f.size() - 8);
      f[at] = (rng() % 2) ? uint8_t(rng()) : uint8_t(alphabet[rng() % (sizeof alphabet - 1)]);
    }
    if (rng() % 8 == 0) f.resize(rng() % f.size());
    try {
      parse(f);
    } catch (const InputError&) {
      ++rejected;
    }  // anything else escapes and fails the test
  }
  CHECK(rejected > 100);
}

TEST_CASE("SafeTensors rejects missing, empty and truncated files", "[loader]") {
  test::TempDir dir;
  REQUIRE_INPUT_ERROR(SafeTensors(dir / "nope.safetensors"), "cannot open");
  REQUIRE_INPUT_ERROR(SafeTensors(dir.path()), "not a regular file");
  test::write_file(dir / "empty.safetensors", "");
  REQUIRE_INPUT_ERROR(SafeTensors(dir / "empty.safetensors"), "empty file");

  const std::string path = dir / "t.safetensors";
  write_safetensors(path, {{"w", DType::F32, {4, 4}, encode(std::vector<float>(16, 1.5f), DType::F32)}});
  const auto full = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, full - 4);
  REQUIRE_INPUT_ERROR(SafeTensors(path), "outside the data section");
  REQUIRE_INPUT_ERROR(SafeTensors(path), path);  // the message names the file
  std::filesystem::resize_file(path, 20);
  REQUIRE_INPUT_ERROR(SafeTensors(path), "exceeds the file size");
  std::filesystem::resize_file(path, 5);
  REQUIRE_INPUT_ERROR(SafeTensors(path), "file too small");
}

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

TEST_CASE("Weights::load converts every dtype and layout to the right fp32 values", "[loader]") {
  const ModelConfig cfg = tiny_config();
  for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
    for (const std::string prefix : {"", "transformer."}) {
      for (bool extras : {false, true}) {
        INFO(dtype_name(dt) << " prefix '" << prefix << "' extras " << extras);
        const Checkpoint ck = tiny_checkpoint(cfg, dt, prefix, extras);
        test::TempDir dir;
        write_safetensors(dir / "model.safetensors", ck.tensors);
        SafeTensors st(dir / "model.safetensors");
        const Weights w = Weights::load(st, cfg);
        CHECK(w.file_dtype == dt);
        CHECK(int64_t(w.data.size()) == cfg.n_params());
        REQUIRE(w.layers.size() == 2);
        const std::vector<WeightSpec> specs = gpt2_weight_specs(cfg);
        const std::vector<const float*> ptrs = pointers_in_spec_order(w);
        REQUIRE(ptrs.size() == specs.size());
        for (size_t i = 0; i < specs.size(); ++i) {
          const std::vector<float>& ref = ck.expect.at(specs[i].name);
          INFO(specs[i].name);
          REQUIRE(ptrs[i] >= w.data.data());
          REQUIRE(ptrs[i] + ref.size() <= w.data.data() + w.data.size());
          CHECK(std::memcmp(ptrs[i], ref.data(), ref.size() * 4) == 0);  // bit-exact
        }
        const std::vector<float>& fc = ck.expect.at("h.1.mlp.c_fc.weight");
        for (size_t k : {size_t(0), size_t(37), fc.size() - 1}) CHECK(w.layers[1].fc_w[k] == fc[k]);
        CHECK(w.layers[0].qkv_b[23] == ck.expect.at("h.0.attn.c_attn.bias")[23]);
        CHECK(w.wpe[39] == ck.expect.at("wpe.weight")[39]);
        CHECK(w.lnf_b[7] == ck.expect.at("ln_f.bias")[7]);
      }
    }
  }
}

TEST_CASE("Weights::load allows mixed dtypes and reports wte's", "[loader]") {
  const ModelConfig cfg = tiny_config();
  Checkpoint ck = tiny_checkpoint(cfg, DType::F32, "", false);
  ck.tensors[0].dtype = DType::BF16;  // wte as bf16, the rest f32
  ck.tensors[0].bytes = encode(ck.expect.at("wte.weight"), DType::BF16);
  test::TempDir dir;
  write_safetensors(dir / "m.safetensors", ck.tensors);
  SafeTensors st(dir / "m.safetensors");
  const Weights w = Weights::load(st, cfg);
  CHECK(w.file_dtype == DType::BF16);
  CHECK(w.wte[5] == bf16_to_float(float_to_bf16(ck.expect.at("wte.weight")[5])));
  CHECK(w.layers[1].fcproj_w[3] == ck.expect.at("h.1.mlp.c_proj.weight")[3]);
}

TEST_CASE("match_gpt2_tensors rejects checkpoints that do not fit the config", "[loader]") {
  const ModelConfig cfg = tiny_config();
  const Checkpoint base = tiny_checkpoint(cfg, DType::F32, "", true);
  auto without = [&](const std::string& name) {
    std::vector<TensorToWrite> t;
    for (const auto& x : base.tensors)
      if (x.name != name) t.push_back(x);
    return t;
  };
  auto with = [&](TensorToWrite extra) {
    std::vector<TensorToWrite> t = base.tensors;
    t.push_back(std::move(extra));
    return t;
  };
  auto f32 = [](std::vector<int64_t> shape, size_t n) {
    return std::make_pair(shape, encode(std::vector<float>(n, 0.5f), DType::F32));
  };
  REQUIRE_NOTHROW(load_tiny(base.tensors));
  REQUIRE_INPUT_ERROR(load_tiny(without("h.1.ln_2.bias")), "missing tensor 'h.1.ln_2.bias'");
  REQUIRE_INPUT_ERROR(load_tiny(without("h.1.ln_2.bias")), "model.safetensors");

  std::vector<TensorToWrite> bad = base.tensors;
  for (auto& t : bad) {
    if (t.name == "h.0.attn.c_attn.weight") std::tie(t.shape, t.bytes) = f32({8, 16}, 128);
  }
  REQUIRE_INPUT_ERROR(load_tiny(bad), "tensor 'h.0.attn.c_attn.weight' has shape [8, 16], expected [8, 24]");

  auto [s1, b1] = f32({8}, 8);
  REQUIRE_INPUT_ERROR(load_tiny(with({"h.0.attn.foo", DType::F32, s1, b1})),
                      "unexpected tensor 'h.0.attn.foo'");
  REQUIRE_INPUT_ERROR(load_tiny(with({"h.2.ln_1.weight", DType::F32, s1, b1})),
                      "unexpected tensor 'h.2.ln_1.weight' (the config says n_layer 2)");
  REQUIRE_INPUT_ERROR(load_tiny(with({"h.5.attn.bias", DType::F32, s1, b1})),
                      "unexpected tensor 'h.5.attn.bias'");
  REQUIRE_INPUT_ERROR(load_tiny(with({"transformer.ln_f.bias", DType::F32, s1, b1})),
                      "tensor 'ln_f.bias' appears both with and without");
  auto [s2, b2] = f32({10, 8}, 80);
  std::vector<TensorToWrite> head = without("lm_head.weight");
  head.push_back({"lm_head.weight", DType::F32, s2, b2});
  REQUIRE_INPUT_ERROR(load_tiny(head), "tensor 'lm_head.weight' has shape [10, 8], expected [11, 8]");
}

TEST_CASE("built-in GPT-2 shapes have Hugging Face's parameter counts", "[loader]") {
  CHECK(ModelConfig::builtin("gpt2").n_params() == 124439808);
  CHECK(ModelConfig::builtin("gpt2-medium").n_params() == 354823168);
  CHECK(ModelConfig::builtin("gpt2-large").n_params() == 774030080);
  CHECK(ModelConfig::builtin("gpt2-xl").n_params() == 1557611200);
  CHECK_THROWS_WITH(ModelConfig::builtin("gpt3"), Catch::Contains("unknown model name 'gpt3'"));
}
