#include "model/hash.h"

// Inline: every function static in this file, so no binary (the fuzzers included) links libxxhash.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <new>

namespace gen {

static_assert(XXH_VERSION_NUMBER >= 800, "XXH3 needs xxHash 0.8 or newer");

namespace {
XXH3_state_t* as_state(unsigned char* p) { return std::launder(reinterpret_cast<XXH3_state_t*>(p)); }
const XXH3_state_t* as_state(const unsigned char* p) {
  return std::launder(reinterpret_cast<const XXH3_state_t*>(p));
}
}  // namespace

uint64_t xxh3_64(const void* data, size_t n) { return XXH3_64bits(data, n); }

Hash64::Hash64() {
  static_assert(sizeof(XXH3_state_t) <= sizeof(state_), "Hash64::state_ is too small for XXH3_state_t");
  static_assert(alignof(XXH3_state_t) <= 64, "Hash64::state_ is not aligned enough for XXH3_state_t");
  // XXH3_state_t is a C struct (trivial), so its storage is the object; reset fills every field used.
  XXH3_64bits_reset(new (state_) XXH3_state_t);
}

void Hash64::update(const void* data, size_t n) {
  // xxHash accepts (NULL, 0); an empty std::vector's data() may be null.
  if (n > 0) XXH3_64bits_update(as_state(state_), data, n);
}

uint64_t Hash64::digest() const { return XXH3_64bits_digest(as_state(state_)); }

std::string hex64(uint64_t v) {
  static const char digits[] = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) s[size_t(i)] = digits[v & 15];
  return s;
}

}  // namespace gen
