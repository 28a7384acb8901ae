// Data parallelism past one process: --shard K/N takes the prompts (or files) whose 0-based index i has
// i % N == K, so that N processes (a Slurm job array, say) split one run; the indices in the output stay
// the global ones, and `gen merge` puts the shards back together (cli/merge.h). The JSON lines of one
// run carry the same "run" fingerprint: the input list, the model and the settings that decide the
// output, so that lines of another run are refused by --resume and by gen merge.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "gen/config.h"

namespace gen {

struct Shard {
  int k = 0;  // this shard, 0..n-1
  int n = 1;  // how many; 1: the whole run
  bool contains(long index) const { return index % n == k; }
  // The position of a global index among this shard's indices (index must be in the shard).
  long position(long index) const { return index / n; }
  // How many of `total` indices are in this shard.
  long count(long total) const { return total > k ? (total - k + n - 1) / n : 0; }
  std::string str() const { return std::to_string(k) + "/" + std::to_string(n); }
};

// "K/N" (0 <= K < N <= 1000000) or "slurm": K and N from SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN and
// SLURM_ARRAY_TASK_COUNT (an array of consecutive task ids, such as --array=0-7 or 1-8). Throws
// InputError (where: --shard) for anything else, and outside a Slurm array job. getenv: tests pass their own.
Shard parse_shard(const std::string& text, const char* (*getenv_fn)(const char*) = nullptr);

// The run's fingerprint: 16 hex digits (XXH3-64) of the input list's hash and the settings, as one
// canonical JSON text. Same inputs and settings, same fingerprint, on any host.
std::string run_fingerprint(const std::string& inputs_hash, const nlohmann::json& settings);

// XXH3-64 of a file's bytes, as 16 hex digits (the prompts file, the list of files).
std::string hash_bytes(const std::string& bytes);

// A run's "run": run_fingerprint of the input's bytes and `settings`, with the fingerprint of the model in
// model_dir (gen/fingerprint.h; its weights' hash is cached beside it) added as settings["model"].
std::string run_id(const std::string& input_bytes, const std::string& model_dir, const ModelConfig& cfg,
                   nlohmann::json settings);

}  // namespace gen
