// gen chat's conversation, independent of stdin and stdout: the token ids of a multi-turn dialogue
// and a Session whose KV cache holds them across turns, so a turn prefills only what is new.
#pragma once
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "gen/generator.h"
#include "gen/tokenizer.h"

namespace gen {

struct ChatOptions {
  std::string system;                  // text that starts the conversation ("": none)
  std::string user_prefix = "User: ";  // a turn is user_prefix + line + "\n" + bot_prefix
  std::string bot_prefix = "Assistant:";
  // Per reply: max_new_tokens, sampling, seed, use_cache, ignore_eos, stop. The Chat sets max_ctx
  // (its own context) and stop_strings (the stop string below) on each call.
  GenOptions gen;
};

// What a conversation is, apart from its K/V: the settings its ids were made with and the ids turn by
// turn (gen chat --session saves it after every turn; gen/chat_session.h).
struct ChatState {
  std::string system, user_prefix, bot_prefix;
  uint64_t seed = 0;      // every reply draws with it
  int turns_done = 0;     // turns that ran; the next is turns_done + 1
  std::vector<int> system_ids;
  std::vector<std::vector<int>> turns;  // per kept turn: its user piece, then the kept reply and newline
};

// One turn that ran.
struct ChatTurn {
  int number = 0;           // 1, 2, ... (lines that failed do not count)
  std::vector<int> prompt;  // the conversation ids the reply was generated from
  GenResult result;         // as Generator::generate returned it: tokens, finish_reason, timing
  std::string reply;        // the text shown: without the stop string and outer whitespace
  int kept_tokens = 0;      // leading reply tokens kept in the conversation
  int dropped_turns = 0;    // oldest turns dropped before this one so that it fits
  int context_used() const { return int(prompt.size() + result.tokens.size()); }
};

// "\n" + user_prefix without its trailing spaces: where the model starts writing the user's part.
std::string chat_stop_string(const std::string& user_prefix);

// How many leading reply tokens the conversation keeps: all but the EOS that ended it; after a stop string,
// those up to and including its leading "\n" (a token is never split: the last one that ends at or
// before that newline). Dropping a suffix keeps the conversation a prefix of what the cache saw.
int reply_tokens_to_keep(const Tokenizer& tok, const std::vector<int>& tokens,
                         const std::string& finish_reason, const std::string& stop);

// Turns streamed reply pieces into the text shown: text that may still become the stop string is
// held until it cannot, the stop string and what follows it are never shown, and leading and
// trailing whitespace is dropped. Pieces are complete UTF-8; so is what it returns (it cuts only
// before ASCII bytes).
class ReplyFilter {
 public:
  explicit ReplyFilter(std::string stop) : stop_(std::move(stop)) {}
  std::string push(const std::string& piece);  // what can be shown now
  std::string finish();                        // the rest, once the reply has ended

 private:
  std::string release(size_t limit);
  std::string stop_;
  std::string all_;   // the whole reply text so far
  size_t shown_ = 0;  // all_[0, shown_) was returned (or skipped as leading whitespace)
  bool started_ = false;
  bool stopped_ = false;
};

class Chat {
 public:
  // max_ctx: the run's context (effective_context). Throws InputError when the system text leaves no
  // room for a turn.
  Chat(Generator& generator, const Tokenizer& tok, ChatOptions opt, int max_ctx);

  struct Callbacks {
    TextCallback on_text;  // the shown text, streamed (ReplyFilter's output)
    // Before generating, when the oldest turns were dropped to fit: how many, and how many prompt
    // tokens will be computed again (what the cache cannot reuse).
    std::function<void(int dropped, int to_prefill)> on_trim;
  };
  // One user line -> one reply. Throws InputError (the conversation unchanged) for invalid UTF-8 or a
  // line that cannot fit the context even with every earlier turn dropped.
  ChatTurn turn(const std::string& line, const Callbacks& cb = {});

  // The conversation: system text, then every kept turn but the `skip` oldest.
  std::vector<int> ids(int skip = 0) const;
  const std::vector<int>& system_ids() const { return system_; }
  int turns_kept() const { return int(turns_.size()); }
  int context() const { return ctx_; }
  const std::string& stop_string() const { return stop_; }
  const Session& session() const { return session_; }
  ChatState state() const;
  // Continues a saved conversation: its ids, turn count, and a session whose cache holds K/V for the
  // session's ids (any prefix of the conversation; the rest is prefilled by the next turn). The
  // state's settings must be this chat's (Error otherwise: the caller builds the chat from them).
  void restore(const ChatState& state, Session session);

 private:
  int length() const;                                  // ids().size() without building it
  int reusable(const std::vector<int>& prompt) const;  // prompt tokens the session's cache holds
  int turns_to_drop(int piece_tokens) const;           // oldest turns to drop for the next turn to fit

  Generator& gen_;
  const Tokenizer& tok_;
  ChatOptions opt_;
  int ctx_;
  std::string stop_;
  std::vector<int> system_;
  std::vector<int> newline_;            // encode("\n"): ends a reply that does not end with a newline
  std::deque<std::vector<int>> turns_;  // per turn: its user piece, then the kept reply and newline
  Session session_;
  int number_ = 0;
};

}  // namespace gen
