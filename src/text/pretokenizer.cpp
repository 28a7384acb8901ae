#include "text/pretokenizer.h"

#include <string>

#include "gen/error.h"

namespace gen::text {
namespace {

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

}  // namespace

SplitRegex::SplitRegex() {
  int err = 0;
  PCRE2_SIZE err_off = 0;
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kSplitPattern), PCRE2_ZERO_TERMINATED,
                        PCRE2_UTF | PCRE2_UCP, &err, &err_off, nullptr);
  if (!code_) throw Error("cannot compile the GPT-2 split regex (PCRE2 error " + std::to_string(err) + ")");
  jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
}

SplitRegex::~SplitRegex() { pcre2_code_free(code_); }

SplitRegex::Words::Words(const SplitRegex& re, std::string_view text)
    : re_(re), text_(text), md_(pcre2_match_data_create_from_pattern(re.code_, nullptr)) {
  if (!md_) throw Error("out of memory for the tokenizer regex");
}

SplitRegex::Words::~Words() { pcre2_match_data_free(md_); }

bool SplitRegex::Words::next(std::string_view& word) {
  if (off_ >= text_.size()) return false;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text_.data());
  // The text was validated up front, so PCRE2 must not rescan it at every call (quadratic).
  int rc = re_.jit_ ? pcre2_jit_match(re_.code_, subject, text_.size(), off_, 0, md_, nullptr)
                    : PCRE2_ERROR_JIT_STACKLIMIT;
  if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
    rc = pcre2_match(re_.code_, subject, text_.size(), off_, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md_, nullptr);
  }
  size_t start = text_.size(), end = text_.size();
  if (rc >= 0) {
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md_);
    start = ov[0];
    end = ov[1];
  } else if (rc != PCRE2_ERROR_NOMATCH) {
    throw Error("tokenizer regex failed (PCRE2 error " + std::to_string(rc) + ")");
  }
  // Every character matches one alternative, so neither gaps nor empty matches happen; if they
  // did, HF would keep the gap as its own word, and so does this.
  if (start > off_) end = start, start = off_;
  if (end <= start) end = start + 1;
  word = text_.substr(start, end - start);
  off_ = end;
  return true;
}

}  // namespace gen::text
