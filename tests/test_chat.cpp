// gen chat's conversation (gen::Chat): the KV cache kept across turns prefills only what is new, and
// every reply is what a fresh run on the whole conversation gives; trimming, no-cache, stop strings,
// the shown text and bad lines.
#include <catch2/catch.hpp>
#include <csignal>

#include "fixture_model.h"
#include "gen/chat.h"
#include "cpu/cpu_backend.h"
#include "gen/error.h"
#include "test_util.h"

using namespace gen;
using namespace gen::test;
using namespace std::string_literals;

namespace {

std::vector<int> bytes_ids(const std::string& s) { return std::vector<int>(s.begin(), s.end()); }

// A stand-in model with scripted answers, to reach the stop string and EOS on purpose (the tiny
// random fixtures never write "\nU:"). After the last "A:" it writes " ok<d>" (d: how many "A:" it
// has seen, mod 10), then "\nU: more" or EOS, then 'z' forever. Ids are bytes (the tiny tokenizer's).
// It keeps each cache slot's tokens as a real backend keeps their K and V: a wrong reuse of the
// cache shows up as a different answer.
class ScriptedBackend : public Backend {
 public:
  explicit ScriptedBackend(bool eos) : eos_(eos) {
    cfg_.n_layer = 1;
    cfg_.n_head = 1;
    cfg_.n_embd = 4;
    cfg_.n_positions = 128;
    cfg_.vocab_size = 320;
    cfg_.eos_token_id = 319;
  }
  std::string name() const override { return "scripted"; }
  std::string dtype() const override { return "fp32"; }
  const ModelConfig& config() const override { return cfg_; }
  void reserve(int) override {}
  std::string kv_dtype() const override { return "f32"; }
  size_t memory_available() const override { return 0; }

 protected:
  void copy_kv_positions(const KVCache&, int, int, KVCache&, int, int, int) override { no_kv(); }
  void download_kv(const KVCache&, int, int, void*, int) override { no_kv(); }
  void upload_kv(KVCache&, int, const void*, int, int) override { no_kv(); }
  [[noreturn]] static void no_kv() { throw Error("the scripted backend keeps no K/V to move"); }
  std::unique_ptr<KVCache> new_cache(int slots, int max_ctx) override {
    hist_.assign(slots, {});
    return std::make_unique<KVCache>(cfg_, slots, max_ctx, 4);
  }
  void compute(const std::vector<SeqInput>& batch, KVCache* cache, float* logits, bool) override {
    for (size_t i = 0; i < batch.size(); ++i) {
      const SeqInput& s = batch[i];
      std::vector<int> seq = s.tokens;
      if (cache) {
        auto& h = hist_[s.slot];
        h.resize(s.pos0);
        h.insert(h.end(), s.tokens.begin(), s.tokens.end());
        seq = h;
      }
      float* row = logits + i * size_t(cfg_.vocab_size);
      std::fill(row, row + cfg_.vocab_size, 0.0f);
      row[next(seq)] = 1.0f;
    }
  }

 private:
  int next(const std::vector<int>& seq) const {
    int seen = 0;
    size_t after = 0;
    for (size_t i = 0; i + 1 < seq.size(); ++i) {
      if (seq[i] == 'A' && seq[i + 1] == ':') ++seen, after = i + 2;
    }
    std::vector<int> script = bytes_ids(" ok" + std::string(1, char('0' + seen % 10)));
    if (eos_)
      script.push_back(cfg_.eos_token_id);
    else
      for (int b : bytes_ids("\nU: more")) script.push_back(b);
    const size_t k = seq.size() - after;
    return seen > 0 && k < script.size() ? script[k] : 'z';
  }
  bool eos_;
  ModelConfig cfg_;
  std::vector<std::vector<int>> hist_;  // per slot: the tokens "in the cache"
};

ChatOptions short_prefixes(int n) {
  ChatOptions o;
  o.user_prefix = "U: ";
  o.bot_prefix = "A:";
  o.gen.max_new_tokens = n;
  o.gen.sampling.temperature = 0;
  return o;
}

std::vector<int> cat(std::vector<int> a, const std::vector<int>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// The reply equals a fresh run (no session, nothing cached) on the very prompt the turn used.
void require_fresh_equal(Generator& g, const ChatTurn& t, const ChatOptions& o, int ctx,
                         const std::string& stop) {
  GenOptions fresh = o.gen;
  fresh.max_ctx = ctx;
  fresh.stop_strings = {stop};
  const GenResult r = g.generate(t.prompt, fresh);
  REQUIRE(r.tokens == t.result.tokens);
  REQUIRE(r.finish_reason == t.result.finish_reason);
}

}  // namespace

TEST_CASE("chat: the stop string is the user prefix without its trailing spaces, after a newline", "[chat]") {
  REQUIRE(chat_stop_string("User: ") == "\nUser:");
  REQUIRE(chat_stop_string("Q:\t ") == "\nQ:");
  REQUIRE(chat_stop_string("") == "\n");
}

TEST_CASE("chat: the shown text holds back what may become the stop string, and never shows it", "[chat]") {
  auto run = [](const std::vector<std::string>& pieces) {
    ReplyFilter f("\nUser:");
    std::string out;
    for (const auto& p : pieces) out += f.push(p);
    return out + f.finish();
  };
  const std::string text = " Hello there.\nUser: more";
  REQUIRE(run({text}) == "Hello there.");
  std::vector<std::string> bytes;
  for (char c : text) bytes.emplace_back(1, c);
  REQUIRE(run(bytes) == "Hello there.");
  REQUIRE(run({" a\n", "Us"}) == "a\nUs");               // the reply ended before the stop string completed
  REQUIRE(run({" two\n\nlines \n"}) == "two\n\nlines");  // outer whitespace dropped, inner kept
  REQUIRE(run({"\nUser:"}).empty());
  REQUIRE(run({"caf\xc3\xa9\n", "User: x"}) == "caf\xc3\xa9");

  ReplyFilter f("\nUser:");  // nothing that may be the stop string is shown before it is settled
  REQUIRE(f.push(" Hi") == "Hi");
  REQUIRE(f.push("\nUs").empty());
  REQUIRE(f.push("e").empty());
  REQUIRE(f.push("d it") == "\nUsed it");
}

TEST_CASE("chat: a reply keeps its tokens up to the stop string's newline, without a final EOS", "[chat]") {
  Tokenizer tok = tiny_tokenizer(320);  // ids 0..255 are bytes; 256+k is byte k followed by byte 0
  const std::string stop = "\nU:";
  const auto ids = bytes_ids(" ok\nU: x");
  REQUIRE(reply_tokens_to_keep(tok, ids, "stop", stop) == 4);  // " ok\n"
  REQUIRE(reply_tokens_to_keep(tok, bytes_ids(" ok\n\nU:"), "stop", stop) == 5);
  REQUIRE(reply_tokens_to_keep(tok, ids, "length", stop) == int(ids.size()));
  REQUIRE(reply_tokens_to_keep(tok, {'a', 'b', 319}, "eos", stop) == 2);
  // A token that runs past the newline cannot be split: the reply ends before it.
  REQUIRE(reply_tokens_to_keep(tok, {'o', 'k', 256 + '\n', 'U', ':'}, "stop", "\n\0U:"s) == 2);
}

TEST_CASE("chat: turns 2 and 3 prefill only their new tokens and stop at the user prefix", "[chat]") {
  ScriptedBackend be(false);
  Tokenizer tok = tiny_tokenizer(320);
  Generator g(be, tok);
  const ChatOptions o = short_prefixes(20);
  Chat chat(g, tok, o, 128);
  std::vector<int> conv;
  const char* lines[] = {"Hi", "How are you?", "Bye"};
  for (int k = 0; k < 3; ++k) {
    const std::vector<int> piece = bytes_ids(std::string("U: ") + lines[k] + "\nA:");
    std::string streamed;
    Chat::Callbacks cb;
    cb.on_text = [&](const std::string& s) { streamed += s; };
    const ChatTurn t = chat.turn(lines[k], cb);
    INFO("turn " << t.number);
    REQUIRE(t.number == k + 1);
    REQUIRE(t.prompt == cat(conv, piece));
    REQUIRE(t.result.finish_reason == "stop");
    REQUIRE(t.result.tokens == bytes_ids(" ok" + std::to_string(k + 1) + "\nU:"));
    REQUIRE(t.reply == "ok" + std::to_string(k + 1));
    REQUIRE(streamed == t.reply);
    REQUIRE(t.kept_tokens == 5);  // " okN\n": "U:" is dropped
    // The cache holds the conversation and the generated "U" (":" was drawn last, never computed),
    // and "U" is also where the next user piece starts: one token more than the conversation.
    REQUIRE(t.result.timing.cached_tokens == (k == 0 ? 0 : int(conv.size()) + 1));
    REQUIRE(t.result.timing.prefill_tokens == (k == 0 ? int(piece.size()) : int(piece.size()) - 1));
    require_fresh_equal(g, t, o, 128, chat.stop_string());
    conv = cat(cat(conv, piece), bytes_ids(" ok" + std::to_string(k + 1) + "\n"));
    REQUIRE(chat.ids() == conv);
  }
}

TEST_CASE("chat: a reply ended by EOS leaves it out, and the next turn reuses the whole reply", "[chat]") {
  ScriptedBackend be(true);
  Tokenizer tok = tiny_tokenizer(320);
  Generator g(be, tok);
  Chat chat(g, tok, short_prefixes(20), 128);
  const ChatTurn t1 = chat.turn("Hi");
  REQUIRE(t1.result.finish_reason == "eos");
  REQUIRE(t1.reply == "ok1");
  REQUIRE(chat.ids() == bytes_ids("U: Hi\nA: ok1\n"));  // EOS dropped, a newline ends the reply
  const ChatTurn t2 = chat.turn("More");
  REQUIRE(t2.result.timing.cached_tokens == int(bytes_ids("U: Hi\nA: ok1").size()));
  REQUIRE(t2.result.timing.prefill_tokens == int(bytes_ids("\nU: More\nA:").size()));
  REQUIRE(t2.reply == "ok2");
}

TEST_CASE("chat: three turns on real fixtures reuse the cache and equal fresh runs, and no-cache agrees",
          "[chat]") {
  for (const char* name : {"tiny-f32", "tiny-f16", "tiny-bf16"}) {
    Fixture f = load_fixture(name);
    CpuBackend be(f.weights, 2);
    Tokenizer tok = tiny_tokenizer(f.cfg.vocab_size);
    Generator g(be, tok);
    const int ctx = f.cfg.n_positions;
    const int n = 3;  // three turns fit the smallest fixture's 40 positions
    ChatOptions o = short_prefixes(n);
    o.gen.ignore_eos = true;
    Chat chat(g, tok, o, ctx);
    ChatOptions o_nc = o;
    o_nc.gen.use_cache = false;
    Chat nocache(g, tok, o_nc, ctx);
    std::vector<int> conv;
    for (const char* line : {"Hi", "Yes?", "Bye"}) {
      const ChatTurn t = chat.turn(line);
      INFO(name << " turn " << t.number);
      REQUIRE(t.dropped_turns == 0);
      const std::vector<int> piece = tok.encode(std::string("U: ") + line + "\nA:");
      REQUIRE(t.prompt == cat(conv, piece));
      REQUIRE(t.result.tokens.size() == size_t(n));
      REQUIRE(t.kept_tokens == n);
      // The reply's last token was drawn, never computed: it and the newline that ends the reply
      // are prefilled with the next user piece.
      const int tail = t.number == 1 ? 0 : 2;
      REQUIRE(t.result.timing.cached_tokens == int(conv.size()) - tail);
      REQUIRE(t.result.timing.prefill_tokens == int(piece.size()) + tail);
      require_fresh_equal(g, t, o, ctx, chat.stop_string());
      const ChatTurn u = nocache.turn(line);
      REQUIRE(u.result.tokens == t.result.tokens);
      REQUIRE(u.reply == t.reply);
      REQUIRE(u.result.timing.cached_tokens == 0);
      REQUIRE(u.result.timing.prefill_tokens == int(u.prompt.size()));
      conv = chat.ids();
    }
    REQUIRE(nocache.ids() == chat.ids());
  }
}

TEST_CASE("chat: a full context drops the oldest turns, keeps the system text, and equals a fresh run",
          "[chat]") {
  Fixture f = load_fixture("tiny-f32");
  CpuBackend be(f.weights, 2);
  Tokenizer tok = tiny_tokenizer(f.cfg.vocab_size);
  Generator g(be, tok);
  const int n = 4;
  ChatOptions o = short_prefixes(n);
  o.gen.ignore_eos = true;
  o.system = "Sys";
  const char* lines[] = {"Hi", "How are you?", "Bye"};
  // A roomy run measures the turns; then a context one token too small for all three.
  Chat roomy(g, tok, o, f.cfg.n_positions);
  roomy.turn(lines[0]);
  const int len1 = int(roomy.ids().size());
  roomy.turn(lines[1]);
  const std::vector<int> after2 = roomy.ids();
  const std::vector<int> piece3 = tok.encode("U: Bye\nA:");
  const int ctx = int(after2.size() + piece3.size()) + n - 1;
  REQUIRE(ctx <= f.cfg.n_positions);

  Chat chat(g, tok, o, ctx);
  REQUIRE(chat.system_ids() == tok.encode("Sys\n"));
  REQUIRE(chat.turn(lines[0]).dropped_turns == 0);
  REQUIRE(chat.turn(lines[1]).dropped_turns == 0);
  REQUIRE(chat.ids() == after2);
  int trim_dropped = 0, trim_prefill = 0;
  Chat::Callbacks cb;
  cb.on_trim = [&](int d, int p) { trim_dropped = d, trim_prefill = p; };
  const ChatTurn t = chat.turn(lines[2], cb);
  REQUIRE(t.dropped_turns == 1);
  REQUIRE(trim_dropped == 1);
  const std::vector<int> sys = chat.system_ids();
  const std::vector<int> turn2(after2.begin() + len1, after2.end());
  REQUIRE(t.prompt == cat(cat(sys, turn2), piece3));
  // Positions moved: only the system text and the tokens turn 2 shares with the dropped turn 1 at
  // its start ("U: H" of "U: Hi" and "U: How") stand where they stood.
  const std::vector<int> turn1(after2.begin() + sys.size(), after2.begin() + len1);
  size_t shared = 0;
  while (shared < turn1.size() && turn1[shared] == turn2[shared]) ++shared;
  REQUIRE(shared == 4);
  const int reused = t.result.timing.cached_tokens;
  REQUIRE(reused == int(sys.size() + shared));
  REQUIRE(t.result.timing.prefill_tokens == int(t.prompt.size()) - reused);
  REQUIRE(trim_prefill == t.result.timing.prefill_tokens);
  require_fresh_equal(g, t, o, ctx, chat.stop_string());
}

TEST_CASE("chat: bad lines are input errors that leave the conversation as it was", "[chat]") {
  Fixture f = load_fixture("tiny-f32");
  CpuBackend be(f.weights, 1);
  Tokenizer tok = tiny_tokenizer(f.cfg.vocab_size);
  Generator g(be, tok);
  ChatOptions o = short_prefixes(3);
  o.gen.ignore_eos = true;
  Chat chat(g, tok, o, 40);
  chat.turn("Hi");
  const std::vector<int> before = chat.ids();
  REQUIRE_THROWS_WITH(chat.turn("ok \xc3\x28 bad"), Catch::Contains("invalid UTF-8 at byte 3"));
  REQUIRE_THROWS_WITH(chat.turn(std::string(40, 'x')),
                      Catch::Contains("no room for a reply in the context of 40"));
  REQUIRE_THROWS_AS(chat.turn(std::string(40, 'x')), InputError);
  REQUIRE(chat.ids() == before);
  const ChatTurn t = chat.turn("Again");
  REQUIRE(t.number == 2);
  REQUIRE(t.result.timing.cached_tokens == int(before.size()) - 2);

  o.system = std::string(40, 's');
  REQUIRE_THROWS_WITH(Chat(g, tok, o, 40), Catch::Contains("system text is 41 tokens"));
}

TEST_CASE("chat: a stop request (Ctrl-C) ends the reply as interrupted, the cut reply stays in the conversation, and the next turn reuses the cache", "[chat]") {
  ScriptedBackend be(false);
  Tokenizer tok = tiny_tokenizer(320);
  Generator g(be, tok);
  volatile std::sig_atomic_t flag = 0;
  ChatOptions o = short_prefixes(20);
  o.gen.stop = &flag;
  Chat chat(g, tok, o, 128);
  Chat::Callbacks cb;
  cb.on_text = [&](const std::string&) { flag = 1; };  // as if Ctrl-C came once text is showing
  const ChatTurn t1 = chat.turn("Hi", cb);
  REQUIRE(t1.result.finish_reason == "interrupted");
  REQUIRE(t1.result.tokens == bytes_ids(" o"));
  REQUIRE(t1.reply == "o");
  REQUIRE(t1.kept_tokens == int(t1.result.tokens.size()));
  flag = 0;  // gen chat clears it before the next line
  const ChatTurn t2 = chat.turn("Yes?");
  REQUIRE(t2.prompt == cat(cat(t1.prompt, t1.result.tokens), cat(tok.encode("\n"), tok.encode("U: Yes?\nA:"))));
  // The cache holds the cut reply but its last token (drawn, never computed).
  REQUIRE(t2.result.timing.cached_tokens == t1.context_used() - 1);
  REQUIRE(t2.result.finish_reason == "stop");
  REQUIRE(t2.reply == "ok2");
  require_fresh_equal(g, t2, o, 128, chat.stop_string());
}
