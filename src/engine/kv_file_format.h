// The layout of gen's K/V files (docs/kv_file.md), shared by the parser of file images (kv_file.cpp)
// and the reader and writer of files (kv_file_io.cpp), so both make the same checks in the same order.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "gen/kv_file.h"

namespace gen::kvfmt {

constexpr size_t kHeaderBytes = 48;
constexpr size_t kChecksumBytes = 8;
constexpr uint32_t kVersion = 1;
constexpr uint32_t kMaxMetaBytes = 16u << 20;
constexpr uint32_t kMaxTokens = 1u << 20;
// PNG's trick: "\r\n" and 0x1A show a file mangled by a text-mode transfer as a bad magic.
constexpr uint8_t kMagic[8] = {'G', 'E', 'N', 'K', 'V', '\r', '\n', 0x1A};

// The fixed header, little-endian u32s then kv_bytes as u64 (offsets in docs/kv_file.md).
struct Header {
  uint32_t version = kVersion, meta_bytes = 0, n_tokens = 0, n_layer = 0, n_head = 0, head_dim = 0,
           elem_bytes = 0, reserved = 0;
  uint64_t kv_bytes = 0;
  // Where each section starts, for a header that parse_header accepted (no overflow then).
  uint64_t tokens_offset() const { return kHeaderBytes + uint64_t(meta_bytes); }
  uint64_t kv_offset() const { return tokens_offset() + 4ull * n_tokens; }
  uint64_t total_bytes() const { return kv_offset() + kv_bytes + kChecksumBytes; }
};

// 2 x n_layer x n_head x n_tokens x head_dim x elem_bytes; false when it overflows 64 bits.
bool kv_size(const Header& h, uint64_t* out);

void encode_header(const Header& h, uint8_t out[kHeaderBytes]);

// The first checks, before anything is allocated: the magic, the version, the header's fields, and
// that they add up to exactly `file_size` bytes. `p` holds the file's first min(file_size, 48) bytes.
Header parse_header(const uint8_t* p, uint64_t file_size, const std::string& where);

// The meta JSON and the token ids (4 x n_tokens bytes) into `f`, checked against the header: the
// checks after the checksum. Leaves f->kv alone.
void parse_meta_and_tokens(const Header& h, const uint8_t* meta, const uint8_t* tokens, KvFile* f,
                           const std::string& where);

// What write_kv_file puts before the K/V: the header, the meta text and the ids, after the reader's
// own checks (so gen never writes a file it would refuse). Throws Error naming `path`.
struct Prefix {
  uint8_t header[kHeaderBytes];
  std::string meta;
  std::vector<uint8_t> tokens;
};
Prefix encode_prefix(const KvFile& f, const std::string& path);

}  // namespace gen::kvfmt
