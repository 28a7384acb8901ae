// ModelConfig: the GPT-2 fields of a Hugging Face config.json, validated so that every size and
// product downstream (weights, KV cache) is positive and fits in 64 bits.
#include "gen/config.h"

#include "text/text_util.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <system_error>
#include <utility>

#include "gen/error.h"

namespace gen {
namespace {

using json = nlohmann::json;

// Far above any GPT-2 (gpt2-xl: 48 layers, 25 heads, 1600 wide, 1024 positions, 50257 tokens), low
// enough that no product of them overflows int64.
constexpr int64_t kMaxLayers = 1024;
constexpr int64_t kMaxHeads = 1024;
constexpr int64_t kMaxEmbd = 65536;
constexpr int64_t kMaxPositions = int64_t(1) << 20;
constexpr int64_t kMaxVocab = int64_t(1) << 24;
constexpr uintmax_t kMaxConfigBytes = 16u << 20;
// A GPT-2 config nests 3 deep; nlohmann allocates per level, so bound nesting before parsing.
constexpr int kMaxJsonDepth = 32;

std::string printable(const std::string& s, size_t max_len = 80) { return detail::printable(s, true, max_len); }

std::string describe(const json& v) {
  if (v.is_number_float()) return "the non-integer " + v.dump();
  return std::string("a ") + v.type_name();
}

int64_t as_int(const json& v, const std::string& key, const std::string& where) {
  if (!v.is_number_integer()) {
    throw InputError("field '" + key + "' must be an integer, got " + describe(v), where);
  }
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    const auto max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    return static_cast<int64_t>(u > max ? max : u);  // saturate: the bounds check rejects it
  }
  return v.get<int64_t>();
}

int size_field(const json& j, const std::string& key, int64_t max, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) throw InputError("missing field '" + key + "'", where);
  const int64_t x = as_int(*it, key, where);
  if (x <= 0) throw InputError("field '" + key + "' must be positive, got " + std::to_string(x), where);
  if (x > max) {
    throw InputError(
        "field '" + key + "' is " + std::to_string(x) + ", above the limit " + std::to_string(max), where);
  }
  return static_cast<int>(x);
}

// An optional field; JSON null counts as absent (Hugging Face writes null for unset ids).
const json* optional_field(const json& j, const char* key) {
  auto it = j.find(key);
  return (it == j.end() || it->is_null()) ? nullptr : &*it;
}

std::string string_field(const json& v, const std::string& key, const std::string& where) {
  if (!v.is_string()) throw InputError("field '" + key + "' must be a string, got " + describe(v), where);
  return v.get<std::string>();
}

void parse_optional(const json& j, ModelConfig& c, const std::string& where) {
  if (const json* v = optional_field(j, "model_type")) {
    const std::string t = string_field(*v, "model_type", where);
    if (t != "gpt2") throw InputError("unsupported model_type '" + printable(t) + "' (only gpt2)", where);
  }
  if (const json* v = optional_field(j, "activation_function")) {
    c.activation_function = string_field(*v, "activation_function", where);
    if (c.activation_function != "gelu_new") {
      throw InputError(
          "unsupported activation_function '" + printable(c.activation_function) + "' (only gelu_new)",
          where);
    }
  }
  if (const json* v = optional_field(j, "layer_norm_epsilon")) {
    // Range-check as double first: casting a double beyond FLT_MAX to float is undefined.
    const double d = v->is_number() ? v->get<double>() : 0.0;
    const float eps = (d > 0.0 && d <= std::numeric_limits<float>::max()) ? static_cast<float>(d) : 0.0f;
    if (!(eps > 0.0f)) {
      throw InputError(
          "field 'layer_norm_epsilon' must be a positive finite number, got " + printable(v->dump()), where);
    }
    c.layer_norm_epsilon = eps;
  }
  const json* eos = optional_field(j, "eos_token_id");
  if (!eos && c.eos_token_id >= c.vocab_size) {
    // No eos_token_id and a vocabulary without GPT-2's 50256: a model with no EOS, as in transformers.
    c.eos_token_id = -1;
    return;
  }
  const int64_t id = eos ? as_int(*eos, "eos_token_id", where) : c.eos_token_id;
  if (id < 0 || id >= c.vocab_size) {
    throw InputError("eos_token_id " + std::to_string(id) + (eos ? "" : " (the default)") +
                         " is outside the vocabulary (vocab_size " + std::to_string(c.vocab_size) + ")",
                     where);
  }
  c.eos_token_id = static_cast<int>(id);
}

// Hugging Face GPT-2 options that change the math; gen implements only their defaults, so a
// checkpoint using another value is rejected here rather than silently run wrong.
void check_variant_options(const json& j, const ModelConfig& c, const std::string& where) {
  const std::pair<const char*, bool> defaults[] = {{"scale_attn_weights", true},
                                                   {"scale_attn_by_inverse_layer_idx", false},
                                                   {"tie_word_embeddings", true},
                                                   {"add_cross_attention", false}};
  for (const auto& [key, want] : defaults) {
    const json* v = optional_field(j, key);
    if (v && !(v->is_boolean() && v->get<bool>() == want)) {
      throw InputError(std::string("unsupported ") + key + " " + printable(v->dump()) + " (only " +
                           (want ? "true" : "false") + ")",
                       where);
    }
  }
  if (const json* v = optional_field(j, "n_inner")) {  // the MLP width; null means 4 * n_embd
    const int64_t inner = as_int(*v, "n_inner", where);
    if (inner != 4 * int64_t(c.n_embd)) {
      throw InputError("unsupported n_inner " + std::to_string(inner) +
                           " (only 4 * n_embd = " + std::to_string(4 * int64_t(c.n_embd)) + ")",
                       where);
    }
  }
}

int64_t checked_mul(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) throw Error("model size overflows 64 bits");
  return r;
}

int64_t checked_add(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) throw Error("model size overflows 64 bits");
  return r;
}

}  // namespace

int64_t ModelConfig::n_params() const {
  const int64_t C = n_embd, V = vocab_size, P = n_positions, L = n_layer;
  // ln_1, ln_2: 2C each; c_attn C*3C+3C; attn c_proj C*C+C; c_fc C*4C+4C; mlp c_proj 4C*C+C.
  const int64_t per_layer = checked_add(checked_mul(12 * C, C), 13 * C);
  int64_t n = checked_add(checked_mul(V, C), checked_mul(P, C));
  n = checked_add(n, checked_mul(L, per_layer));
  return checked_add(n, 2 * C);  // ln_f
}

int64_t ModelConfig::matrix_params() const {
  const int64_t C = n_embd;
  // c_attn C x 3C, attn c_proj C x C, c_fc C x 4C, mlp c_proj 4C x C; the LM head V x C.
  return checked_add(checked_mul(int64_t(n_layer), checked_mul(12 * C, C)), checked_mul(int64_t(vocab_size), C));
}

int64_t ModelConfig::matrix_columns() const { return int64_t(n_layer) * 9 * n_embd + vocab_size; }

ModelConfig ModelConfig::parse(const std::string& json_text, const std::string& where) {
  if (!detail::json_depth_within(json_text.data(), json_text.size(), kMaxJsonDepth)) throw InputError("config is nested too deeply", where);
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    std::string msg = e.what();  // drop "[json.exception.parse_error.101] ", keep position and reason
    const size_t cut = msg.find("] ");
    if (msg.rfind("[json.exception.", 0) == 0 && cut != std::string::npos) msg.erase(0, cut + 2);
    throw InputError("config is not valid JSON: " + printable(msg, 200), where);
  }
  if (!j.is_object()) throw InputError("config is not a JSON object", where);

  ModelConfig c;
  try {
    c.n_layer = size_field(j, "n_layer", kMaxLayers, where);
    c.n_head = size_field(j, "n_head", kMaxHeads, where);
    c.n_embd = size_field(j, "n_embd", kMaxEmbd, where);
    // n_positions is the context; very old configs only carry the legacy n_ctx.
    const bool legacy = !j.contains("n_positions") && j.contains("n_ctx");
    c.n_positions = size_field(j, legacy ? "n_ctx" : "n_positions", kMaxPositions, where);
    c.vocab_size = size_field(j, "vocab_size", kMaxVocab, where);
    if (c.n_embd % c.n_head != 0) {
      throw InputError(
          "n_embd " + std::to_string(c.n_embd) + " is not divisible by n_head " + std::to_string(c.n_head),
          where);
    }
    parse_optional(j, c, where);
    check_variant_options(j, c, where);
    // Bytes of the fp32 weights must fit too (the bounds make this hold; keep it checked).
    checked_mul(c.n_params(), 4);
  } catch (const json::exception& e) {  // not expected after the type checks; never let one escape
    throw InputError(std::string("invalid config: ") + e.what(), where);
  } catch (const InputError&) {
    throw;
  } catch (const Error& e) {
    throw InputError(e.what(), where);
  }
  return c;
}

ModelConfig ModelConfig::load(const std::string& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (status.type() == std::filesystem::file_type::not_found) {
    throw InputError("cannot open config: no such file", path);
  }
  if (ec) throw InputError("cannot open config: " + ec.message(), path);
  if (!std::filesystem::is_regular_file(status))
    throw InputError("cannot open config: not a regular file", path);
  const uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec || size > kMaxConfigBytes) throw InputError("config file is too large (over 16 MiB)", path);
  std::ifstream f(path, std::ios::binary);
  if (!f) throw InputError("cannot open config", path);
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) throw InputError("cannot read config", path);
  return parse(ss.str(), path);
}

ModelConfig ModelConfig::builtin(const std::string& name) {
  struct Shape {
    const char* name;
    int n_layer, n_head, n_embd;
  };
  static const Shape shapes[] = {
      {"gpt2", 12, 12, 768}, {"gpt2-medium", 24, 16, 1024}, {"gpt2-large", 36, 20, 1280}, {"gpt2-xl", 48, 25, 1600}};
  for (const Shape& s : shapes) {
    if (name != s.name) continue;
    ModelConfig c;
    c.n_layer = s.n_layer;
    c.n_head = s.n_head;
    c.n_embd = s.n_embd;
    c.n_positions = 1024;
    c.vocab_size = 50257;
    return c;
  }
  throw InputError("unknown model name '" + printable(name) + "' (gpt2, gpt2-medium, gpt2-large, gpt2-xl)", "");
}

}  // namespace gen
