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
#include "cli/stdout_writer.h"

namespace gen {

// The --output file. Lines are appended whole, one write() each, as prompts finish; with --resume the
// indices already there are skipped (a partial last line, left by a kill, is cut off first). The lines
// must belong to the same prompts file: each one's prompt is checked against the prompt at its index,
// and no index (sample) may appear twice. The file is flock()ed (exclusive, non-blocking) while it is
// open: a second gen run given the same file is refused (exit 2).
class BatchOutput {
 public:
  BatchOutput(const std::string& path, bool resume, const std::vector<PromptSpec>& prompts);
  ~BatchOutput();
  BatchOutput(const BatchOutput&) = delete;
  BatchOutput& operator=(const BatchOutput&) = delete;
  // Sample `sample` of prompt `index` is in the file (a line without "sample" is sample 0), or the
  // prompt's error line is: an error stands for all of its samples.
  bool done(int index, int sample) const { return done_.count({index, sample}) || failed_.count(index); }
  int done_count() const { return int(done_.size() + failed_.size()); }  // lines in the file
  int failed_before() const { return int(failed_.size()); }  // error lines found by --resume
  // line without its newline; append_whole_line. sample -1: the prompt's error line.
  void write_line(int index, int sample, const std::string& line);
  void close();  // at the end of the run: throws when close() reports a lost write (NFS)
  const std::string& path() const { return path_; }

 private:
  void lock();
  void load(bool resume, const std::vector<PromptSpec>& prompts);  // checks the lines already there
  std::string path_;
  int fd_ = -1;
  std::set<std::pair<int, int>> done_;  // (index, sample) of the result lines
  std::set<int> failed_;                // indices of the error lines
};

// Appends `line` and a newline to fd (opened O_APPEND), keeping only whole lines in the file: when a
// write fails (a full disk, a short write then an error) the file is cut back to its size before the
// call, then Error "writing <path> failed: <reason>" is thrown. write_fn: tests pass a failing one.
void append_whole_line(int fd, const std::string& line, const std::string& path, WriteFn write_fn = nullptr);

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
