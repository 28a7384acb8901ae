// The weights unit (src/model/weights.cpp): matching a GPT-2 checkpoint (any dtype, with or without the
// "transformer." prefix and Hugging Face's extra tensors) into Weights, and rejecting what does not fit.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "gen/config.h"
#include "gen/error.h"
#include "model/safetensors.h"
#include "model/weights.h"
#include "model_test_util.h"
#include "random_inputs.h"
#include "test_util.h"

using namespace gen;
using gen::test::decode;
using gen::test::encode;

namespace {

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
  Checkpoint ck;
  for (const WeightSpec& s : gpt2_weight_specs(cfg)) {
    int64_t n = 1;
    for (int64_t d : s.shape) n *= d;
    const std::vector<float> v = test::random_normal(static_cast<size_t>(n), rng);
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

}  // namespace

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

TEST_CASE("Weights::load refuses a NaN or an Inf, naming the tensor and the element", "[loader]") {
  const ModelConfig cfg = tiny_config();
  for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
    for (float bad : {NAN, INFINITY, -INFINITY}) {
      INFO(dtype_name(dt) << " " << bad);
      Checkpoint ck = tiny_checkpoint(cfg, dt, "transformer.", false);
      for (auto& t : ck.tensors) {
        if (t.name != "transformer.h.1.attn.c_attn.weight") continue;
        std::vector<float> v = ck.expect.at("h.1.attn.c_attn.weight");
        v[77] = bad;
        t.bytes = encode(v, dt);
      }
      const std::string what = std::string("tensor 'transformer.h.1.attn.c_attn.weight' holds ") +
                               (std::isnan(bad) ? "a NaN" : "an Inf") + " at element 77";
      REQUIRE_INPUT_ERROR(load_tiny(ck.tensors), what);
      REQUIRE_INPUT_ERROR(load_tiny(ck.tensors), "model.safetensors");
    }
  }
  // Two bad tensors: the first in the checkpoint's spec order (wpe before ln_f) is named, whatever the
  // order the parallel conversion met them in.
  Checkpoint ck = tiny_checkpoint(cfg, DType::F32, "", false);
  for (auto& t : ck.tensors) {
    if (t.name == "ln_f.bias" || t.name == "wpe.weight") {
      t.bytes = encode(std::vector<float>(t.bytes.size() / 4, NAN), DType::F32);
    }
  }
  REQUIRE_INPUT_ERROR(load_tiny(ck.tensors), "tensor 'wpe.weight' holds a NaN at element 0");
}

TEST_CASE("Weights::load finds a NaN past the first conversion piece of a big tensor", "[loader]") {
  // wte of 140000 x 8 = 1.12 M elements: converted (and checked) in two pieces of 2^20.
  const ModelConfig cfg = ModelConfig::parse(R"({"n_layer": 1, "n_head": 2, "n_embd": 8, "n_positions": 5,
                                                 "vocab_size": 140000, "eos_token_id": 10})",
                                             "big");
  Checkpoint ck = tiny_checkpoint(cfg, DType::BF16, "", false);
  std::vector<float> v = ck.expect.at("wte.weight");
  v[1100000] = INFINITY;
  ck.tensors[0].bytes = encode(v, DType::BF16);
  test::TempDir dir;
  write_safetensors(dir / "model.safetensors", ck.tensors);
  SafeTensors st(dir / "model.safetensors");
  REQUIRE_INPUT_ERROR(Weights::load(st, cfg), "tensor 'wte.weight' holds an Inf at element 1100000");
}
