// Instruments of a run: the --trace CSV (one row per forward step) and the --compare table that puts a
// run with the KV cache beside one without.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "gen/generator.h"

namespace gen {

// Writes `mode,step,context,batch,step_ms` rows. The file is created (truncated) by the constructor,
// so a path that cannot be written fails before the model loads. Every write is checked: a failed one
// throws Error "writing <path> failed: <reason>". A trace never close()d, or whose writing failed, is
// removed (a regular file only: never /dev/full or a fifo).
class TraceWriter {
 public:
  explicit TraceWriter(const std::string& path);
  ~TraceWriter();
  TraceWriter(const TraceWriter&) = delete;
  TraceWriter& operator=(const TraceWriter&) = delete;
  void row(bool use_cache, const StepInfo& s);  // mode "cache" or "no-cache"
  void close();  // flushes; throws when the data did not reach the file

 private:
  [[noreturn]] void fail(int err);  // closes, removes, throws
  std::string path_;
  std::FILE* f_ = nullptr;
  bool regular_ = false;  // a regular file: removed when the trace is not complete
};

// One side of --compare: the result and the wall time of each step (step 0 is the prefill). A run
// cut by Ctrl-C has finish_reason "interrupted"; one that never ran a step is not started().
struct CompareRun {
  GenResult result;
  std::vector<double> step_ms;
  bool started() const { return !step_ms.empty(); }
  bool interrupted() const { return result.finish_reason == "interrupted"; }
  // Mean ms per decode step over the first / last tenth of the decode steps (at least one step).
  double first_tenth_ms() const;
  double last_tenth_ms() const;
};

// The table (for stdout) and the JSON object holding both runs. When a run was interrupted the table
// shows "-" for a run never started and no speed-up; the JSON has "interrupted": true and null
// "speedup" and "identical".
std::string compare_table(const CompareRun& cached, const CompareRun& uncached, const std::string& device);
std::string compare_json(const CompareRun& cached, const CompareRun& uncached, const std::string& prompt,
                         const std::string& device, const std::string& dtype, uint64_t seed);

}  // namespace gen
