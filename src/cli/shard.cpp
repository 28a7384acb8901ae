#include "cli/shard.h"

#include <cstdlib>

#include "gen/error.h"
#include "gen/fingerprint.h"
#include "model/hash.h"

namespace gen {

namespace {

// A non-negative decimal integer up to `hi`, or -1.
long parse_count(const std::string& s, long hi) {
  if (s.empty() || s.size() > 9) return -1;
  long v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  return v <= hi ? v : -1;
}

constexpr long kMaxShards = 1000000;

Shard from_slurm(const char* (*getenv_fn)(const char*)) {
  auto env = [&](const char* name) -> std::string {
    const char* v = getenv_fn(name);
    return v ? v : "";
  };
  const std::string id = env("SLURM_ARRAY_TASK_ID");
  if (id.empty()) {
    throw InputError("not in a Slurm array job (SLURM_ARRAY_TASK_ID is not set): submit with sbatch --array=0-(N-1), "
                     "or give --shard K/N", "--shard slurm");
  }
  const long task = parse_count(id, 1L << 30), lo = parse_count(env("SLURM_ARRAY_TASK_MIN"), 1L << 30);
  const long count = parse_count(env("SLURM_ARRAY_TASK_COUNT"), kMaxShards);
  if (task < 0 || lo < 0 || count < 1) {
    throw InputError("SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_COUNT must be numbers (got '" +
                         id + "', '" + env("SLURM_ARRAY_TASK_MIN") + "', '" + env("SLURM_ARRAY_TASK_COUNT") + "')",
                     "--shard slurm");
  }
  // Every task checks the whole array (not only its own id), so that a stepped or listed array fails in
  // all of its tasks instead of running some shards and skipping others.
  const std::string step = env("SLURM_ARRAY_TASK_STEP"), max = env("SLURM_ARRAY_TASK_MAX");
  const bool consecutive = (step.empty() || step == "1") && (max.empty() || parse_count(max, 1L << 30) == lo + count - 1);
  const long k = task - lo;
  if (k < 0 || k >= count || !consecutive) {
    throw InputError("the array (task " + std::to_string(task) + ", min " + std::to_string(lo) + ", max " +
                         (max.empty() ? "?" : max) + ", step " + (step.empty() ? "?" : step) + ", " +
                         std::to_string(count) + " tasks) is not " + std::to_string(count) +
                         " consecutive ids: submit it as --array=A-B (no step, no list)", "--shard slurm");
  }
  return Shard{int(k), int(count)};
}

}  // namespace

Shard parse_shard(const std::string& text, const char* (*getenv_fn)(const char*)) {
  if (text == "slurm") return from_slurm(getenv_fn ? getenv_fn : [](const char* n) -> const char* { return std::getenv(n); });
  const size_t slash = text.find('/');
  const long k = slash == std::string::npos ? -1 : parse_count(text.substr(0, slash), kMaxShards);
  const long n = slash == std::string::npos ? -1 : parse_count(text.substr(slash + 1), kMaxShards);
  if (k < 0 || n < 1) throw InputError("'" + text + "' is not K/N or slurm", "--shard");
  if (k >= n) throw InputError("shard " + text + " is out of range: K must be in 0.." + std::to_string(n - 1), "--shard");
  return Shard{int(k), int(n)};
}

std::string run_fingerprint(const std::string& inputs_hash, const nlohmann::json& settings) {
  const std::string canon = nlohmann::json{{"inputs", inputs_hash}, {"settings", settings}}.dump();
  return hex64(xxh3_64(canon.data(), canon.size()));
}

std::string hash_bytes(const std::string& bytes) { return hex64(xxh3_64(bytes.data(), bytes.size())); }

std::string run_id(const std::string& input_bytes, const std::string& model_dir, const ModelConfig& cfg,
                   nlohmann::json settings) {
  const ModelFingerprint m = model_fingerprint(model_dir, cfg);
  settings["model"] = {m.tensors, m.weights};
  return run_fingerprint(hash_bytes(input_bytes), settings);
}

}  // namespace gen
