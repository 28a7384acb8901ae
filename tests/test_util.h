// Shared helpers for the Catch2 tests: where fixtures and the GPT-2 tokenizer files are, temp dirs,
// and a tolerance check that reports the worst element.
#pragma once
#include <string>
#include <vector>

namespace gen::test {

// tests/fixtures/<rel>
std::string fixture(const std::string& rel);
// Directory holding the real GPT-2 vocab.json and merges.txt: $GEN_TOKENIZER_DIR, else
// ../shared/gpt2-tokenizer beside the source tree, else models/gpt2. Empty when none exists.
std::string tokenizer_dir();
std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& bytes);

// A fresh directory under the build tree, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// |got - ref| <= atol + rtol * |ref| for every element; on failure the message names the worst
// element (index, got, ref). Returns an empty string when all pass.
std::string check_close(const float* got, const float* ref, size_t n, double atol, double rtol);

// A logits row within `rel` of the row's largest magnitude, plus `rel` of each element itself: what
// "relative error under rel" means for logits. Empty when it passes.
std::string check_logits_row(const float* got, const float* ref, int V, double rel);

// Runs a shell command, returns its exit status; stdout and stderr land in the given strings.
int run_command(const std::string& cmd, std::string* out, std::string* err);

}  // namespace gen::test

#include <memory>

#include "gen/tokenizer.h"

namespace gen::test {
// A tokenizer for the tiny fixture models (gen::byte_level_tokenizer of at least 257 ids).
Tokenizer tiny_tokenizer(int vocab_size);
}  // namespace gen::test
