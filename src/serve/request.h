// gen serve's request bodies: JSON text -> validated requests, and OpenAI-style error bodies. Pure
// functions over untrusted bytes (a libFuzzer target covers them): no tokenizer, no model, no HTTP.
// Every refusal is an ApiError that the server turns into its HTTP status and
// {"error": {"message", "type", "param", "code"}}.
#pragma once
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace gen::serve {

// A refusal of a request: HTTP status (400, 401, 404, 413, 503, ...), OpenAI's error type
// ("invalid_request_error", "authentication_error", "server_error", ...), the offending field ("" when
// none) and a short code ("" when none; e.g. "invalid_type", "model_not_found", "context_length_exceeded").
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, const std::string& message, const std::string& param = "",
           const std::string& code = "", const std::string& type = "");
  int status() const { return status_; }
  const std::string& type() const { return type_; }
  const std::string& param() const { return param_; }
  const std::string& code() const { return code_; }

 private:
  int status_;
  std::string type_, param_, code_;
};

// {"error": {"message": ..., "type": ..., "param": ... or null, "code": ... or null}}, one line.
std::string error_body(const ApiError& e);

// What the server allows; the parser checks every field against these.
struct RequestLimits {
  int max_tokens = 1 << 24;  // per request (--max-tokens of gen serve may lower it)
  int max_n = 128;           // completions per prompt
  int max_prompts = 1024;    // entries of an array prompt
  int max_logprobs = 20;     // OpenAI allows 0..5; llama.cpp and vLLM more
  int max_stop = 4;          // OpenAI: up to 4 stop sequences
  int vocab_size = 50257;    // token ids in a prompt must lie in [0, vocab_size)
};

// One prompt of a request: text (UTF-8, checked) or token ids (checked against the vocabulary).
struct PromptInput {
  bool is_tokens = false;
  std::string text;
  std::vector<int> tokens;
};

// POST /v1/completions, validated. Defaults are OpenAI's.
struct CompletionRequest {
  std::vector<PromptInput> prompts;   // 1..max_prompts; "prompt" absent: one empty prompt (<|endoftext|>)
  std::string model;                  // "" when absent (allowed); the server checks the name
  int max_tokens = 16;                // OpenAI's default; null -> 16
  float temperature = 1.0f;           // 0..2 (OpenAI's range); 0: greedy
  float top_p = 1.0f;                 // (0, 1]
  int top_k = 0;                      // an extension (as llama.cpp, vLLM): 0 or -1 off; >= 0 after parsing
  int n = 1;                          // 1..max_n completions per prompt
  std::vector<std::string> stop;      // a string or an array of up to max_stop non-empty strings
  std::optional<uint64_t> seed;       // 0..2^64-1 (a negative or fractional number is refused)
  bool stream = false;
  bool include_usage = false;         // stream_options.include_usage: a last chunk with usage
  std::optional<int> logprobs;        // 0..max_logprobs: top alternatives per token (0: only the token's)
  bool echo = false;                  // the prompt's text before each completion
  bool ignore_eos = false;            // an extension (llama.cpp, vLLM): do not stop at <|endoftext|>
};

// Parses and validates a body. Throws ApiError(400) for bad JSON (not an object), a wrong type, a
// value out of range (NaN and Infinity included, as JSON cannot hold them: text such as "NaN" is bad
// JSON), invalid UTF-8 in any string, an unsupported field (the ones OpenAI has that gen
// does not support, such as "best_of" > 1, "suffix", "logit_bias", "frequency_penalty" or
// "presence_penalty" other than 0, are refused by name; fields gen does not know at all, such as
// "response_format", are ignored as OpenAI's servers ignore them). The message names the field, and
// so does "param".
// Null in any field means its default. Messages are one line, with no bytes of the body but numbers:
//   bad JSON, invalid UTF-8  code "invalid_json", no param: "the body is not valid JSON at byte 16:
//                            invalid literal", "invalid UTF-8 in the body at byte 14" (0-based offsets).
//                            A number past double's range (1e400) is bad JSON too (nlohmann refuses it).
//   a wrong type             code "invalid_type": "max_tokens must be an integer, not a string"; an
//                            integer field refuses any fraction or exponent ("..., not 16.0").
//   out of range             no code: "temperature 2.5 is out of range: must be in 0..2"; entries of
//                            arrays are named by index: "prompt[1][2] 50257 is out of range: ...".
//   unsupported              code "unsupported_parameter": "best_of other than 1 is not supported".
// "user" must be a string (then ignored); "stream_options" needs "stream": true; "top_k" -1 is 0.
CompletionRequest parse_completion_request(const std::string& body, const RequestLimits& limits);

// POST /tokenize: {"content": "text", "add_special": bool (ignored: GPT-2 adds none), "with_pieces": bool}
// (llama-server's names). POST /detokenize: {"tokens": [ids]}.
struct TokenizeRequest {
  std::string content;
  bool with_pieces = false;
};
TokenizeRequest parse_tokenize_request(const std::string& body);
std::vector<int> parse_detokenize_request(const std::string& body, const RequestLimits& limits);

}  // namespace gen::serve
