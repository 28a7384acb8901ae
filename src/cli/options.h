// The command-line contract (DESIGN.md section 3), parsed with CLI11 into plain values.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "gen/generator.h"

namespace gen {

struct Options {
  std::string model = "models/gpt2";
  std::optional<std::string> prompt;       // --prompt TEXT
  std::optional<std::string> prompt_file;  // --prompt-file FILE|-
  std::optional<std::string> prompts_file;  // --prompts-file FILE (.txt lines or .jsonl)
  int batch_size = 8;                       // sequences decoded together (--prompts-file)
  int samples = 1;                          // --samples K: completions per prompt (seeds seed .. seed+K-1)
  std::string output;                       // --output FILE: JSON lines appended as prompts finish
  bool resume = false;                      // skip the indices already in --output
  std::string shard;                        // --shard K/N|slurm (cli/shard.h); empty: every prompt
  bool compare = false;                     // run with and without the cache, print one table
  std::string trace;                        // --trace FILE: one CSV row per step
  bool prefix_cache = true;                 // share prompt prefixes in a batch (--no-prefix-cache: off)
  long prefix_cache_mb = -1;                // the prefix cache's budget in MiB (-1: PrefixCache::default_budget)
  std::string prompt_cache;                 // --prompt-cache FILE: a single prompt's K/V, loaded and saved
  GenOptions gen;
  bool seed_given = false;  // --seed was given (otherwise gen.seed was drawn at random)
  std::string device = "auto";
  std::string dtype;  // empty: the backend's default
  int threads = 0;    // 0: all cores
  bool json = false;
  bool help = false;       // --help was asked: `help_text` holds it
  bool version = false;
  std::string help_text;
};

// Parses argv. Throws InputError (exit code 2) for unknown flags, bad values and conflicts.
Options parse_options(int argc, const char* const* argv);
// The prompt text from --prompt or --prompt-file (a file or "-" for stdin), checked as UTF-8.
std::string read_prompt(const Options& opt);

}  // namespace gen
