// GPT-2 byte-level BPE, byte-exact with Hugging Face's GPT2TokenizerFast and tiktoken's "gpt2".
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace gen {

class Tokenizer {
 public:
  // Reads vocab.json (token -> id) and merges.txt (ranked merges, "#version" line optional).
  // Throws InputError on missing or malformed files.
  static Tokenizer load(const std::string& vocab_json_path, const std::string& merges_path);
  static Tokenizer from_strings(const std::string& vocab_json, const std::string& merges_txt,
                                const std::string& where);
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // UTF-8 text -> ids. The literal text "<|endoftext|>" is the EOS token. Invalid UTF-8 throws
  // InputError naming the byte offset.
  std::vector<int> encode(const std::string& text) const;
  // ids -> bytes, concatenated (may be invalid UTF-8 when cut inside a character).
  std::string decode_bytes(const std::vector<int>& ids) const;
  // ids -> UTF-8 text, invalid sequences replaced with U+FFFD (as Hugging Face's errors="replace").
  std::string decode(const std::vector<int>& ids) const;
  const std::string& token_bytes(int id) const;  // throws InputError for ids out of range

  int vocab_size() const;
  int eos_id() const { return eos_id_; }

 private:
  Tokenizer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int eos_id_ = 50256;
};

// Streaming decode: feed token bytes as they come, get back only complete UTF-8 characters.
// Bytes that cannot start or continue a valid character become U+FFFD at once; an incomplete
// character is held until it completes or flush() is called (then U+FFFD).
class Utf8Stream {
 public:
  std::string push(const std::string& bytes);
  std::string flush();

 private:
  std::string pending_;
};

// Validates UTF-8 (no overlongs, no surrogates, <= U+10FFFF). Returns the byte offset of the first
// error, or -1 when valid.
long utf8_error_offset(const std::string& s);

}  // namespace gen
