// UTF-8 for the tokenizer: stepping over well-formed characters, lossy repair (U+FFFD) for decode,
// and escaping for error messages about vocab and merges files.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace gen::text {

enum class Utf8Kind { valid, truncated, invalid };
struct Utf8Step {
  Utf8Kind kind;
  size_t len;  // valid: the character; truncated: the bytes there are; invalid: maximal subpart
};

// The character at p (n > 0 bytes available), per Unicode Table 3-7.
Utf8Step utf8_step(const unsigned char* p, size_t n);

// Appends s to out with each maximal invalid subpart replaced by one U+FFFD, which is what
// Python's errors="replace" and Rust's from_utf8_lossy do. With hold_tail, an incomplete
// character at the very end is left unconsumed. Returns the number of bytes consumed.
size_t append_replaced(std::string_view s, bool hold_tail, std::string& out);

// For error messages: at most about max_bytes, valid UTF-8 kept, control and invalid bytes
// escaped as \xHH, so that a fuzzed file cannot make the message itself unprintable.
// (Unlike detail::printable, it keeps non-ASCII characters whole and writes hex in capitals.)
std::string printable_utf8(std::string_view s, size_t max_bytes);
// printable_utf8(s, 60) in double quotes.
std::string quote(std::string_view s);

}  // namespace gen::text
