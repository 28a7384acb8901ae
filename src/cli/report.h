// Instruments of a run: the --trace CSV (one row per forward step) and the --compare table that puts a
// run with the KV cache beside one without.
#pragma once
#include <cstdio>
#include <string>
#include <vector>

#include "gen/generator.h"

namespace gen {

// Writes `mode,step,context,batch,step_ms` rows. The file is created (truncated) by the constructor,
// so a path that cannot be written fails before the model loads. A trace never close()d (the run
// failed) is removed.
class TraceWriter {
 public:
  explicit TraceWriter(const std::string& path);
  ~TraceWriter();
  TraceWriter(const TraceWriter&) = delete;
  TraceWriter& operator=(const TraceWriter&) = delete;
  void row(bool use_cache, const StepInfo& s);  // mode "cache" or "no-cache"
  void close();  // flushes; throws when the data did not reach the file

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
};

// One side of --compare: the result and the wall time of each step (step 0 is the prefill).
struct CompareRun {
  GenResult result;
  std::vector<double> step_ms;
  // Mean ms per decode step over the first / last tenth of the decode steps (at least one step).
  double first_tenth_ms() const;
  double last_tenth_ms() const;
};

// The table (for stdout) and the JSON object holding both runs.
std::string compare_table(const CompareRun& cached, const CompareRun& uncached, const std::string& device);
std::string compare_json(const CompareRun& cached, const CompareRun& uncached, const std::string& prompt,
                         const std::string& device, const std::string& dtype);

}  // namespace gen
