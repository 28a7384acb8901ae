#include "serve/request.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "gen/tokenizer.h"  // utf8_error_offset

namespace gen::serve {

namespace {

using nlohmann::json;

std::string default_type(int status) {
  if (status == 401) return "authentication_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

// "a string", "an integer", ...: what a field holds, for "must be X, not Y".
const char* kind_of(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return v.is_number_integer() ? "an integer" : "a number";
}

// ---- the body ------------------------------------------------------------------------------------

// Records nlohmann's first error; everything else is accepted (it only runs on a body known to be bad).
struct ErrorSax : nlohmann::json_sax<json> {
  size_t position = 0;
  std::string what;
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t&) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t pos, const std::string&, const nlohmann::detail::exception& e) override {
    position = pos;
    what = e.what();
    return false;
  }
};

// Cuts `s` at the first `from`, keeping what comes after it (all of `s` when absent).
std::string after(const std::string& s, const std::string& from) {
  const size_t at = s.find(from);
  return at == std::string::npos ? s : s.substr(at + from.size());
}

// "at byte 12: invalid literal" from nlohmann's "[json.exception.parse_error.101] parse error at line
// 1, column 13: syntax error while parsing value - invalid literal; last read: '...'". The token read
// is dropped (it holds raw bytes of the body); what is left is cut to 80 printable ASCII characters.
std::string json_error(const std::string& body) {
  ErrorSax sax;
  json::sax_parse(body, &sax);
  std::string reason = after(sax.what, "] ");  // "[json.exception.parse_error.101] "
  if (reason.rfind("parse error", 0) == 0)
    reason = after(reason, ": ");  // "parse error at line 1, column 13: "
  reason = after(reason, " - ");   // "syntax error while parsing value - "
  reason = reason.substr(0, reason.find("; last read: "));
  if (reason.size() > 80) reason = reason.substr(0, 77) + "...";
  for (char& c : reason) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  const size_t at = sax.position > 0 ? sax.position - 1 : 0;
  return "at byte " + std::to_string(at) + (reason.empty() ? "" : ": " + reason);
}

json parse_object(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) {
    // nlohmann refuses any invalid UTF-8 (RFC 8259 wants UTF-8): say so rather than "syntax error".
    const long bad = utf8_error_offset(body);
    if (bad >= 0)
      throw ApiError(400, "invalid UTF-8 in the body at byte " + std::to_string(bad), "", "invalid_json");
    throw ApiError(400, "the body is not valid JSON " + json_error(body), "", "invalid_json");
  }
  if (!j.is_object()) {
    const std::string what = j.is_array() || j.is_string() || j.is_null() ? kind_of(j) : "a scalar";
    throw ApiError(400, "the body must be a JSON object, not " + what, "", "invalid_type");
  }
  return j;
}

// ---- fields --------------------------------------------------------------------------------------

// A field's value, or nullptr when it is absent or null (null means the default, as in OpenAI's API).
const json* find(const json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

ApiError wrong_type(const std::string& name, const std::string& want, const json& v,
                    const std::string& param) {
  return ApiError(400, name + " must be " + want + ", not " + kind_of(v), param, "invalid_type");
}

// A value where an integer belongs: a number with a fraction or an exponent shows itself ("16.0").
ApiError not_integer(const std::string& name, const json& v, const std::string& param) {
  if (v.is_number_float())
    return ApiError(400, name + " must be an integer, not " + v.dump(), param, "invalid_type");
  return wrong_type(name, "an integer", v, param);
}

ApiError out_of_range(const std::string& name, const json& v, const std::string& range,
                      const std::string& param) {
  return ApiError(400, name + " " + v.dump() + " is out of range: must be in " + range, param);
}

// An integer in lo..hi. nlohmann keeps a literal with a fraction or an exponent, or one past 64 bits,
// as a double: a whole one outside lo..hi is out of range (1e30), any other is not an integer (16.0).
long long integer(const json& v, const std::string& name, const std::string& param, long long lo,
                  long long hi) {
  const std::string range = std::to_string(lo) + ".." + std::to_string(hi);
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && (d < double(lo) || d > double(hi))) {
      throw out_of_range(name, v, range, param);
    }
  }
  if (!v.is_number_integer()) throw not_integer(name, v, param);
  if (v.is_number_unsigned() && v.get<unsigned long long>() > (unsigned long long)LLONG_MAX) {
    throw out_of_range(name, v, range, param);
  }
  const long long x = v.get<long long>();
  if (x < lo || x > hi) throw out_of_range(name, v, range, param);
  return x;
}

int integer(const json& j, const char* key, int lo, int hi, int fallback) {
  const json* v = find(j, key);
  return v ? int(integer(*v, key, key, lo, hi)) : fallback;
}

// A number in lo..hi ((lo, hi] when open_lo), checked again as the float it becomes (1e-50 is 0).
float real(const json& j, const char* key, double lo, double hi, bool open_lo, float fallback) {
  const json* v = find(j, key);
  if (!v) return fallback;
  if (!v->is_number()) throw wrong_type(key, "a number", *v, key);
  const double d = v->get<double>();
  const float f = float(d);
  if (!((open_lo ? d > lo && f > lo : d >= lo) && d <= hi && f <= hi)) {
    std::ostringstream range;
    range << (open_lo ? "(" : "") << lo << (open_lo ? ", " : "..") << hi << (open_lo ? "]" : "");
    throw out_of_range(key, *v, range.str(), key);
  }
  return f;
}

bool boolean(const json& j, const char* key, bool fallback, const std::string& name = "") {
  const json* v = find(j, key);
  if (!v) return fallback;
  if (!v->is_boolean())
    throw wrong_type(name.empty() ? key : name, "a boolean", *v, name.empty() ? key : name);
  return v->get<bool>();
}

// A string; nlohmann's parser has already refused invalid UTF-8, so the check only guards that contract.
std::string text(const json& v, const std::string& name, const std::string& param) {
  if (!v.is_string()) throw wrong_type(name, "a string", v, param);
  std::string s = v.get<std::string>();
  const long bad = utf8_error_offset(s);
  if (bad >= 0) throw ApiError(400, "invalid UTF-8 in " + name + " at byte " + std::to_string(bad), param);
  return s;
}

// Token ids in [0, vocab_size): "prompt[2][7] 50257 is out of range: must be in 0..50256".
std::vector<int> token_ids(const json& a, const std::string& name, const std::string& param, int vocab_size) {
  std::vector<int> ids;
  ids.reserve(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const json& v = a[i];
    if (v.is_number_unsigned() && v.get<unsigned long long>() < (unsigned long long)vocab_size) {
      ids.push_back(int(v.get<unsigned long long>()));  // the common case, without building a name
      continue;
    }
    ids.push_back(int(integer(v, name + "[" + std::to_string(i) + "]", param, 0, (long long)vocab_size - 1)));
  }
  return ids;
}

// ---- the completion request's parts --------------------------------------------------------------

ApiError too_many(const char* key, size_t size, int most) {
  return ApiError(400,
                  std::string(key) + " has " + std::to_string(size) + " entries: at most " +
                      std::to_string(most) + " are allowed",
                  key);
}

PromptInput tokens_prompt(const json& a, const std::string& name, int vocab_size) {
  PromptInput p;
  p.is_tokens = true;
  p.tokens = token_ids(a, name, "prompt", vocab_size);
  return p;
}

PromptInput text_prompt(const json& v, const std::string& name) {
  PromptInput p;
  p.text = text(v, name, "prompt");
  return p;
}

// A string, an array of strings, an array of token ids (one prompt) or an array of arrays of them; the
// first entry of an array decides which, and the others must match it.
std::vector<PromptInput> parse_prompts(const json& j, const RequestLimits& limits) {
  const json* p = find(j, "prompt");
  if (!p) return {PromptInput{}};
  if (p->is_string()) return {text_prompt(*p, "prompt")};
  if (!p->is_array()) throw wrong_type("prompt", "a string or an array", *p, "prompt");
  if (p->empty()) throw ApiError(400, "prompt must not be an empty array", "prompt");
  const json& first = p->front();
  if (first.is_number()) return {tokens_prompt(*p, "prompt", limits.vocab_size)};
  if (!first.is_string() && !first.is_array()) {
    throw wrong_type("prompt[0]", "a string, a token id or an array of token ids", first, "prompt");
  }
  if (p->size() > size_t(limits.max_prompts)) throw too_many("prompt", p->size(), limits.max_prompts);
  std::vector<PromptInput> out;
  out.reserve(p->size());
  for (size_t i = 0; i < p->size(); ++i) {
    const json& v = (*p)[i];
    const std::string name = "prompt[" + std::to_string(i) + "]";
    if (first.is_string()) {
      out.push_back(text_prompt(v, name));
      continue;
    }
    if (!v.is_array()) throw wrong_type(name, "an array of token ids", v, "prompt");
    if (v.empty()) throw ApiError(400, name + " must not be an empty array of token ids", "prompt");
    out.push_back(tokens_prompt(v, name, limits.vocab_size));
  }
  return out;
}

// A string or an array of up to max_stop strings, none empty.
std::vector<std::string> parse_stop(const json& j, const RequestLimits& limits) {
  const json* s = find(j, "stop");
  if (!s) return {};
  if (s->is_string()) {
    std::string one = text(*s, "stop", "stop");
    if (one.empty()) throw ApiError(400, "stop must not be an empty string", "stop");
    return {one};
  }
  if (!s->is_array()) throw wrong_type("stop", "a string or an array of strings", *s, "stop");
  if (s->size() > size_t(limits.max_stop)) throw too_many("stop", s->size(), limits.max_stop);
  std::vector<std::string> out;
  for (size_t i = 0; i < s->size(); ++i) {
    const std::string name = "stop[" + std::to_string(i) + "]";
    out.push_back(text((*s)[i], name, "stop"));
    if (out.back().empty()) throw ApiError(400, name + " must not be an empty string", "stop");
  }
  return out;
}

// 0..2^64-1; negative, fractional and past-64-bit numbers are refused.
std::optional<uint64_t> parse_seed(const json& j) {
  const json* v = find(j, "seed");
  if (!v) return std::nullopt;
  if (v->is_number_unsigned()) return v->get<uint64_t>();
  const std::string range = "0..18446744073709551615";
  if (v->is_number_integer()) throw out_of_range("seed", *v, range, "seed");  // negative
  if (v->is_number_float()) {
    const double d = v->get<double>();
    if (d == std::floor(d) && (d < 0 || d >= 18446744073709551616.0))
      throw out_of_range("seed", *v, range, "seed");
  }
  throw not_integer("seed", *v, "seed");
}

void parse_stream(const json& j, CompletionRequest& r) {
  r.stream = boolean(j, "stream", false);
  const json* so = find(j, "stream_options");
  if (!so) return;
  if (!r.stream) throw ApiError(400, "stream_options is only allowed when stream is true", "stream_options");
  if (!so->is_object()) throw wrong_type("stream_options", "an object", *so, "stream_options");
  r.include_usage = boolean(*so, "include_usage", false, "stream_options.include_usage");
}

// Fields of OpenAI's API that gen does not implement: refused by name unless they ask for the default.
void refuse_unsupported(const json& j) {
  auto unsupported = [](const std::string& what, const char* param) {
    return ApiError(400, what + " is not supported", param, "unsupported_parameter");
  };
  if (const json* v = find(j, "best_of")) {
    if (!v->is_number_integer()) throw not_integer("best_of", *v, "best_of");
    if (*v != 1) throw unsupported("best_of other than 1", "best_of");
  }
  for (const char* key : {"frequency_penalty", "presence_penalty"}) {
    const json* v = find(j, key);
    if (v && !v->is_number()) throw wrong_type(key, "a number", *v, key);
    if (v && v->get<double>() != 0) throw unsupported(std::string(key) + " other than 0", key);
  }
  if (find(j, "suffix")) throw unsupported("suffix", "suffix");
  if (const json* v = find(j, "logit_bias")) {
    if (!v->is_object()) throw wrong_type("logit_bias", "an object", *v, "logit_bias");
    if (!v->empty()) throw unsupported("logit_bias", "logit_bias");
  }
}

}  // namespace

// ---- the API -------------------------------------------------------------------------------------

ApiError::ApiError(int status, const std::string& message, const std::string& param, const std::string& code,
                   const std::string& type)
    : std::runtime_error(message),
      status_(status),
      type_(type.empty() ? default_type(status) : type),
      param_(param),
      code_(code) {}

std::string error_body(const ApiError& e) {
  using ordered = nlohmann::ordered_json;  // OpenAI's order: message, type, param, code
  ordered err = {{"message", e.what()},
                 {"type", e.type()},
                 {"param", e.param().empty() ? ordered(nullptr) : ordered(e.param())},
                 {"code", e.code().empty() ? ordered(nullptr) : ordered(e.code())}};
  // replace: a message can never make the error body itself fail (dump throws on invalid UTF-8).
  return ordered({{"error", err}}).dump(-1, ' ', false, ordered::error_handler_t::replace);
}

CompletionRequest parse_completion_request(const std::string& body, const RequestLimits& limits) {
  const json j = parse_object(body);
  CompletionRequest r;
  r.prompts = parse_prompts(j, limits);
  if (const json* m = find(j, "model")) r.model = text(*m, "model", "model");
  r.max_tokens = integer(j, "max_tokens", 0, limits.max_tokens, 16);
  r.temperature = real(j, "temperature", 0, 2, false, 1.0f);
  r.top_p = real(j, "top_p", 0, 1, true, 1.0f);
  r.top_k = std::max(0, integer(j, "top_k", -1, 1 << 24, 0));  // -1 (vLLM's "off") is 0
  r.n = integer(j, "n", 1, limits.max_n, 1);
  r.stop = parse_stop(j, limits);
  r.seed = parse_seed(j);
  parse_stream(j, r);
  if (find(j, "logprobs")) r.logprobs = integer(j, "logprobs", 0, limits.max_logprobs, 0);
  r.echo = boolean(j, "echo", false);
  r.ignore_eos = boolean(j, "ignore_eos", false);
  if (const json* u = find(j, "user")) text(*u, "user", "user");  // checked, then ignored
  refuse_unsupported(j);
  return r;
}

TokenizeRequest parse_tokenize_request(const std::string& body) {
  const json j = parse_object(body);
  const json* c = find(j, "content");
  if (!c) throw ApiError(400, "content is required", "content");
  TokenizeRequest r;
  r.content = text(*c, "content", "content");
  boolean(j, "add_special", false);  // checked, then ignored: GPT-2 adds no special tokens
  r.with_pieces = boolean(j, "with_pieces", false);
  return r;
}

std::vector<int> parse_detokenize_request(const std::string& body, const RequestLimits& limits) {
  const json j = parse_object(body);
  const json* t = find(j, "tokens");
  if (!t) throw ApiError(400, "tokens is required", "tokens");
  if (!t->is_array()) throw wrong_type("tokens", "an array of token ids", *t, "tokens");
  return token_ids(*t, "tokens", "tokens", limits.vocab_size);
}

}  // namespace gen::serve
