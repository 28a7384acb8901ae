// gen merge: the JSON lines of a run's shards (--shard K/N, each its own --output file) back into one
// file in index order, one line per index (and sample). The lines must carry one "run" fingerprint;
// an index found twice must say the same thing both times.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace gen {

struct MergeInput {
  std::string name;     // the file, for messages
  std::string content;  // its bytes
};

struct MergeResult {
  std::vector<std::string> lines;    // in (index, sample) order, each as it was in its file (no newline)
  std::string run;                   // the fingerprint they share ("" when there were no lines)
  long indices = 0;                  // distinct indices
  long duplicates = 0;               // lines dropped because an equal one came first
  int samples = 1;                   // completions per index: the lines' "samples" (or 1 + the highest "sample")
  std::vector<std::string> missing;  // with expect >= 0: what is not there ("7", "12-15", "9 (sample 1)")
  long missing_count = 0;            // indices (or samples) missing in all
  std::vector<std::string> notes;    // partial last lines dropped, gaps without --expect
};

// Merges files' lines, one file at a time (a file's bytes can go once it is added): the memory held is
// about the lines' bytes. expect: the number of prompts (indices 0..expect-1), or -1 for unknown.
// add() throws InputError (path:line) for a line that is not a gen result line, a line of another run,
// two lines of one index that disagree (apart from timing, device and memory fields), and an index at
// or past `expect`. A last line without its newline that is not valid JSON (a task killed while
// writing) is dropped with a note.
class ShardMerger {
 public:
  explicit ShardMerger(long expect) : expect_(expect) {}
  void add(const MergeInput& file);
  MergeResult finish();  // once, after the last add()

 private:
  struct Line {
    std::string text;
    int file = 0, line_no = 0;
    uint64_t view = 0;  // XXH3-64 of the line without its volatile fields, to compare duplicates
  };
  void add_line(std::string text, int line_no, bool unterminated);
  void check_run(const std::string& run, int line_no);
  std::string where(int file, int line_no) const { return names_[size_t(file)] + ":" + std::to_string(line_no); }
  long expect_;
  std::vector<std::string> names_;
  std::string run_, run_where_;
  std::map<std::pair<long, int>, Line> lines_;  // by (index, sample); sample -1: the index's error line
  int samples_ = 1;                             // the run's --samples, from the lines' "samples"
  MergeResult out_;
};

// All of `files` through one ShardMerger.
MergeResult merge_runs(const std::vector<MergeInput>& files, long expect);

// "3, 7, 11-13": sorted values as ranges; at most `limit` items, then "... (N more)".
std::string ranges_text(const std::vector<long>& sorted, size_t limit);

int run_merge(int argc, char** argv);

}  // namespace gen
