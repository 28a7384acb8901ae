#include "text/utf8.h"

#include <cstdio>

#include "gen/tokenizer.h"

namespace gen::text {
namespace {
constexpr const char* kReplacement = "\xEF\xBF\xBD";  // U+FFFD
}  // namespace

// The second byte's range depends on the lead byte, which is what rules out overlongs,
// surrogates and code points above U+10FFFF.
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

std::string printable_utf8(std::string_view s, size_t max_bytes) {
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

std::string quote(std::string_view s) { return "\"" + printable_utf8(s, 60) + "\""; }

}  // namespace gen::text

// ---- the public UTF-8 API of gen/tokenizer.h ---------------------------------------------------

namespace gen {

std::string Utf8Stream::push(const std::string& bytes) {
  pending_ += bytes;
  std::string out;
  pending_.erase(0, text::append_replaced(pending_, true, out));
  return out;
}

std::string Utf8Stream::flush() {
  std::string out;
  text::append_replaced(pending_, false, out);
  pending_.clear();
  return out;
}

long utf8_error_offset(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (size_t i = 0; i < s.size();) {
    text::Utf8Step st = text::utf8_step(p + i, s.size() - i);
    if (st.kind != text::Utf8Kind::valid) return long(i);
    i += st.len;
  }
  return -1;
}

}  // namespace gen
