#include "gen/chat.h"

#include <algorithm>

#include "gen/error.h"

namespace gen {

namespace {
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

bool ends_with_newline(const Tokenizer& tok, const std::vector<int>& ids, int n) {
  for (int i = n - 1; i >= 0; --i) {  // the last token with any bytes decides
    const std::string& b = tok.token_bytes(ids[i]);
    if (!b.empty()) return b.back() == '\n';
  }
  return false;
}
}  // namespace

std::string chat_stop_string(const std::string& user_prefix) {
  std::string s = user_prefix;
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.pop_back();
  return "\n" + s;
}

int reply_tokens_to_keep(const Tokenizer& tok, const std::vector<int>& tokens,
                         const std::string& finish_reason, const std::string& stop) {
  const int n = int(tokens.size());
  if (finish_reason == "eos" && n > 0) return n - 1;  // the EOS that ended it
  if (finish_reason != "stop" || stop.empty()) return n;
  // Raw bytes, not the U+FFFD-cleaned text, so that offsets line up with token boundaries.
  std::string bytes;
  for (int id : tokens) bytes += tok.token_bytes(id);
  const size_t pos = bytes.find(stop);
  if (pos == std::string::npos) return n;
  const size_t target = pos + 1;  // keep the stop string's leading "\n": it ends the reply's line
  size_t end = 0;
  int keep = 0;
  while (keep < n && end + tok.token_bytes(tokens[keep]).size() <= target)
    end += tok.token_bytes(tokens[keep++]).size();
  return keep;
}

std::string ReplyFilter::release(size_t limit) {
  // Whitespace at the end is held: shown only once something follows it.
  while (limit > shown_ && is_space(all_[limit - 1])) --limit;
  if (!started_) {
    while (shown_ < limit && is_space(all_[shown_])) ++shown_;
    started_ = shown_ < limit;
  }
  if (limit <= shown_) return "";
  std::string out = all_.substr(shown_, limit - shown_);
  shown_ = limit;
  return out;
}

std::string ReplyFilter::push(const std::string& piece) {
  if (stopped_) return "";
  all_ += piece;
  const size_t pos = all_.find(stop_, shown_ > stop_.size() ? shown_ - stop_.size() : 0);
  if (pos != std::string::npos) {
    stopped_ = true;
    return release(pos);
  }
  // Hold the longest tail that is a proper prefix of the stop string: it may still become one.
  size_t hold = std::min(all_.size(), stop_.size() - 1);
  while (hold > 0 && all_.compare(all_.size() - hold, hold, stop_, 0, hold) != 0) --hold;
  return release(all_.size() - hold);
}

std::string ReplyFilter::finish() {
  if (stopped_) return "";
  stopped_ = true;
  return release(all_.size());  // no stop string came: a held prefix of it was the model's text
}

Chat::Chat(Generator& generator, const Tokenizer& tok, ChatOptions opt, int max_ctx)
    : gen_(generator), tok_(tok), opt_(std::move(opt)), ctx_(max_ctx) {
  stop_ = chat_stop_string(opt_.user_prefix);
  newline_ = tok_.encode("\n");
  if (!opt_.system.empty()) {
    // The system text is a line of its own, so any later turn can follow it once older ones are dropped.
    const bool nl = opt_.system.back() == '\n';
    system_ = tok_.encode(nl ? opt_.system : opt_.system + "\n");
    if (int(system_.size()) >= ctx_) {
      throw InputError("the system text is " + std::to_string(system_.size()) +
                           " tokens: it leaves no room for a turn in the context of " + std::to_string(ctx_),
                       "--system");
    }
  }
}

int Chat::length() const {
  size_t n = system_.size();
  for (const auto& t : turns_) n += t.size();
  return int(n);
}

std::vector<int> Chat::ids(int skip) const {
  std::vector<int> out(system_);
  for (size_t i = size_t(skip); i < turns_.size(); ++i)
    out.insert(out.end(), turns_[i].begin(), turns_[i].end());
  return out;
}

int Chat::reusable(const std::vector<int>& prompt) const {
  if (!opt_.gen.use_cache) return 0;
  // The Generator's rule: the longest common prefix, leaving at least one token to compute.
  return int(common_prefix(session_.tokens, prompt, prompt.size() - 1));
}

int Chat::turns_to_drop(int piece_tokens) const {
  // Room for the whole next reply if dropping turns can make it; GPT-2's positions are absolute, so
  // the cache cannot slide and whatever follows the dropped turns is prefilled again.
  const long reply = std::max(opt_.gen.max_new_tokens, 0);
  long total = length();
  int dropped = 0;
  while (dropped < int(turns_.size()) && total + piece_tokens + reply > ctx_) {
    total -= long(turns_[dropped++].size());
  }
  return dropped;
}

ChatTurn Chat::turn(const std::string& line, const Callbacks& cb) {
  const long bad = utf8_error_offset(line);
  if (bad >= 0) throw InputError("invalid UTF-8 at byte " + std::to_string(bad), "");
  std::vector<int> piece = tok_.encode(opt_.user_prefix + line + "\n" + opt_.bot_prefix);
  const int fixed = int(system_.size() + piece.size());
  if (fixed >= ctx_) {
    throw InputError("the line takes " + std::to_string(fixed) + " tokens" +
                         (system_.empty() ? "" : " with the system text") +
                         ": no room for a reply in the context of " + std::to_string(ctx_),
                     "");
  }
  ChatTurn t;
  t.number = number_ + 1;
  t.dropped_turns = turns_to_drop(int(piece.size()));  // dropped once the reply is there
  t.prompt = ids(t.dropped_turns);
  t.prompt.insert(t.prompt.end(), piece.begin(), piece.end());
  if (t.dropped_turns > 0 && cb.on_trim)
    cb.on_trim(t.dropped_turns, int(t.prompt.size()) - reusable(t.prompt));

  GenOptions o = opt_.gen;
  o.max_ctx = ctx_;
  o.stop_strings = {stop_};
  ReplyFilter filter(stop_);
  auto show = [&](const std::string& s) {
    if (s.empty()) return;
    t.reply += s;
    if (cb.on_text) cb.on_text(s);
  };
  t.result = gen_.generate(
      t.prompt, o, [&](const std::string& s) { show(filter.push(s)); }, &session_);
  show(filter.finish());
  turns_.erase(turns_.begin(), turns_.begin() + t.dropped_turns);

  const auto& toks = t.result.tokens;
  t.kept_tokens = reply_tokens_to_keep(tok_, toks, t.result.finish_reason, stop_);
  piece.insert(piece.end(), toks.begin(), toks.begin() + t.kept_tokens);
  if (!ends_with_newline(tok_, toks, t.kept_tokens))
    piece.insert(piece.end(), newline_.begin(), newline_.end());
  turns_.push_back(std::move(piece));
  ++number_;
  return t;
}

ChatState Chat::state() const {
  ChatState st;
  st.system = opt_.system;
  st.user_prefix = opt_.user_prefix;
  st.bot_prefix = opt_.bot_prefix;
  st.seed = opt_.gen.seed;
  st.turns_done = number_;
  st.system_ids = system_;
  st.turns.assign(turns_.begin(), turns_.end());
  return st;
}

void Chat::restore(const ChatState& st, Session session) {
  if (st.system != opt_.system || st.user_prefix != opt_.user_prefix || st.bot_prefix != opt_.bot_prefix ||
      st.seed != opt_.gen.seed) {
    throw Error("Chat::restore: the saved settings are not this chat's");
  }
  system_ = st.system_ids;
  turns_.assign(st.turns.begin(), st.turns.end());
  number_ = st.turns_done;
  session_ = std::move(session);
}

}  // namespace gen
