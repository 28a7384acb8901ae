#include "cli/batch_output.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>

#include "gen/error.h"
#include "text/text_util.h"

namespace gen {

using nlohmann::json;

namespace {

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// A line's "sample" (0 when absent), or InputError.
int sample_of(const json& j, const std::string& where) {
  const auto& s = j.contains("sample") ? j["sample"] : json(0);
  if (!s.is_number_integer() || s.get<long long>() < 0 || s.get<long long>() >= limits::max_samples) {
    throw InputError("\"sample\" is not a sample number; cannot resume this file", where);
  }
  return s.get<int>();
}

}  // namespace

std::string prompt_prefix(const std::string& text) { return detail::utf8_prefix(text, 64); }

BatchOutput::BatchOutput(const std::string& path, bool resume, int count, const Shard& shard, LineCheck check,
                         const std::string& what)
    : path_(path), count_(count), shard_(shard), check_(std::move(check)), what_(what) {
  // Opened and locked first: what --resume reads and cuts is then no other gen run's file in progress.
  fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw InputError(std::string("cannot write the output file: ") + std::strerror(errno), path);
  try {
    lock();
    load(resume);
  } catch (...) {
    ::close(fd_);  // the lock goes with it
    throw;
  }
}

BatchOutput::BatchOutput(const std::string& path, bool resume, const std::vector<PromptSpec>& prompts,
                         const Shard& shard)
    : BatchOutput(path, resume, int(prompts.size()), shard,
                  [&prompts](int i, bool error, const json& j, const std::string& where) {
                    const PromptSpec& p = prompts[size_t(i)];
                    // An error line echoes only the prompt's first bytes.
                    const std::string expected = error ? prompt_prefix(p.text) : p.text;
                    if (p.error.empty() && (!j.contains("prompt") || j["prompt"] != expected)) {
                      throw InputError("index " + std::to_string(i) +
                                           " holds a different prompt than the prompts file; not the same run", where);
                    }
                  },
                  "prompts") {}

void BatchOutput::lock() {
  if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) return;
  if (errno == EWOULDBLOCK)
    throw InputError(path_ + " is being written by another gen run (locked)", "--output");
  // A filesystem without locks (some network mounts): go on, as before there were locks.
  std::cerr << "[gen] " << path_ << ": cannot lock (" << std::strerror(errno)
            << "); another run could write it too\n";
}

void BatchOutput::load(bool resume) {
  struct stat st {};
  if (::fstat(fd_, &st) != 0) throw Error("cannot stat " + path_ + ": " + std::strerror(errno));
  if (st.st_size > 0 && !resume) {
    throw InputError("the output file exists and is not empty; pass --resume to continue it, or remove it",
                     path_);
  }
  if (st.st_size == 0 || !resume) return;
  std::string content = read_all(path_);
  const size_t last_newline = content.rfind('\n');
  const size_t keep = last_newline == std::string::npos ? 0 : last_newline + 1;
  if (keep < content.size()) {  // a line cut by a kill: drop it, its item runs again
    if (::ftruncate(fd_, off_t(keep)) != 0) {
      throw Error(std::string("cannot cut the partial last line: ") + std::strerror(errno) + " (" + path_ +
                  ")");
    }
    std::cerr << "[gen] " << path_ << ": dropped a partial last line (" << content.size() - keep
              << " bytes)\n";
    content.resize(keep);
  }
  size_t pos = 0;
  for (int line_no = 1; pos < content.size(); ++line_no) {
    const size_t end = content.find('\n', pos);
    check_line(content.substr(pos, end - pos), line_no);
    pos = end + 1;
  }
}

// A line a previous run wrote: a JSON object whose index is this run's and whose content matches it.
void BatchOutput::check_line(const std::string& line, int line_no) {
  const std::string where = path_ + ":" + std::to_string(line_no);
  json j = json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("index") || !j["index"].is_number_integer()) {
    throw InputError("not a gen result line (no integer \"index\"); cannot resume this file", where);
  }
  const long long i = j["index"].get<long long>();
  if (i < 0 || i >= count_) {
    throw InputError("index " + std::to_string(i) + " is beyond the " + std::to_string(count_) + " " + what_ +
                         " of this run; not the same run", where);
  }
  if (!shard_.contains(long(i))) {
    throw InputError("index " + std::to_string(i) + " is not in shard " + shard_.str() + "; not the same shard",
                     where);
  }
  const bool error = j.contains("error");
  check_(int(i), error, j, where);
  if (j.contains("run")) runs_.emplace(j["run"].is_string() ? j["run"].get<std::string>() : j["run"].dump(), where);
  // One run writes each (index, sample) once; twice means two runs (or two writers) shared the file.
  const int sample = sample_of(j, where);
  // An error line stands for all of its item's samples: nothing else may share its index.
  const bool has_results = done_.lower_bound({int(i), 0}) != done_.lower_bound({int(i) + 1, 0});
  const bool again = failed_.count(int(i)) || (error ? has_results : done_.count({int(i), sample}) != 0);
  if (again) throw InputError("index " + std::to_string(i) + " appears twice in the output file; not one run", where);
  if (error) {
    failed_.insert(int(i));
  } else {
    done_.insert({int(i), sample});
  }
}

void BatchOutput::check_run(const std::string& run) const {
  for (const auto& [r, where] : runs_) {
    if (r != run) {
      throw InputError("its lines are from another run (run " + r + ", this run is " + run + "): the " + what_ +
                           ", the model or the settings that decide the output differ; not the same run",
                       where);
    }
  }
}

BatchOutput::~BatchOutput() {
  if (fd_ >= 0) ::close(fd_);
}

void BatchOutput::close() {
  if (fd_ < 0) return;
  const int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0 && errno != EINTR) throw Error("writing " + path_ + " failed: " + std::strerror(errno));
}

void BatchOutput::write_line(int index, int sample, const std::string& line) {
  append_whole_line(fd_, line, path_);
  if (sample < 0) {
    failed_.insert(index);
  } else {
    done_.insert({index, sample});
  }
}

void append_whole_line(int fd, const std::string& line, const std::string& path, WriteFn write_fn) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw Error("writing " + path + " failed: " + std::strerror(errno));
  // One write: a line lands whole or (killed) is cut and dropped on resume.
  const std::string buf = line + "\n";
  size_t written = 0;
  const int err = write_all(fd, buf, &written, write_fn);
  if (err == 0) return;
  std::string msg = "writing " + path + " failed: " + std::strerror(err);
  // Part of the line went out (a full disk takes what fits): cut the file back to its last whole line.
  if (written > 0 && ::ftruncate(fd, st.st_size) != 0) {
    msg += std::string("; cutting the partial line failed too (") + std::strerror(errno) + "), --resume will";
  }
  throw Error(msg);
}

}  // namespace gen
