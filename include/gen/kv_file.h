// gen's K/V files: the token ids of a prefix and the K and V of every layer at those positions, for
// `gen --prompt-cache FILE` and `gen chat --session FILE`. One format for both (docs/kv_file.md): a
// fixed header with the sizes, a JSON meta section (kind, model fingerprint, dtypes, the front end's
// own fields), the ids, the K/V, and an XXH3-64 checksum of everything before it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gen/fingerprint.h"

namespace gen {

struct KvFile {
  std::string kind;      // "prompt" (--prompt-cache) or "chat" (gen chat --session)
  ModelFingerprint model;
  std::string dtype;     // the run's weight dtype (Backend::dtype()): "fp32", "fp16", "bf16", "int8"
  std::string kv_dtype;  // the K/V elements (Backend::kv_dtype()): "f32", "f16", "bf16"
  std::string device;    // "cpu" or "cuda": where it was computed (not checked on reading)
  std::vector<int> tokens;   // ids at positions 0..n-1
  // [n_layer][2: K, V][n_head][n][head_dim] elements of kv_dtype, little-endian (Backend::read_kv's
  // host layout with n positions per head).
  std::vector<uint8_t> kv;
  nlohmann::json extra = nlohmann::json::object();  // the front end's own fields (gen chat: the conversation)
};

// Bytes of one K/V element: "f32" 4, "f16" and "bf16" 2; InputError otherwise.
size_t kv_dtype_bytes(const std::string& kv_dtype);

// Fails early, before a slow load, when `path` could not be written at the end of the run: its
// directory is missing or not writable, or `path` is a directory. Throws InputError
// "cannot write the <what>: <reason> (<path>)". Leaves nothing behind.
void check_kv_file_writable(const std::string& path, const std::string& what);

// A write(2)-like function: tests pass one that fails on purpose (nullptr: ::write).
using KvWriteFn = long (*)(int fd, const void* buf, size_t n);

// Writes `f` to `path` atomically: into a temporary file in the same directory, fsync'd, then renamed
// over `path`, so `path` holds either its old content or the whole new file, never a part. On any
// failure the temporary file is removed and Error "writing <path> failed: <reason>" is thrown. Before
// writing anything, throws Error when `f` would fail the reader's checks: the sizes do not agree (kv
// must be 2 x n_layer x n_head x tokens x head_dim elements), an id is outside the vocabulary, a
// dtype is unknown, there are no tokens or more than 2^20.
void write_kv_file(const std::string& path, const KvFile& f, KvWriteFn write_fn = nullptr);

// Parses a whole file image (the fuzzer and tests feed bytes). Checks, in this order: the magic, the
// version, that the fixed header's sizes add up to exactly `size` (before anything is allocated), the
// checksum, the meta JSON (its fields and types, the shape agreeing with the fixed header), and every
// id in 0..vocab_size-1. Throws InputError "<what is wrong> (<where>)"; never reads past `size`.
KvFile parse_kv_file(const uint8_t* data, size_t size, const std::string& where);

// Reads `path` with the same checks: a regular file (a directory, FIFO, symlink loop or unreadable
// file is InputError "cannot read the <what>: <reason> (<path>)"); the fixed header is read first and
// its sizes are checked against the file's length before the rest is read; the K/V are read straight
// into KvFile::kv (the file is never held twice in memory).
KvFile read_kv_file(const std::string& path, const std::string& what);

// Throws InputError naming `where` when `f` cannot serve this run: another kind, another model (its
// shape, its tensors, or the same tensors with other weights: each said in its own words), another
// dtype, or K/V stored in another element type.
void check_kv_file_matches(const KvFile& f, const std::string& kind, const ModelFingerprint& model,
                           const std::string& dtype, const std::string& kv_dtype, const std::string& where);

}  // namespace gen
