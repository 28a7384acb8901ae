// libFuzzer target: arbitrary bytes as a gen K/V file image to gen::parse_kv_file. An input of 56
// bytes or more gets the XXH3-64 of the rest as its last 8 bytes, so that mutations get past the
// checksum and reach the structure checks behind it (the meta JSON, the shape, the ids). InputError is
// the contract for bad input; any other exception escapes and aborts (a finding).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "gen/error.h"
#include "gen/kv_file.h"
#include "model/hash.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A heap copy of the exact size: ASan sees a read past the end.
  std::vector<uint8_t> file(data, data + size);
  if (size >= 56) {
    const uint64_t sum = gen::xxh3_64(file.data(), size - 8);
    std::memcpy(file.data() + size - 8, &sum, 8);
  }
  try {
    const gen::KvFile f = gen::parse_kv_file(file.data(), file.size(), "fuzz");
    // Accepted: the header's sizes, the meta and the sections must agree.
    // h: version, meta_bytes, n_tokens, n_layer, n_head, head_dim, elem_bytes, reserved.
    uint32_t h[8];
    std::memcpy(h, file.data() + 8, sizeof h);
    const uint64_t kv = 2ull * h[3] * h[4] * h[2] * h[5] * h[6];
    if (f.kv.size() != kv) abort();
    if (f.tokens.size() != h[2]) abort();
    if (48ull + h[1] + 4ull * h[2] + kv + 8 != size) abort();
    if (kv > 0 && std::memcmp(f.kv.data(), file.data() + size - 8 - kv, kv) != 0) abort();
    if (gen::kv_dtype_bytes(f.kv_dtype) != h[6]) abort();
    if (f.model.n_layer != int64_t(h[3]) || f.model.n_head != int64_t(h[4]) ||
        f.model.n_embd != int64_t(h[4]) * h[5]) {
      abort();
    }
    for (int id : f.tokens) {
      if (id < 0 || id >= f.model.vocab_size) abort();
    }
    if (!f.extra.is_object()) abort();
  } catch (const gen::InputError&) {
    return 0;
  }
  return 0;
}
