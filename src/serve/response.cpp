#include "serve/response.h"

#include <algorithm>

namespace gen::serve {

using nlohmann::json;

namespace {

// The largest n <= end at which a UTF-8 character starts (or end itself when text ends whole there).
size_t char_boundary(const std::string& s, size_t end) {
  while (end > 0 && end < s.size() && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return end;
}

}  // namespace

ChoiceText::ChoiceText(std::vector<std::string> stops) : stops_(std::move(stops)) {
  for (const auto& s : stops_) hold_ = std::max(hold_, s.empty() ? size_t(0) : s.size() - 1);
}

size_t ChoiceText::safe_end() const {
  size_t end = text_.size() > hold_ ? text_.size() - hold_ : 0;
  for (const auto& s : stops_) {  // a stop string completed by the last piece: nothing from it on
    if (s.empty()) continue;
    const size_t at = text_.find(s, sent_);
    if (at != std::string::npos) end = std::min(end, at);
  }
  return std::max(sent_, char_boundary(text_, end));
}

std::string ChoiceText::push(const std::string& piece) {
  text_ += piece;
  const size_t end = safe_end();
  std::string out = text_.substr(sent_, end - sent_);
  sent_ = end;
  return out;
}

std::string ChoiceText::finish(bool stopped) {
  if (stopped) {
    size_t cut = text_.size();
    for (const auto& s : stops_) {
      if (s.empty()) continue;
      const size_t at = text_.find(s);
      if (at != std::string::npos) cut = std::min(cut, at);
    }
    // A stop string never starts inside what was sent: the held-back tail covers any that ends later.
    text_.resize(std::max(cut, sent_));
  }
  std::string out = text_.substr(sent_);
  sent_ = text_.size();
  return out;
}

std::string finish_reason(const std::string& r) {
  if (r == "eos" || r == "stop") return "stop";
  if (r == "length" || r == "context") return "length";
  if (r == "cancelled" || r == "interrupted") return "";
  return r;
}

std::string token_string(const Tokenizer& tok, int id) { return tok.decode({id}); }

namespace {
json top_json(const Tokenizer& tok, const TokenLogprob& lp) {
  json top = json::object();
  for (const auto& [id, v] : lp.top) {
    const std::string name = token_string(tok, id);
    if (!top.contains(name)) top[name] = v;  // two ids with one string: the likelier one's value
  }
  return top;
}
}  // namespace

json prompt_logprobs_json(const Tokenizer& tok, const std::vector<int>& ids, const std::vector<TokenLogprob>& lps) {
  json tokens = json::array(), values = json::array(), tops = json::array(), offsets = json::array();
  size_t offset = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string s = token_string(tok, ids[i]);
    tokens.push_back(s);
    const bool has = i > 0 && i - 1 < lps.size();
    values.push_back(has ? json(lps[i - 1].logprob) : json(nullptr));
    tops.push_back(has ? top_json(tok, lps[i - 1]) : json(nullptr));
    offsets.push_back(offset);
    offset += s.size();
  }
  return json{{"tokens", tokens}, {"token_logprobs", values}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

void append_logprobs(json& a, const json& b) {
  for (const char* key : {"tokens", "token_logprobs", "top_logprobs", "text_offset"}) {
    for (const auto& v : b[key]) a[key].push_back(v);
  }
}

json logprobs_json(const Tokenizer& tok, const std::vector<TokenLogprob>& lps, size_t from, size_t to,
                   size_t offset0) {
  json tokens = json::array(), values = json::array(), tops = json::array(), offsets = json::array();
  size_t offset = offset0;
  for (size_t i = from; i < to && i < lps.size(); ++i) {
    const TokenLogprob& lp = lps[i];
    const std::string s = token_string(tok, lp.token);
    tokens.push_back(s);
    values.push_back(lp.logprob);
    tops.push_back(top_json(tok, lp));
    offsets.push_back(offset);
    offset += s.size();
  }
  return json{{"tokens", tokens}, {"token_logprobs", values}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

json usage_json(long prompt_tokens, long completion_tokens) {
  return json{{"prompt_tokens", prompt_tokens},
              {"completion_tokens", completion_tokens},
              {"total_tokens", prompt_tokens + completion_tokens}};
}

json completion_head(const std::string& id, int64_t created, const std::string& model) {
  return json{{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", model}};
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string sse_event(const json& j) { return "data: " + dump(j) + "\n\n"; }

}  // namespace gen::serve
