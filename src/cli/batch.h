// --prompts-file runs: many prompts through the continuous-batching Generator, one JSON line per prompt,
// and the --output file that --resume continues.
#pragma once
#include <string>
#include <vector>

#include "gen/generator.h"
#include "cli/batch_output.h"
#include "cli/options.h"
#include "gen/prompts.h"
#include "cli/report.h"
#include "cli/stdout_writer.h"

namespace gen {

struct BatchContext {
  const Options& opt;
  Generator& generator;
  const Tokenizer& tokenizer;
  Backend& backend;
  std::string device;
  double load_ms = 0;
  TraceWriter* trace = nullptr;
  Shard shard;      // --shard: the prompts this process runs (all by default)
  std::string run;  // the run's fingerprint, "run" in every JSON line (batch_run_id)
};

// The "run" fingerprint of a --prompts-file run: the prompts file's bytes, the model, the dtype, the
// context and the settings that decide the output (not the batch size, the device, the threads or the
// shard, so that shards and an unsharded run of the same command share it). A seed drawn at random
// counts as "random": each line records the seed it ran with.
std::string batch_run_id(const Options& opt, const std::string& prompts_bytes, const std::string& model_dir,
                         const ModelConfig& cfg, const std::string& dtype);

// Runs every prompt of ctx.shard not yet in `output` (nullptr: stdout). Returns the exit code: 0, 3 when some
// prompts failed (their error lines are written), 130 when interrupted.
int run_batch(const BatchContext& ctx, const std::vector<PromptSpec>& prompts, BatchOutput* output);

}  // namespace gen
