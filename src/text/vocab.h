// A GPT-2 vocabulary as the BPE uses it, and its loading from vocab.json and merges.txt (untrusted
// files: every malformation is an InputError naming the file, and the line for merges).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace gen::text {

inline constexpr const char* kEndOfText = "<|endoftext|>";

struct Vocab {
  std::vector<std::string> id_bytes;  // [n_vocab] the bytes each token stands for
  std::array<int, 256> byte_id{};     // the single-byte token of each byte
  // (left id << 32 | right id) -> (rank, merged id)
  std::unordered_map<uint64_t, std::pair<int, int>> merges;
  int eos_id = -1;  // "<|endoftext|>", -1 when the vocab lacks it
};

inline uint64_t merge_key(int left, int right) { return uint64_t(uint32_t(left)) << 32 | uint32_t(right); }

// The whole file; InputError naming the path when it is a directory or cannot be opened or read.
std::string read_whole_file(const std::string& path);

// vocab_where and merges_where name the two texts in error messages.
Vocab parse_vocab(const std::string& vocab_json, const std::string& vocab_where,
                  const std::string& merges_txt, const std::string& merges_where);

}  // namespace gen::text
