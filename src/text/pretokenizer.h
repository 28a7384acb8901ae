// GPT-2's pre-tokenizer: the split regex (through PCRE2) that cuts text into the words BPE merges
// within.
#pragma once
#include <cstddef>
#include <string_view>

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

namespace gen::text {

class SplitRegex {
 public:
  SplitRegex();  // compiles the pattern, JIT where PCRE2 has it; throws Error if it cannot
  ~SplitRegex();
  SplitRegex(const SplitRegex&) = delete;
  SplitRegex& operator=(const SplitRegex&) = delete;

  // The words of one non-empty text, already validated as UTF-8, in order; every byte is in one.
  class Words {
   public:
    Words(const SplitRegex& re, std::string_view text);  // throws Error when out of memory
    ~Words();
    Words(const Words&) = delete;
    Words& operator=(const Words&) = delete;
    bool next(std::string_view& word);  // false after the last word; throws Error if PCRE2 fails

   private:
    const SplitRegex& re_;
    std::string_view text_;
    pcre2_match_data* md_;
    size_t off_ = 0;
  };

 private:
  pcre2_code* code_ = nullptr;
  bool jit_ = false;
};

}  // namespace gen::text
