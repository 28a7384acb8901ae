// --prompts-file runs: many prompts through the continuous-batching Generator, one JSON line per prompt,
// and the --output file that --resume continues.
#pragma once
#include <set>
#include <string>
#include <vector>

#include "gen/generator.h"
#include "cli/options.h"
#include "gen/prompts.h"
#include "cli/report.h"

namespace gen {

// The --output file. Lines are appended whole, one write() each, as prompts finish; with --resume the
// indices already there are skipped (a partial last line, left by a kill, is cut off first). The lines
// must belong to the same prompts file: each one's prompt is checked against the prompt at its index.
class BatchOutput {
 public:
  BatchOutput(const std::string& path, bool resume, const std::vector<PromptSpec>& prompts);
  ~BatchOutput();
  BatchOutput(const BatchOutput&) = delete;
  BatchOutput& operator=(const BatchOutput&) = delete;
  bool done(int index) const { return done_.count(index) != 0; }
  int done_count() const { return int(done_.size()); }
  int failed_before() const { return failed_before_; }  // error lines found by --resume
  void write_line(int index, const std::string& line);  // line without its newline
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  std::set<int> done_;
  int failed_before_ = 0;
};

struct BatchContext {
  const Options& opt;
  Generator& generator;
  const Tokenizer& tokenizer;
  Backend& backend;
  std::string device;
  double load_ms = 0;
  TraceWriter* trace = nullptr;
};

// Runs every prompt not yet in `output` (nullptr: stdout). Returns the exit code: 0, 3 when some
// prompts failed (their error lines are written), 130 when interrupted.
int run_batch(const BatchContext& ctx, const std::vector<PromptSpec>& prompts, BatchOutput* output);

}  // namespace gen
