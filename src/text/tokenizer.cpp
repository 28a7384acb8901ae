// GPT-2 byte-level BPE. Matches Hugging Face's GPT2TokenizerFast: the same split regex, byte
// alphabet and merge order (lowest rank first, leftmost on ties), with "<|endoftext|>" split out
// before anything else as HF does for its special token.
#include "gen/tokenizer.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string_view>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "gen/error.h"

namespace gen {
namespace {

constexpr const char* kEndOfText = "<|endoftext|>";

// GPT-2's split regex 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// spelled out so that PCRE2 classifies characters as HF's Oniguruma and tiktoken's Rust regex do:
// their \s is Unicode White_Space (PCRE2's \s adds U+180E), and they know Unicode 16 while PCRE2
// 10.42 stops at 14. The extra ranges are the letters and digits assigned since (CJK extensions H
// and I among them), found by probing every code point through GPT2TokenizerFast.
#define GEN_WS R"(\t-\r\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})"
#define GEN_L                                                                                         \
  R"(\p{L}\x{1C89}-\x{1C8A}\x{A7CB}-\x{A7CD}\x{A7DA}-\x{A7DC}\x{105C0}-\x{105F3}\x{10D4A}-\x{10D65})" \
  R"(\x{10D6F}-\x{10D85}\x{10EC2}-\x{10EC4}\x{1123F}-\x{11240}\x{11380}-\x{11389}\x{1138B}\x{1138E})" \
  R"(\x{11390}-\x{113B5}\x{113B7}\x{113D1}\x{113D3}\x{11BC0}-\x{11BE0}\x{11F02}\x{11F04}-\x{11F10})"  \
  R"(\x{11F12}-\x{11F33}\x{1342F}\x{13441}-\x{13446}\x{13460}-\x{143FA}\x{16100}-\x{1611D})"          \
  R"(\x{16D40}-\x{16D6C}\x{18CFF}\x{1B132}\x{1B155}\x{1DF25}-\x{1DF2A}\x{1E030}-\x{1E06D})"           \
  R"(\x{1E4D0}-\x{1E4EB}\x{1E5D0}-\x{1E5ED}\x{1E5F0}\x{2B739}\x{2EBF0}-\x{2EE5D}\x{31350}-\x{323AF})"
#define GEN_N                                                                                          \
  R"(\p{N}\x{10D40}-\x{10D49}\x{116D0}-\x{116E3}\x{11BF0}-\x{11BF9}\x{11F50}-\x{11F59})"               \
  R"(\x{16130}-\x{16139}\x{16D70}-\x{16D79}\x{1CCF0}-\x{1CCF9}\x{1D2C0}-\x{1D2D3}\x{1E4F0}-\x{1E4F9})" \
  R"(\x{1E5F1}-\x{1E5FA})"
constexpr const char* kSplitPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?[)" GEN_L R"(]+| ?[)" GEN_N R"(]+| ?[^)" GEN_WS GEN_L GEN_N R"(]+|[)" GEN_WS
    R"(]+(?![^)" GEN_WS R"(])|[)" GEN_WS R"(]+)";
#undef GEN_WS
#undef GEN_L
#undef GEN_N
constexpr const char* kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// ---- UTF-8 -----------------------------------------------------------------------------------

enum class Utf8Kind { valid, truncated, invalid };
struct Utf8Step {
  Utf8Kind kind;
  size_t len;  // valid: the character; truncated: the bytes there are; invalid: maximal subpart
};

// Well-formed sequences per Unicode Table 3-7. The second byte's range depends on the lead byte,
// which is what rules out overlongs, surrogates and code points above U+10FFFF.
Utf8Step utf8_step(const unsigned char* p, size_t n) {
  const unsigned c = p[0];
  if (c < 0x80) return {Utf8Kind::valid, 1};
  size_t need = 0;
  unsigned lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return {Utf8Kind::invalid, 1};
  }
  for (size_t i = 1; i < need; ++i) {
    if (i >= n) return {Utf8Kind::truncated, i};
    if (p[i] < lo || p[i] > hi) return {Utf8Kind::invalid, i};
    lo = 0x80;
    hi = 0xBF;
  }
  return {Utf8Kind::valid, need};
}

// Appends s to out with each maximal invalid subpart replaced by one U+FFFD, which is what
// Python's errors="replace" and Rust's from_utf8_lossy do. With hold_tail, an incomplete
// character at the very end is left unconsumed. Returns the number of bytes consumed.
size_t append_replaced(std::string_view s, bool hold_tail, std::string& out) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t i = 0;
  while (i < s.size()) {
    Utf8Step st = utf8_step(p + i, s.size() - i);
    if (st.kind == Utf8Kind::valid) {
      out.append(s.data() + i, st.len);
    } else if (st.kind == Utf8Kind::truncated && hold_tail) {
      break;
    } else {
      out += kReplacement;
    }
    i += st.len;
  }
  return i;
}

// For error messages: bounded length, control and invalid bytes escaped, so that a fuzzed file
// cannot make the message itself unprintable.
std::string printable(std::string_view s, size_t max_bytes) {
  std::string out;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t i = 0;
  while (i < s.size() && out.size() < max_bytes) {
    Utf8Step st = utf8_step(p + i, s.size() - i);
    if (st.kind == Utf8Kind::valid && p[i] >= 0x20 && p[i] != 0x7F) {
      out.append(s.data() + i, st.len);
      i += st.len;
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", p[i]);
      out += buf;
      ++i;
    }
  }
  if (i < s.size()) out += "...";
  return out;
}
std::string quote(std::string_view s) { return "\"" + printable(s, 60) + "\""; }

// ---- GPT-2's byte alphabet ---------------------------------------------------------------------

// bytes_to_unicode(): printable Latin-1 bytes stand for themselves, the other 68 bytes are mapped
// to U+0100.. in byte order, so every vocab string is printable and whitespace-free.
struct ByteAlphabet {
  std::array<uint32_t, 256> cp_of_byte{};
  std::array<int, 324> byte_of_cp{};  // -1 where the code point is not in the alphabet
  ByteAlphabet() {
    byte_of_cp.fill(-1);
    uint32_t n = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      cp_of_byte[b] = printable ? uint32_t(b) : 256 + n++;
      byte_of_cp[cp_of_byte[b]] = b;
    }
  }
  std::string text_of(int b) const {  // as UTF-8; all code points here are below U+0800
    uint32_t cp = cp_of_byte[b];
    if (cp < 0x80) return std::string(1, char(cp));
    return {char(0xC0 | (cp >> 6)), char(0x80 | (cp & 0x3F))};
  }
};
const ByteAlphabet& alphabet() {
  static const ByteAlphabet a;
  return a;
}

// ---- vocab.json: a flat object of string -> id, parsed with SAX so that no hostile document
// (deep nesting, huge arrays) is ever built in memory -----------------------------------------

class VocabReader : public nlohmann::json::json_sax_t {
 public:
  std::vector<std::pair<std::string, long>> entries;
  std::string error;

  bool start_object(std::size_t) override {
    if (depth_++ == 0) return true;
    return fail_value();
  }
  bool end_object() override {
    --depth_;
    return true;
  }
  bool key(string_t& k) override {
    key_ = k;
    return true;
  }
  bool number_integer(number_integer_t v) override { return v < 0 ? fail_value() : add(v); }
  bool number_unsigned(number_unsigned_t v) override {
    if (v > uint64_t(INT_MAX)) return fail_value();
    return add(long(v));
  }
  bool null() override { return fail_value(); }
  bool boolean(bool) override { return fail_value(); }
  bool number_float(number_float_t, const string_t&) override { return fail_value(); }
  bool string(string_t&) override { return fail_value(); }
  bool binary(binary_t&) override { return fail_value(); }
  bool start_array(std::size_t) override { return fail_value(); }
  bool end_array() override { return fail_value(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    // what() is "[json.exception.parse_error.101] parse error at ...: ...; last read: '<raw bytes>'".
    std::string_view what = e.what();
    size_t tag = what.find("] ");
    if (tag != std::string_view::npos) what.remove_prefix(tag + 2);
    error = "vocab is not valid JSON: " + printable(what, 300);
    return false;
  }

 private:
  bool add(long id) {
    if (depth_ == 0) return fail_value();
    entries.emplace_back(key_, id);
    return true;
  }
  bool fail_value() {
    error = depth_ == 0 ? "vocab must be a JSON object mapping token strings to ids"
                        : "vocab entry " + quote(key_) + " must map to a non-negative integer id";
    return false;
  }
  int depth_ = 0;
  std::string key_;
};

std::string read_whole_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw InputError("cannot read file: is a directory", path);
  std::ifstream f(path, std::ios::binary);
  if (!f) throw InputError(std::string("cannot open file: ") + std::strerror(errno), path);
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) throw InputError("cannot read file", path);
  return ss.str();
}

struct Vocab {
  std::vector<std::string> id_bytes;
  std::array<int, 256> byte_id{};
  // (left id << 32 | right id) -> (rank, merged id)
  std::unordered_map<uint64_t, std::pair<int, int>> merges;
  int eos_id = -1;
};

Vocab parse_vocab(const std::string& vocab_json, const std::string& vocab_where,
                  const std::string& merges_txt, const std::string& merges_where) {
  Vocab im;
  const ByteAlphabet& ab = alphabet();

  VocabReader reader;
  if (!nlohmann::json::sax_parse(vocab_json, &reader) || !reader.error.empty()) {
    throw InputError(reader.error.empty() ? "vocab is not valid JSON" : reader.error, vocab_where);
  }
  const size_t n = reader.entries.size();
  if (n == 0) throw InputError("vocab is empty", vocab_where);
  if (n > size_t(INT_MAX)) throw InputError("vocab is too large", vocab_where);
  std::unordered_map<std::string, int> id_of;  // vocab strings as written (byte alphabet)
  id_of.reserve(n);
  im.id_bytes.assign(n, std::string());
  std::vector<char> seen(n, 0);
  for (const auto& [tok, id] : reader.entries) {
    if (size_t(id) >= n) {
      throw InputError("token id " + std::to_string(id) + " of " + quote(tok) + " out of range: " +
                           std::to_string(n) + " tokens need ids 0.." + std::to_string(n - 1),
                       vocab_where);
    }
    if (seen[id]) throw InputError("token id " + std::to_string(id) + " appears twice", vocab_where);
    seen[id] = 1;
    if (!id_of.emplace(tok, int(id)).second)
      throw InputError("token " + quote(tok) + " appears twice", vocab_where);
    if (tok.empty()) throw InputError("empty token string for id " + std::to_string(id), vocab_where);
    const auto* p = reinterpret_cast<const unsigned char*>(tok.data());
    std::string& bytes = im.id_bytes[id];
    for (size_t i = 0; i < tok.size();) {
      Utf8Step st = utf8_step(p + i, tok.size() - i);
      uint32_t cp = st.kind != Utf8Kind::valid || st.len > 2 ? UINT32_MAX
                    : st.len == 1                            ? p[i]
                                                             : (p[i] & 0x1Fu) << 6 | (p[i + 1] & 0x3Fu);
      if (cp >= ab.byte_of_cp.size() || ab.byte_of_cp[cp] < 0) {
        throw InputError("token " + quote(tok) + " has a character outside GPT-2's byte alphabet",
                         vocab_where);
      }
      bytes += char(ab.byte_of_cp[cp]);
      i += st.len;
    }
  }
  for (int b = 0; b < 256; ++b) {
    std::string s = ab.text_of(b);
    auto it = id_of.find(s);
    if (it == id_of.end()) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", b);
      throw InputError("vocab lacks the token " + quote(s) + " for byte " + hex, vocab_where);
    }
    im.byte_id[b] = it->second;
  }
  auto eos = id_of.find(kEndOfText);
  im.eos_id = eos == id_of.end() ? -1 : eos->second;

  // HF's merges.txt reader: "#version" lines are skipped, anything else must be "left right";
  // a repeated pair takes the later rank, as in HF and OpenAI's dict().
  size_t line_no = 0, rank = 0;
  for (size_t pos = 0; pos <= merges_txt.size();) {
    size_t end = merges_txt.find('\n', pos);
    if (end == std::string::npos) end = merges_txt.size();
    std::string_view line(merges_txt.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.substr(0, 8) == "#version") continue;
    const std::string where = merges_where + ":" + std::to_string(line_no);
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos || sp == 0 || sp + 1 == line.size() ||
        line.find(' ', sp + 1) != std::string_view::npos) {
      throw InputError("merge " + quote(line) + " is not two tokens separated by one space", where);
    }
    std::string left(line.substr(0, sp)), right(line.substr(sp + 1));
    auto l = id_of.find(left), r = id_of.find(right), m = id_of.find(left + right);
    if (l == id_of.end()) throw InputError("merge token " + quote(left) + " is not in the vocab", where);
    if (r == id_of.end()) throw InputError("merge token " + quote(right) + " is not in the vocab", where);
    if (m == id_of.end())
      throw InputError("merged token " + quote(left + right) + " is not in the vocab", where);
    if (rank >= size_t(INT_MAX)) throw InputError("too many merges", where);
    im.merges[uint64_t(uint32_t(l->second)) << 32 | uint32_t(r->second)] = {int(rank++), m->second};
  }
  return im;
}

}  // namespace

// ---- the tokenizer -----------------------------------------------------------------------------

struct Tokenizer::Impl : Vocab {
  pcre2_code* re = nullptr;
  bool jit = false;

  explicit Impl(Vocab&& v) : Vocab(std::move(v)) {
    int err = 0;
    PCRE2_SIZE err_off = 0;
    re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kSplitPattern), PCRE2_ZERO_TERMINATED,
                       PCRE2_UTF | PCRE2_UCP, &err, &err_off, nullptr);
    if (!re) throw Error("cannot compile the GPT-2 split regex (PCRE2 error " + std::to_string(err) + ")");
    jit = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
  }
  ~Impl() { pcre2_code_free(re); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  void bpe(std::string_view word, std::vector<int>& out) const;
  void encode_piece(std::string_view text, std::vector<int>& out) const;
};

Tokenizer::Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::string& vocab_json_path, const std::string& merges_path) {
  std::string vocab = read_whole_file(vocab_json_path);
  std::string merges = read_whole_file(merges_path);
  Tokenizer t;
  t.impl_ = std::make_unique<Impl>(parse_vocab(vocab, vocab_json_path, merges, merges_path));
  t.eos_id_ = t.impl_->eos_id;
  return t;
}

Tokenizer Tokenizer::from_strings(const std::string& vocab_json, const std::string& merges_txt,
                                  const std::string& where) {
  Tokenizer t;
  t.impl_ = std::make_unique<Impl>(parse_vocab(vocab_json, where, merges_txt, where));
  t.eos_id_ = t.impl_->eos_id;
  return t;
}

// Merges the lowest-ranked adjacent pair first, leftmost on ties, like HF's BPE::merge_word.
// A heap of candidates keeps long words (a megabyte of digits) at O(n log n).
void Tokenizer::Impl::bpe(std::string_view word, std::vector<int>& out) const {
  const auto* p = reinterpret_cast<const unsigned char*>(word.data());
  const int n = int(word.size());
  if (n == 1) {
    out.push_back(byte_id[p[0]]);
    return;
  }
  struct Sym {
    int id, prev, next;
  };
  struct Cand {
    int rank, pos, left, right, merged;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<Sym> sym(n);
  for (int i = 0; i < n; ++i) sym[i] = {byte_id[p[i]], i - 1, i + 1 < n ? i + 1 : -1};
  std::vector<Cand> heap;
  const auto after = std::greater<Cand>();
  auto candidate = [&](int pos) {
    if (pos < 0 || sym[pos].next < 0) return false;
    int left = sym[pos].id, right = sym[sym[pos].next].id;
    auto it = merges.find(uint64_t(uint32_t(left)) << 32 | uint32_t(right));
    if (it == merges.end()) return false;
    heap.push_back({it->second.first, pos, left, right, it->second.second});
    return true;
  };
  auto consider = [&](int pos) {
    if (candidate(pos)) std::push_heap(heap.begin(), heap.end(), after);
  };
  for (int i = 0; i + 1 < n; ++i) candidate(i);
  std::make_heap(heap.begin(), heap.end(), after);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), after);
    Cand c = heap.back();
    heap.pop_back();
    // A merge only ever lengthens a symbol, so unchanged ids mean an unchanged pair.
    Sym& l = sym[c.pos];
    if (l.id != c.left || l.next < 0 || sym[l.next].id != c.right) continue;
    Sym& r = sym[l.next];
    l.id = c.merged;
    r.id = -1;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = c.pos;
    consider(l.prev);
    consider(c.pos);
  }
  for (int i = 0; i >= 0; i = sym[i].next) out.push_back(sym[i].id);
}

void Tokenizer::Impl::encode_piece(std::string_view text, std::vector<int>& out) const {
  if (text.empty()) return;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
      pcre2_match_data_create_from_pattern(re, nullptr), &pcre2_match_data_free);
  if (!md) throw Error("out of memory for the tokenizer regex");
  // Repeated words are common in prose; remember where their ids already sit in out.
  std::unordered_map<std::string_view, std::pair<size_t, size_t>> seen;
  size_t off = 0;
  while (off < text.size()) {
    // The text was validated up front, so PCRE2 must not rescan it at every call (quadratic).
    int rc = jit ? pcre2_jit_match(re, subject, text.size(), off, 0, md.get(), nullptr)
                 : PCRE2_ERROR_JIT_STACKLIMIT;
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      rc = pcre2_match(re, subject, text.size(), off, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md.get(), nullptr);
    }
    size_t start = text.size(), end = text.size();
    if (rc >= 0) {
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
      start = ov[0];
      end = ov[1];
    } else if (rc != PCRE2_ERROR_NOMATCH) {
      throw Error("tokenizer regex failed (PCRE2 error " + std::to_string(rc) + ")");
    }
    // Every character matches one alternative, so neither gaps nor empty matches happen; if they
    // did, HF would keep the gap as its own word, and so does this.
    if (start > off) end = start, start = off;
    if (end <= start) end = start + 1;
    std::string_view word = text.substr(start, end - start);
    auto [it, fresh] = seen.try_emplace(word, out.size(), 0);
    if (fresh) {
      bpe(word, out);
      it->second.second = out.size() - it->second.first;
    } else {
      for (size_t k = 0; k < it->second.second; ++k) out.push_back(out[it->second.first + k]);
    }
    off = end;
  }
}

std::vector<int> Tokenizer::encode(const std::string& text) const {
  long bad = utf8_error_offset(text);
  if (bad >= 0) throw InputError("invalid UTF-8 in prompt at byte " + std::to_string(bad), "");
  if (text.size() > size_t(INT_MAX)) throw InputError("prompt too long (over 2 GiB)", "");  // BPE uses int
  std::vector<int> out;
  out.reserve(text.size() / 3 + 1);
  std::string_view rest(text);
  if (eos_id_ >= 0) {
    const std::string_view eot(kEndOfText);
    for (size_t at; (at = rest.find(eot)) != std::string_view::npos; rest.remove_prefix(at + eot.size())) {
      impl_->encode_piece(rest.substr(0, at), out);
      out.push_back(eos_id_);
    }
  }
  impl_->encode_piece(rest, out);
  return out;
}

const std::string& Tokenizer::token_bytes(int id) const {
  if (id < 0 || size_t(id) >= impl_->id_bytes.size()) {
    throw InputError("token id " + std::to_string(id) + " out of range (vocab has " +
                         std::to_string(impl_->id_bytes.size()) + " tokens)",
                     "");
  }
  return impl_->id_bytes[id];
}

std::string Tokenizer::decode_bytes(const std::vector<int>& ids) const {
  std::string out;
  for (int id : ids) out += token_bytes(id);
  return out;
}

std::string Tokenizer::decode(const std::vector<int>& ids) const {
  std::string bytes = decode_bytes(ids);
  std::string out;
  out.reserve(bytes.size());
  append_replaced(bytes, false, out);
  return out;
}

int Tokenizer::vocab_size() const { return int(impl_->id_bytes.size()); }

// ---- streaming decode and validation -----------------------------------------------------------

std::string Utf8Stream::push(const std::string& bytes) {
  pending_ += bytes;
  std::string out;
  pending_.erase(0, append_replaced(pending_, true, out));
  return out;
}

std::string Utf8Stream::flush() {
  std::string out;
  append_replaced(pending_, false, out);
  pending_.clear();
  return out;
}

long utf8_error_offset(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (size_t i = 0; i < s.size();) {
    Utf8Step st = utf8_step(p + i, s.size() - i);
    if (st.kind != Utf8Kind::valid) return long(i);
    i += st.len;
  }
  return -1;
}

}  // namespace gen
