#include "text/byte_level.h"

#include "text/utf8.h"

namespace gen::text {

ByteAlphabet::ByteAlphabet() {
  byte_of_cp.fill(-1);
  uint32_t n = 0;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    cp_of_byte[b] = printable ? uint32_t(b) : 256 + n++;
    byte_of_cp[cp_of_byte[b]] = b;
  }
}

std::string ByteAlphabet::text_of(int b) const {
  uint32_t cp = cp_of_byte[b];
  if (cp < 0x80) return std::string(1, char(cp));
  return {char(0xC0 | (cp >> 6)), char(0x80 | (cp & 0x3F))};
}

bool ByteAlphabet::bytes_of(std::string_view token, std::string& bytes) const {
  const auto* p = reinterpret_cast<const unsigned char*>(token.data());
  for (size_t i = 0; i < token.size();) {
    Utf8Step st = utf8_step(p + i, token.size() - i);
    // Only one- and two-byte characters can be in the alphabet (all below U+0800).
    uint32_t cp = st.kind != Utf8Kind::valid || st.len > 2 ? UINT32_MAX
                  : st.len == 1                            ? p[i]
                                                           : (p[i] & 0x1Fu) << 6 | (p[i + 1] & 0x3Fu);
    if (cp >= byte_of_cp.size() || byte_of_cp[cp] < 0) return false;
    bytes += char(byte_of_cp[cp]);
    i += st.len;
  }
  return true;
}

const ByteAlphabet& alphabet() {
  static const ByteAlphabet a;
  return a;
}

}  // namespace gen::text
