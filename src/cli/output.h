// What a run prints: the JSON line of --json and the human timing summary on stderr.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "gen/generator.h"

namespace gen {

struct RunInfo {
  int index = 0;
  std::string prompt;
  std::string device;
  std::string dtype;  // the backend's dtype(): "fp32", "bf16", "int8", "fp16"
  bool use_cache = true;
  std::string memory;  // the backend's memory_summary(), printed when not empty
  uint64_t seed = 0;   // the sampling seed the prompt ran with ("seed" in JSON)
  int sample = -1;     // with --samples K > 1: which completion, 0..K-1 ("sample"); -1: none
  std::string run;     // a batch run's fingerprint ("run"; cli/shard.h), when not empty
  int samples = 1;     // --samples K: "samples" beside "sample" when K > 1 (gen merge counts on it)
};

// The JSON object of one prompt's result, as DESIGN.md section 3 lists its fields.
nlohmann::json result_object(const RunInfo& info, const GenResult& r);
// It as one line (no newline); invalid UTF-8 cannot make the dump throw.
std::string result_json(const RunInfo& info, const GenResult& r);
std::string json_line(const nlohmann::json& j);
// Several lines for stderr: load, prefill, decode, KV cache.
std::string timing_summary(const RunInfo& info, const GenResult& r);

}  // namespace gen
