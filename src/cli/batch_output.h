// The --output file of the batch runs (--prompts-file, gen perplexity over many files): JSON lines
// appended whole as items finish, and --resume, which continues the file of a run that stopped.
#pragma once
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "cli/shard.h"
#include "cli/stdout_writer.h"
#include "gen/prompts.h"

namespace gen {

// Lines are appended whole, one write() each; with --resume the indices already there are skipped (a
// partial last line, left by a kill, is cut off first). The lines must belong to the same run: each
// index is in range and in this shard, the `check` of its content passes (the prompt at its index, say),
// no index (sample) appears twice, and check_run() finds their "run" fingerprints equal to this run's.
// The file is flock()ed (exclusive, non-blocking) while it is open: a second gen run given the same file
// is refused (exit 2).
class BatchOutput {
 public:
  // Throws InputError (naming path:line) when the line does not belong to the item at `index`.
  using LineCheck = std::function<void(int index, bool error, const nlohmann::json& line, const std::string& where)>;
  // `count` items, of which this run does `shard`'s; `what`: "prompts" or "files", for messages.
  BatchOutput(const std::string& path, bool resume, int count, const Shard& shard, LineCheck check,
              const std::string& what);
  // --prompts-file: a result line's "prompt" is the prompt at its index, an error line's its first bytes.
  BatchOutput(const std::string& path, bool resume, const std::vector<PromptSpec>& prompts, const Shard& shard = {});
  ~BatchOutput();
  BatchOutput(const BatchOutput&) = delete;
  BatchOutput& operator=(const BatchOutput&) = delete;
  // Refuses (InputError) a file whose lines carry another "run" than `run` (lines without one, written
  // before gen recorded it, pass).
  void check_run(const std::string& run) const;
  // Sample `sample` of item `index` is in the file (a line without "sample" is sample 0), or the
  // item's error line is: an error stands for all of its samples.
  bool done(int index, int sample) const { return done_.count({index, sample}) || failed_.count(index); }
  int done_count() const { return int(done_.size() + failed_.size()); }  // lines in the file
  int failed_before() const { return int(failed_.size()); }  // error lines found by --resume
  // line without its newline; append_whole_line. sample -1: the item's error line.
  void write_line(int index, int sample, const std::string& line);
  void close();  // at the end of the run: throws when close() reports a lost write (NFS)
  const std::string& path() const { return path_; }

 private:
  void lock();
  void load(bool resume);  // checks the lines already there
  void check_line(const std::string& line, int line_no);
  std::string path_;
  int count_;
  Shard shard_;
  LineCheck check_;
  std::string what_;
  int fd_ = -1;
  std::set<std::pair<int, int>> done_;  // (index, sample) of the result lines
  std::set<int> failed_;                // indices of the error lines
  std::map<std::string, std::string> runs_;  // the "run" values found, each with its first line
};

// Appends `line` and a newline to fd (opened O_APPEND), keeping only whole lines in the file: when a
// write fails (a full disk, a short write then an error) the file is cut back to its size before the
// call, then Error "writing <path> failed: <reason>" is thrown. write_fn: tests pass a failing one.
void append_whole_line(int fd, const std::string& line, const std::string& path, WriteFn write_fn = nullptr);

// The prompt as an error line echoes it: at most its first 64 bytes (then "...").
std::string prompt_prefix(const std::string& text);

}  // namespace gen
