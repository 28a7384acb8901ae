#include "model/model_maker.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "gen/error.h"
#include "model/rng.h"
#include "model/weights.h"

namespace fs = std::filesystem;

namespace gen {

namespace {

float normal(Rng& rng) {  // Box-Muller; one value per call keeps the stream simple
  double u1 = 1.0 - rng.uniform(), u2 = rng.uniform();
  return float(std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2));
}

std::vector<uint8_t> encode(const std::vector<float>& v, DType t) {
  std::vector<uint8_t> out(v.size() * dtype_size(t));
  for (size_t i = 0; i < v.size(); ++i) {
    if (t == DType::F32) {
      std::memcpy(&out[i * 4], &v[i], 4);
    } else {
      uint16_t h = t == DType::F16 ? float_to_half(v[i]) : float_to_bf16(v[i]);
      std::memcpy(&out[i * 2], &h, 2);
    }
  }
  return out;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// GPT-2's bytes_to_unicode: printable bytes stand for themselves, the rest map to U+0100 onwards.
std::vector<std::string> byte_chars() {
  std::vector<std::string> out(256);
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    int cp = printable ? b : 256 + extra++;
    std::string s;
    if (cp < 0x80) {
      s += char(cp);
    } else {
      s += char(0xC0 | (cp >> 6));
      s += char(0x80 | (cp & 0x3F));
    }
    out[b] = s;
  }
  return out;
}

// The outliers' hidden units: gelu_new(kOutlierOn + small) ~ kOutlierOn + small, always on.
constexpr float kOutlierOn = 8.0f;
constexpr float kOutlierGain = 0.05f;  // layernorm gain of an outlier channel
constexpr float kNormalRms = 0.5f;     // the residual's usual RMS per channel, about, with std 0.02

// Gain lift of the other channels at a norm that follows `blocks` MLPs: the std with the outliers over
// the std without them.
float outlier_lift(const std::vector<OutlierChannel>& out, int blocks, const ModelConfig& cfg) {
  double sq = 0;
  for (const auto& o : out) sq += double(o.magnitude) * o.magnitude;
  const double f = double(blocks) / cfg.n_layer;
  return float(std::sqrt(1.0 + sq * f * f / (double(cfg.n_embd) * kNormalRms * kNormalRms)));
}

// Shapes one freshly drawn tensor (name without "transformer.") for the outliers; others are untouched.
void shape_outliers(const std::string& name, std::vector<float>& v, const ModelConfig& cfg,
                    const std::vector<OutlierChannel>& out) {
  const size_t C = size_t(cfg.n_embd);
  int layer = cfg.n_layer;  // ln_f: after every block
  std::string part = name;
  if (name.rfind("h.", 0) == 0) {
    const size_t dot = name.find('.', 2);
    layer = std::stoi(name.substr(2, dot - 2));
    part = name.substr(dot + 1);
  }
  if (part == "mlp.c_fc.bias") {
    for (const auto& o : out) v[size_t(o.hidden)] = kOutlierOn;
  } else if (part == "mlp.c_fc.weight") {  // [C, 4C]: the unit barely depends on its input
    for (const auto& o : out) {
      for (size_t i = 0; i < C; ++i) v[i * 4 * C + size_t(o.hidden)] *= 0.25f;
    }
  } else if (part == "mlp.c_proj.weight") {  // [4C, C]: hidden unit -> its channel
    for (const auto& o : out) {
      v[size_t(o.hidden) * C + size_t(o.channel)] = o.magnitude / cfg.n_layer / kOutlierOn;
    }
  } else if (part == "ln_1.weight" || part == "ln_2.weight" || part == "ln_f.weight") {
    const float lift = outlier_lift(out, layer, cfg);  // ln_1 and ln_2 of block l follow l MLPs
    for (float& g : v) g *= lift;
    for (const auto& o : out) v[size_t(o.channel)] = kOutlierGain * v[size_t(o.channel)] / lift;
  }
}

}  // namespace

std::vector<OutlierChannel> outlier_channels(const ModelConfig& cfg, int n) {
  if (n < 0 || n > cfg.n_embd / 4) throw Error("--outliers must be in 0..n_embd/4");
  std::vector<OutlierChannel> out;
  float sum = 0;
  for (int k = 0; k < n; ++k) {
    const int c = int((2 * int64_t(k) + 1) * cfg.n_embd / (2 * n));
    float m = (k % 2 ? -1.0f : 1.0f) * (2000.0f + 1000.0f * k);
    if (k == n - 1 && n >= 2) m = -sum;
    sum += m;
    out.push_back({c, m, 4 * c});
  }
  return out;
}

std::pair<std::string, std::string> byte_level_tokenizer(int V) {
  if (V < 257 || V > 256 + 65536) throw Error("byte_level_tokenizer: vocab_size must be in 257..65792");
  const auto bc = byte_chars();
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[bc[b]] = b;
  std::string merges = "#version: 0.2\n";
  for (int k = 0; k + 257 < V; ++k) {
    const std::string& a = bc[k % 256];
    const std::string& b = bc[k / 256];
    vocab[a + b] = 256 + k;
    merges += a + " " + b + "\n";
  }
  vocab["<|endoftext|>"] = V - 1;
  return {vocab.dump(), merges};
}

std::string config_json(const ModelConfig& c) {
  nlohmann::json j = {
      {"activation_function", c.activation_function},
      {"architectures", {"GPT2LMHeadModel"}},
      {"bos_token_id", c.eos_token_id},
      {"eos_token_id", c.eos_token_id},
      {"layer_norm_epsilon", c.layer_norm_epsilon},
      {"model_type", "gpt2"},
      {"n_embd", c.n_embd},
      {"n_head", c.n_head},
      {"n_layer", c.n_layer},
      {"n_positions", c.n_positions},
      {"n_ctx", c.n_positions},
      {"vocab_size", c.vocab_size},
  };
  return j.dump(2) + "\n";
}

void make_random_model(const std::string& dir, const MakeModelSpec& spec) {
  fs::create_directories(dir);
  Rng rng(spec.seed);
  const std::vector<OutlierChannel> outliers = outlier_channels(spec.cfg, spec.outliers);
  std::vector<TensorToWrite> tensors;
  for (const auto& ws : gpt2_weight_specs(spec.cfg)) {
    size_t n = 1;
    for (auto d : ws.shape) n *= size_t(d);
    std::vector<float> v(n);
    const bool vector = ws.shape.size() == 1;
    const bool ln_weight = vector && ends_with(ws.name, ".weight");
    for (auto& x : v) {
      float r = normal(rng);
      x = ln_weight ? 1.0f + 0.1f * r : vector ? 0.1f * r : spec.init_std * r;
    }
    if (!outliers.empty()) shape_outliers(ws.name, v, spec.cfg, outliers);
    tensors.push_back({(spec.prefix ? "transformer." : "") + ws.name, spec.dtype, ws.shape, encode(v, spec.dtype)});
  }
  write_safetensors(dir + "/model.safetensors", tensors);
  std::ofstream(dir + "/config.json") << config_json(spec.cfg);
  if (!spec.tokenizer_dir.empty()) {
    for (const char* f : {"vocab.json", "merges.txt"}) {
      fs::copy_file(spec.tokenizer_dir + "/" + f, dir + "/" + f, fs::copy_options::overwrite_existing);
    }
  } else {
    const int ids = spec.tokenizer_vocab > 0 ? spec.tokenizer_vocab : spec.cfg.vocab_size;
    if (ids > spec.cfg.vocab_size) throw Error("make_random_model: more tokenizer ids than vocab_size");
    auto [vocab, merges] = byte_level_tokenizer(ids);
    std::ofstream(dir + "/vocab.json") << vocab;
    std::ofstream(dir + "/merges.txt") << merges;
  }
}

}  // namespace gen
