// GPT-2 tokenizer: golden ids from Hugging Face (scripts/make_tokenizer_fixture.py), UTF-8 handling,
// streaming decode, loader errors. A handmade vocab keeps most checks alive without the real files.
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "gen/error.h"
#include "gen/tokenizer.h"
#include "test_util.h"

using Catch::Contains;
using gen::Tokenizer;
using gen::Utf8Stream;

namespace {

const char* kFFFD = "\xEF\xBF\xBD";

// GPT-2's bytes_to_unicode(), written independently of src/tokenizer.cpp.
std::string byte_char(int b) {
  static const std::vector<int> cps = [] {
    std::vector<int> cp(256);
    int n = 0;
    for (int i = 0; i < 256; ++i) {
      bool printable = (i >= '!' && i <= '~') || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE && i <= 0xFF);
      cp[i] = printable ? i : 256 + n++;
    }
    return cp;
  }();
  int c = cps[b];
  std::string s;
  if (c < 0x80) {
    s += char(c);
  } else {
    s += char(0xC0 | (c >> 6));
    s += char(0x80 | (c & 0x3F));
  }
  return s;
}

// Byte b has id b; merged tokens follow in merge order; then "<|endoftext|>" when asked.
struct Mini {
  std::vector<std::string> merges = {"l l", "h e", "he ll", "hell o", "\xC4\xA0 w", "o r", "\xC4\xA0w or",
                                     "b c", "a b", "a a",
                                     // space + lead byte of U+180E; 'a' + lead byte of U+31350
                                     "\xC4\xA0 \xC3\xA1", "a \xC3\xB0"};
  nlohmann::json vocab = nlohmann::json::object();
  std::string merges_txt = "#version: 0.2\n";
  explicit Mini(bool with_eos = true) {
    for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
    int next = 256;
    for (const auto& m : merges) {
      std::string merged = m;
      merged.erase(merged.find(' '), 1);
      vocab[merged] = next++;
      merges_txt += m + "\n";
    }
    if (with_eos) vocab["<|endoftext|>"] = next;
  }
  int id(const std::string& tok) const { return vocab.at(tok).get<int>(); }
  Tokenizer make() const { return Tokenizer::from_strings(vocab.dump(), merges_txt, "mini"); }
};

const Tokenizer* real_tokenizer() {
  static std::unique_ptr<Tokenizer> tok = [] {
    std::string dir = gen::test::tokenizer_dir();
    return dir.empty()
               ? nullptr
               : std::make_unique<Tokenizer>(Tokenizer::load(dir + "/vocab.json", dir + "/merges.txt"));
  }();
  return tok.get();
}
#define REAL_TOKENIZER_OR_SKIP(tok)                                                                    \
  const Tokenizer* tok = real_tokenizer();                                                             \
  if (!tok) {                                                                                          \
    WARN("skipped: no GPT-2 tokenizer files (set GEN_TOKENIZER_DIR or see ../shared/gpt2-tokenizer)"); \
    SUCCEED("skipped"); /* ctest reports it as skipped (SKIP_REGULAR_EXPRESSION) */                  \
    return;                                                                                            \
  }

const nlohmann::json& golden() {
  static const nlohmann::json j =
      nlohmann::json::parse(gen::test::read_file(gen::test::fixture("tokenizer_golden.json")));
  return j;
}

std::string stream_decode(const Tokenizer& tok, const std::vector<int>& ids) {
  Utf8Stream s;
  std::string out;
  for (int id : ids) out += s.push(tok.token_bytes(id));
  return out + s.flush();
}

std::vector<int> bytes_as_ids(const std::string& bytes) {  // for Mini, where id == byte
  std::vector<int> ids;
  for (unsigned char c : bytes) ids.push_back(c);
  return ids;
}

}  // namespace

TEST_CASE("GPT-2 README facts", "[tokenizer]") {
  REAL_TOKENIZER_OR_SKIP(tok);
  CHECK(tok->encode("Hello world") == std::vector<int>{15496, 995});
  CHECK(tok->encode("hello world") == std::vector<int>{31373, 995});
  CHECK(tok->eos_id() == 50256);
  CHECK(tok->vocab_size() == 50257);
  CHECK(tok->encode("<|endoftext|>") == std::vector<int>{50256});
  CHECK(tok->token_bytes(50256) == "<|endoftext|>");
  CHECK(tok->token_bytes(220) == " ");
  CHECK(tok->encode("").empty());
}

TEST_CASE("golden ids from Hugging Face GPT2TokenizerFast", "[tokenizer]") {
  REAL_TOKENIZER_OR_SKIP(tok);
  const auto& cases = golden().at("cases");
  REQUIRE(cases.size() >= 40);
  for (const auto& c : cases) {
    const std::string text = c.at("text");
    const std::vector<int> ids = c.at("ids");
    INFO("text: " << text);
    CHECK(tok->encode(text) == ids);
    CHECK(tok->decode(ids) == text);
    CHECK(tok->decode_bytes(ids) == text);
    CHECK(stream_decode(*tok, ids) == text);
  }
}

TEST_CASE("decode replaces invalid UTF-8 like Python's errors=replace", "[tokenizer]") {
  REAL_TOKENIZER_OR_SKIP(tok);
  const auto& decodes = golden().at("decodes");
  REQUIRE(decodes.size() >= 5);
  for (const auto& d : decodes) {
    const std::vector<int> ids = d.at("ids");
    const std::string want = d.at("text");
    INFO("ids: " << d.at("ids").dump());
    CHECK(tok->decode(ids) == want);
    CHECK(stream_decode(*tok, ids) == want);
  }
}

TEST_CASE("handmade vocab: merge order, special token, round trip", "[tokenizer]") {
  Mini mini;
  Tokenizer tok = mini.make();
  CHECK(tok.vocab_size() == 256 + 12 + 1);
  CHECK(tok.eos_id() == mini.id("<|endoftext|>"));
  CHECK(tok.encode("hello") == std::vector<int>{mini.id("hello")});
  CHECK(tok.encode("hello world") == std::vector<int>{mini.id("hello"), mini.id("\xC4\xA0wor"), 'l', 'd'});
  // "b c" outranks "a b"; equal ranks merge leftmost first.
  CHECK(tok.encode("abc") == std::vector<int>{'a', mini.id("bc")});
  CHECK(tok.encode("aaa") == std::vector<int>{mini.id("aa"), 'a'});
  CHECK(tok.encode("aaaaa") == std::vector<int>{mini.id("aa"), mini.id("aa"), 'a'});
  // The regex splits words, so no merge crosses a space or a letter/digit boundary.
  CHECK(tok.encode("he llo") == std::vector<int>{mini.id("he"), ' ', mini.id("ll"), 'o'});
  CHECK(tok.encode("a1a") == std::vector<int>{'a', '1', 'a'});
  CHECK(tok.encode("x<|endoftext|>hello") == std::vector<int>{'x', tok.eos_id(), mini.id("hello")});
  CHECK(tok.encode("<|endoftext|><|endoftext|>") == std::vector<int>{tok.eos_id(), tok.eos_id()});
  CHECK(tok.encode("<|endoftext|") == bytes_as_ids("<|endoftext|"));
  for (std::string s : {"", " ", "hello  world\n\n", "\xE4\xB8\xAD\xF0\x9F\x98\x80 e\xCC\x81", "aaaa abc"}) {
    CHECK(tok.decode(tok.encode(s)) == s);
  }
  CHECK(tok.token_bytes(mini.id("\xC4\xA0wor")) == " wor");
  CHECK_THROWS_WITH(tok.token_bytes(-1), Contains("token id -1 out of range"));
  CHECK_THROWS_AS(tok.token_bytes(tok.vocab_size()), gen::InputError);
  CHECK_THROWS_AS(tok.decode({0, 99999}), gen::InputError);
  Tokenizer moved = std::move(tok);
  CHECK(moved.encode("hello") == std::vector<int>{mini.id("hello")});
}

// Merges across a split point reveal where the regex cut. HF (Oniguruma, Unicode 16) and tiktoken
// agree; PCRE2's own \s and its Unicode 14 tables would cut differently.
TEST_CASE("split regex classes match Hugging Face beyond PCRE2's defaults", "[tokenizer]") {
  Mini mini;
  Tokenizer tok = mini.make();
  const int space_e1 = mini.id("\xC4\xA0\xC3\xA1"), a_f0 = mini.id("a\xC3\xB0");
  // U+180E is not White_Space: " \u180E!" is one word, as ' ?[^\s\p{L}\p{N}]+' makes it.
  CHECK(tok.encode(" \xE1\xA0\x8E!") == std::vector<int>{space_e1, 0xA0, 0x8E, '!'});
  // U+1680 (lead byte E1 too) is White_Space, so the space before it stays a word of its own.
  CHECK(tok.encode(" \xE1\x9A\x80x") == std::vector<int>{' ', 0xE1, 0x9A, 0x80, 'x'});
  // U+31350 (CJK extension H, Unicode 15) is a letter, so "a\U00031350" is one word.
  CHECK(tok.encode("a\xF0\xB1\x8D\x90") == std::vector<int>{a_f0, 0xB1, 0x8D, 0x90});
  // U+1F600 is not, so the emoji is a word of its own.
  CHECK(tok.encode("a\xF0\x9F\x98\x80") == std::vector<int>{'a', 0xF0, 0x9F, 0x98, 0x80});
}

TEST_CASE("without <|endoftext|> in the vocab the literal text is plain text", "[tokenizer]") {
  Tokenizer tok = Mini(false).make();
  CHECK(tok.eos_id() == -1);
  CHECK(tok.encode("<|endoftext|>") == bytes_as_ids("<|endoftext|>"));
}

TEST_CASE("invalid UTF-8 prompts are rejected with the byte offset", "[tokenizer]") {
  Tokenizer tok = Mini().make();
  const std::vector<std::pair<std::string, long>> bad = {
      {"\x80", 0},              // stray continuation byte
      {"ab\xC0\xAF", 2},        // overlong '/'
      {"\xE0\x80\xAF", 0},      // overlong three-byte form
      {"xyz\xE4\xB8", 3},       // truncated
      {"\xE4\xB8 ", 0},         // truncated, then a space
      {"ok \xED\xA0\x80", 3},   // surrogate U+D800
      {"\xF4\x90\x80\x80", 0},  // U+110000
      {"\xF5\x80\x80\x80", 0},  // lead byte past U+10FFFF
      {"\xFF", 0},
      {"\xE4\xB8\xAD\xC2", 3},  // valid char, then a truncated one
  };
  for (const auto& [s, off] : bad) {
    CHECK(gen::utf8_error_offset(s) == off);
    CHECK_THROWS_WITH(tok.encode(s), "invalid UTF-8 in prompt at byte " + std::to_string(off));
    CHECK_THROWS_AS(tok.encode(s), gen::InputError);
  }
  for (std::string s :
       std::vector<std::string>{"", "plain", "\xC2\x80", "\xED\x9F\xBF", "\xEE\x80\x80", "\xEF\xBF\xBF",
                                "\xF0\x90\x80\x80", "\xF4\x8F\xBF\xBF", std::string("nul\0byte", 8)}) {
    CHECK(gen::utf8_error_offset(s) == -1);
    CHECK(tok.decode(tok.encode(s)) == s);
  }
}

TEST_CASE("decode and Utf8Stream replace maximal invalid subparts", "[tokenizer]") {
  Tokenizer tok = Mini().make();
  auto dec = [&](const std::string& bytes) { return tok.decode(bytes_as_ids(bytes)); };
  const std::string r = kFFFD;
  CHECK(dec("\xE4\xB8") == r);  // one truncated character: one U+FFFD
  CHECK(dec("\xE4\xB8"
            "a") == r + "a");
  CHECK(dec("\xC0\xAF") == r + r);          // C0 can never start a character
  CHECK(dec("\xED\xA0\x80") == r + r + r);  // ED A0 is not a prefix of any character
  CHECK(dec("\xF0\x9F\x98"
            "!") == r + "!");
  CHECK(dec("\xF4\x90\x80\x80") == r + r + r + r);
  CHECK(dec("a\x80"
            "b") == "a" + r + "b");

  Utf8Stream s;
  CHECK(s.push("\xE4") == "");
  CHECK(s.push("\xB8") == "");
  CHECK(s.push("\xAD"
               "x") ==
        "\xE4\xB8\xAD"
        "x");
  CHECK(s.push("\x80") == r);  // never valid: replaced at once
  CHECK(s.push("\xF0\x9F") == "");
  CHECK(s.push("A") == r + "A");  // the held prefix is broken by 'A'
  CHECK(s.push("\xE2\x82") == "");
  CHECK(s.flush() == r);
  CHECK(s.flush() == "");
  CHECK(s.push("ok") == "ok");
}

TEST_CASE("Utf8Stream pieces concatenate to decode() for random bytes", "[tokenizer]") {
  Tokenizer tok = Mini().make();
  std::mt19937 rng(1234);
  // Mostly UTF-8-ish bytes so that valid multi-byte characters show up too.
  const std::vector<unsigned char> alphabet = {'a',  ' ',  0x80, 0x9F, 0xA0, 0xBF, 0xC2, 0xC0, 0xDF, 0xE0,
                                               0xE4, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF, 0x8F, 0x90, 0xB8};
  for (int trial = 0; trial < 500; ++trial) {
    std::string bytes;
    int len = int(rng() % 24);
    for (int i = 0; i < len; ++i) bytes += char(alphabet[rng() % alphabet.size()]);
    Utf8Stream s;
    std::string got;
    for (size_t i = 0; i < bytes.size();) {
      size_t n = 1 + rng() % 3;
      got += s.push(bytes.substr(i, n));
      i += n;
    }
    got += s.flush();
    INFO("trial " << trial);
    REQUIRE(got == tok.decode(bytes_as_ids(bytes)));
    REQUIRE(gen::utf8_error_offset(got) == -1);
  }
}

TEST_CASE("loader errors name the problem and the place", "[tokenizer]") {
  gen::test::TempDir dir;
  Mini mini;
  const std::string vocab = dir / "vocab.json", merges = dir / "merges.txt";
  gen::test::write_file(vocab, mini.vocab.dump());
  gen::test::write_file(merges, mini.merges_txt);
  CHECK(Tokenizer::load(vocab, merges).encode("hello") == std::vector<int>{mini.id("hello")});

  CHECK_THROWS_WITH(Tokenizer::load(dir / "missing.json", merges),
                    Contains("cannot open file") && Contains("(" + dir / "missing.json" + ")"));
  CHECK_THROWS_WITH(Tokenizer::load(vocab, dir.path()), Contains("is a directory"));

  auto vocab_error = [&](const std::string& json) {
    gen::test::write_file(vocab, json);
    try {
      Tokenizer::load(vocab, merges);
    } catch (const gen::InputError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK_THAT(vocab_error("{\"a\": 0,"), Contains("vocab is not valid JSON") && Contains("(" + vocab + ")"));
  CHECK_THAT(vocab_error(""), Contains("not valid JSON"));
  CHECK_THAT(vocab_error("[1, 2]"), Contains("must be a JSON object"));
  CHECK_THAT(vocab_error("7"), Contains("must be a JSON object"));
  CHECK_THAT(vocab_error("{\"a\": -1}"), Contains("vocab entry \"a\" must map to a non-negative integer id"));
  CHECK_THAT(vocab_error("{\"a\": 1.5}"), Contains("\"a\" must map to a non-negative integer id"));
  CHECK_THAT(vocab_error("{\"a\": \"0\"}"), Contains("non-negative integer id"));
  CHECK_THAT(vocab_error("{\"a\": {\"b\": 0}}"), Contains("non-negative integer id"));
  CHECK_THAT(vocab_error("{\"a\": 99999999999}"), Contains("non-negative integer id"));
  CHECK_THAT(vocab_error("{}"), Contains("vocab is empty"));
  CHECK_THAT(vocab_error("{\"a\": 0, \"b\": 0}"), Contains("token id 0 appears twice"));
  CHECK_THAT(vocab_error("{\"a\": 0, \"a\": 1}"), Contains("token \"a\" appears twice"));
  CHECK_THAT(vocab_error("{\"a\": 0, \"b\": 5}"), Contains("token id 5 of \"b\" out of range"));
  CHECK_THAT(vocab_error("{\"a b\": 0}"),
             Contains("token \"a b\" has a character outside GPT-2's byte alphabet"));
  CHECK_THAT(vocab_error("{\"\\u4e2d\": 0}"), Contains("outside GPT-2's byte alphabet"));
  CHECK_THAT(vocab_error("{\"\": 0}"), Contains("empty token string"));
  CHECK_THAT(vocab_error("{\"a\": 0}"), Contains("vocab lacks the token \"\xC4\x80\" for byte 0x00"));
  gen::test::write_file(vocab, mini.vocab.dump());

  auto merges_error = [&](const std::string& text) {
    gen::test::write_file(merges, text);
    try {
      Tokenizer::load(vocab, merges);
    } catch (const gen::InputError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK_THAT(
      merges_error("#version: 0.2\nl l\nh e x\n"),
      Contains("merge \"h e x\" is not two tokens separated by one space") && Contains("(" + merges + ":3)"));
  CHECK_THAT(merges_error("l l\nhe\n"), Contains("not two tokens") && Contains(merges + ":2"));
  CHECK_THAT(merges_error("l  l\n"), Contains("not two tokens"));
  CHECK_THAT(merges_error(" l\n"), Contains("not two tokens"));
  CHECK_THAT(merges_error("l l\nx y\n"),
             Contains("merged token \"xy\" is not in the vocab") && Contains(merges + ":2"));
  CHECK_THAT(merges_error("zz l\n"),
             Contains("merge token \"zz\" is not in the vocab") && Contains(merges + ":1"));
  CHECK_THAT(merges_error("l zz\n"), Contains("merge token \"zz\" is not in the vocab"));
  CHECK_THAT(merges_error("l l\n\xFF\xFE x\n"), Contains("\"\\xFF\\xFE\" is not in the vocab"));
  // Blank lines, CRLF and a missing "#version" line are all fine; an empty merges file too.
  CHECK(merges_error("\r\nl l\r\n\r\nh e\r\nhe ll\nhell o") == "no error");
  CHECK(Tokenizer::load(vocab, merges).encode("hello") == std::vector<int>{mini.id("hello")});
  CHECK(merges_error("") == "no error");
  CHECK(Tokenizer::load(vocab, merges).encode("hello") == bytes_as_ids("hello"));

  CHECK_THROWS_WITH(Tokenizer::from_strings("[]", "", "inline"), Contains("(inline)"));
}

TEST_CASE("encoding is fast and stays linear on long runs", "[tokenizer]") {
  REAL_TOKENIZER_OR_SKIP(tok);
  const auto& cases = golden().at("cases");
  std::string prose;
  while (prose.size() < (1u << 20)) {
    for (const auto& c : cases) prose += c.at("text").get<std::string>() + "\n";
  }
  auto rep = [](std::vector<int> head, int id, size_t n, std::vector<int> tail) {
    head.insert(head.end(), n, id);
    head.insert(head.end(), tail.begin(), tail.end());
    return head;
  };
  // One giant word each, which the BPE and the regex must not turn quadratic. Expected ids from
  // GPT2TokenizerFast; note that GPT-2 has no multi-space tokens, and that the last newline
  // before "x" is its own word because of \s+(?!\S).
  const std::vector<std::pair<std::string, std::vector<int>>> texts = {
      {std::string(200000, 'a'), rep({}, 24794, 50000, {})},
      {std::string(200000, '7'), rep({}, 3324, 100000, {})},
      {std::string(200000, ' '), rep({}, 220, 200000, {})},
      {std::string(200000, '!'), rep({}, 34635, 25000, {})},
      {std::string(100000, '\n') + "x", rep({}, 628, 49999, {198, 198, 87})},
      {prose, {}},
  };
  for (const auto& [text, want] : texts) {
    auto t0 = std::chrono::steady_clock::now();
    std::vector<int> ids = tok->encode(text);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    INFO("size " << text.size() << " took " << secs << " s");
    CHECK(secs < 5.0);  // generous for Debug and sanitizer builds; Release takes a fraction
    if (!want.empty()) CHECK(ids == want);
    CHECK(tok->decode(ids) == text);
  }
}

TEST_CASE("encode may run on several threads at once", "[tokenizer]") {
  REAL_TOKENIZER_OR_SKIP(tok);
  const auto& cases = golden().at("cases");
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      int good = 0;
      for (int rep = 0; rep < 5; ++rep) {
        for (const auto& c : cases)
          good += tok->encode(c.at("text").get<std::string>()) == c.at("ids").get<std::vector<int>>();
      }
      ok[t] = good;
    });
  }
  for (auto& th : threads) th.join();
  for (int good : ok) CHECK(good == int(5 * cases.size()));
}
