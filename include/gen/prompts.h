// Reading what the user names: any input file, and --prompts-file (DESIGN.md section 3): plain text,
// one prompt per line taken literally (blank lines skipped), or .jsonl with one {"prompt": ...} object a
// line that may carry its own max_new_tokens, temperature, top_k, top_p and seed. A bad line is that
// prompt's error, not the file's.
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace gen {

// The ranges of the generation settings, the same for flags and for .jsonl fields.
namespace limits {
constexpr int max_new_tokens = 1 << 24;
constexpr double max_temperature = 100;
constexpr int max_top_k = 1 << 24;
constexpr int max_ctx = 1 << 20;
constexpr int max_samples = 4096;
}  // namespace limits

// The bytes of a file the user named (a prompt, a prompts file, a text to score). Throws InputError
// "cannot read <what>: <reason> (<path>)" when it is missing, a directory, or unreadable.
std::string read_user_file(const std::string& path, const std::string& what);


struct PromptSpec {
  int index = 0;   // 0-based among the prompts (blank lines do not count)
  int line = 0;    // 1-based line in the file, for messages
  std::string text;
  std::optional<int> max_new_tokens;
  std::optional<float> temperature;
  std::optional<int> top_k;
  std::optional<float> top_p;
  std::optional<unsigned long long> seed;
  std::optional<std::vector<std::string>> stop;  // "stop": a string or an array of strings
  std::string error;  // non-empty: this prompt cannot run (the reason)
};

// Splits `content` into prompts. `jsonl` selects the JSON-lines format. Never throws for a bad line.
std::vector<PromptSpec> parse_prompts(const std::string& content, bool jsonl);
// Reads and parses a file; .jsonl by its extension. Throws InputError when the file cannot be read
// or holds no prompt at all. bytes: when given, receives the file's bytes (a run's fingerprint).
std::vector<PromptSpec> read_prompts_file(const std::string& path, std::string* bytes = nullptr);

}  // namespace gen
