// XXH3-64 (xxHash 0.8, Debian's libxxhash-dev, compiled in: nothing links libxxhash): the checksum of
// gen's K/V files and the model fingerprint's hashes. Fast (tens of GB/s) and stable across versions
// and hosts, so a value written by one build is checked by another. Not a cryptographic hash: it
// catches corruption, not an adversary.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace gen {

uint64_t xxh3_64(const void* data, size_t n);

// The same hash fed in pieces: update(a); update(b) gives xxh3_64 of a then b.
class Hash64 {
 public:
  Hash64();
  void update(const void* data, size_t n);
  uint64_t digest() const;

 private:
  // XXH3_state_t in place (its size and alignment are checked in hash.cpp), so that this header does
  // not pull xxhash.h into every file that hashes.
  alignas(64) unsigned char state_[640];
};

// 16 lowercase hex digits, most significant first (the canonical XXH64 text form).
std::string hex64(uint64_t v);

}  // namespace gen
