// gen serve's response bodies: the text of one choice as OpenAI returns it (a stop sequence cut off,
// streamed without ever sending a part of one), log-probabilities, and the JSON of responses and of
// Server-Sent Event chunks. Pure functions of what the engine produced.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gen/sampler.h"
#include "gen/tokenizer.h"

namespace gen::serve {

// One choice's text as it grows. The engine's text keeps a stop string and what its last token
// brought after it (the CLI's, Hugging Face's stop_strings); OpenAI's ends before the stop string. So
// while streaming, the last (longest stop - 1) bytes are held back (they may begin a stop string), and
// at the end the text is cut at the first stop string.
class ChoiceText {
 public:
  explicit ChoiceText(std::vector<std::string> stops);
  // Appends a piece of complete UTF-8 text; returns what can be sent now (complete UTF-8, never a part
  // of a stop string).
  std::string push(const std::string& piece);
  // The generation ended: returns the rest to send (up to the first stop string when `stopped`).
  std::string finish(bool stopped);
  const std::string& text() const { return text_; }  // all of it so far (after finish: the final text)

 private:
  size_t safe_end() const;  // bytes of text_ that can be sent
  std::vector<std::string> stops_;
  size_t hold_ = 0;  // longest stop - 1
  std::string text_;
  size_t sent_ = 0;
};

// OpenAI's finish_reason for the engine's: "eos" and "stop" -> "stop"; "length" and "context" ->
// "length"; "cancelled" and "interrupted" (the server stopped first) -> "" (OpenAI has none: a stream's
// chunk says null, and the error event after it says why); anything else as it is.
std::string finish_reason(const std::string& engine_reason);

// A token as logprobs name it: its bytes as UTF-8, an invalid byte (part of a character) as U+FFFD.
std::string token_string(const Tokenizer& tok, int id);

// The legacy completions logprobs object for tokens [from, to) of `lps`: {"tokens", "token_logprobs",
// "top_logprobs", "text_offset"}; offsets start at `offset0` and grow by each token's string.
nlohmann::json logprobs_json(const Tokenizer& tok, const std::vector<TokenLogprob>& lps, size_t from, size_t to,
                             size_t offset0);

// The same object for a prompt echoed with its log-probabilities: ids[0] has none (null, as OpenAI),
// lps[i - 1] is token i's (gen::prompt_logprobs). Offsets start at 0.
nlohmann::json prompt_logprobs_json(const Tokenizer& tok, const std::vector<int>& ids,
                                    const std::vector<TokenLogprob>& lps);
// a's arrays followed by b's (a logprobs object and the next one).
void append_logprobs(nlohmann::json& a, const nlohmann::json& b);

// {"prompt_tokens", "completion_tokens", "total_tokens"}.
nlohmann::json usage_json(long prompt_tokens, long completion_tokens);

// The fields every completion object starts with: id, object "text_completion", created, model.
nlohmann::json completion_head(const std::string& id, int64_t created, const std::string& model);

// One SSE event: "data: <one-line JSON>\n\n" (invalid UTF-8 replaced, never a throw).
std::string sse_event(const nlohmann::json& j);

// JSON text of j on one line, invalid UTF-8 replaced by U+FFFD.
std::string dump(const nlohmann::json& j);

}  // namespace gen::serve
