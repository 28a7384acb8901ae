// gen perplexity's options, and its run over many files (--file-list, --file given more than once,
// --shard, --output): one JSON line per file, in the --prompts-file way (indices, "run", --resume).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gen/config.h"
#include "gen/perplexity.h"
#include "gen/tokenizer.h"

namespace gen {

struct PplOptions {
  std::string model = "models/gpt2";
  std::vector<std::string> files;  // --file (repeatable)
  std::string file_list;           // --file-list LIST: one path a line
  int context = 0;                 // 0: not given, the model's n_positions
  bool context_given = false;
  std::string device = "auto";
  std::string dtype;  // empty: the backend's default
  int threads = 0;
  bool json = false;
  std::string shard;   // --shard K/N|slurm
  std::string output;  // --output FILE (JSON lines, appended)
  bool resume = false;
  bool help = false;
  std::string help_text;
  // One file, its result as before (text or one --json object); otherwise the list's JSON lines.
  bool list_mode() const { return files.size() != 1 || !file_list.empty() || !shard.empty() || !output.empty(); }
};

// The text of a file to score: not empty, UTF-8. Throws InputError naming the file.
std::string read_ppl_text(const std::string& path);
// --ctx, or the model's n_positions; InputError when --ctx is past n_positions.
int ppl_context(const PplOptions& opt, const ModelConfig& cfg);
// The text's tokens; InputError (naming path) when fewer than 2.
std::vector<int> ppl_tokens(const Tokenizer& tokenizer, const std::string& text, const std::string& path);
// A result's JSON fields (ppl, nll, tokens_scored, windows, tokens, context, device, tokens_per_s), the
// tokens per second over every token of every window in `secs`.
nlohmann::json ppl_json(const PerplexityResult& r, size_t tokens, int context, const std::string& device, double secs);

// The list run. Exit code: 0, 3 when some files failed (their error lines are written), 130 when
// interrupted.
int run_perplexity_list(const PplOptions& opt);

}  // namespace gen
