// Helpers for parsers of untrusted files (config.json, safetensors headers) and for error messages.
#pragma once
#include <cstddef>
#include <string>

namespace gen::detail {

// False when JSON text nests deeper than `limit`: a deep document costs far more memory as a DOM
// than its bytes, so parsers check this before building one.
bool json_depth_within(const char* p, size_t n, int limit);

// Text from a file made fit for a one-line error message: control bytes escaped (and bytes >= 0x80
// too when `escape_high`, for text that may not be UTF-8), at most max_len characters.
std::string printable(const std::string& s, bool escape_high, size_t max_len);

// At most the first max_bytes bytes of UTF-8 text, cut at a character boundary, then "..." when cut:
// what an error message echoes of a prompt that may be megabytes long.
std::string utf8_prefix(const std::string& s, size_t max_bytes);

}  // namespace gen::detail
