// GPT-2's byte alphabet: every byte has a printable, whitespace-free character that stands for it
// in vocab.json and merges.txt.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace gen::text {

// bytes_to_unicode(): printable Latin-1 bytes stand for themselves, the other 68 bytes are mapped
// to U+0100.. in byte order, so every vocab string is printable and whitespace-free.
struct ByteAlphabet {
  std::array<uint32_t, 256> cp_of_byte{};
  std::array<int, 324> byte_of_cp{};  // -1 where the code point is not in the alphabet
  ByteAlphabet();
  std::string text_of(int b) const;  // as UTF-8; all code points here are below U+0800
  // A vocab string -> the bytes it stands for, appended to bytes. False at the first character
  // outside the alphabet (bytes then holds those before it).
  bool bytes_of(std::string_view token, std::string& bytes) const;
};
const ByteAlphabet& alphabet();

}  // namespace gen::text
