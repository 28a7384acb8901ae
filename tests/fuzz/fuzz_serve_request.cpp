// libFuzzer target: arbitrary bytes as the body of POST /v1/completions, /tokenize and /detokenize to
// gen serve's request parsers. ApiError(400) is the contract for a bad body (with a one-line, valid
// UTF-8 message and an error body that is JSON); any other exception escapes and aborts (a finding),
// and what is accepted must hold the documented invariants.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "gen/tokenizer.h"
#include "serve/request.h"

namespace {

using namespace gen::serve;

bool utf8(const std::string& s) { return gen::utf8_error_offset(s) < 0; }

void check_refusal(const ApiError& e) {
  const std::string message = e.what();
  if (e.status() != 400 || e.type() != "invalid_request_error" || message.empty()) abort();
  if (message.find('\n') != std::string::npos || !utf8(message)) abort();
  const std::string body = error_body(e);
  if (body.find('\n') != std::string::npos || !nlohmann::json::accept(body)) abort();
}

void check_ids(const std::vector<int>& ids, const RequestLimits& limits) {
  for (int id : ids) {
    if (id < 0 || id >= limits.vocab_size) abort();
  }
}

void check_completion(const CompletionRequest& r, const RequestLimits& limits) {
  if (r.prompts.empty() || r.prompts.size() > size_t(limits.max_prompts)) abort();
  for (const PromptInput& p : r.prompts) {
    if (p.is_tokens && (p.tokens.empty() || !p.text.empty())) abort();
    if (!p.is_tokens && (!p.tokens.empty() || !utf8(p.text))) abort();
    check_ids(p.tokens, limits);
  }
  if (!utf8(r.model)) abort();
  if (r.max_tokens < 0 || r.max_tokens > limits.max_tokens) abort();
  if (!(r.temperature >= 0 && r.temperature <= 2)) abort();  // NaN fails too
  if (!(r.top_p > 0 && r.top_p <= 1)) abort();
  if (r.top_k < 0 || r.top_k > (1 << 24)) abort();
  if (r.n < 1 || r.n > limits.max_n) abort();
  if (r.stop.size() > size_t(limits.max_stop)) abort();
  for (const std::string& s : r.stop) {
    if (s.empty() || !utf8(s)) abort();
  }
  if (r.logprobs && (*r.logprobs < 0 || *r.logprobs > limits.max_logprobs)) abort();
  if (r.include_usage && !r.stream) abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  RequestLimits small;  // the defaults, and tight limits that the fuzzer can reach past
  small.max_tokens = 100;
  small.max_n = 2;
  small.max_prompts = 2;
  small.max_logprobs = 1;
  small.max_stop = 1;
  small.vocab_size = 300;
  for (const RequestLimits& limits : {RequestLimits{}, small}) {
    try {
      check_completion(parse_completion_request(body, limits), limits);
    } catch (const ApiError& e) {
      check_refusal(e);
    }
    try {
      check_ids(parse_detokenize_request(body, limits), limits);
    } catch (const ApiError& e) {
      check_refusal(e);
    }
  }
  try {
    if (!utf8(parse_tokenize_request(body).content)) abort();
  } catch (const ApiError& e) {
    check_refusal(e);
  }
  return 0;
}
