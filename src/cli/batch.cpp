#include "cli/batch.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "gen/device.h"
#include "gen/error.h"
#include "gen/prefix_cache.h"
#include "cli/output.h"
#include "cli/stdout_writer.h"
#include "text/text_util.h"

namespace gen {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// The prompt as an error line echoes it: at most its first 64 bytes (then "...").
std::string prompt_prefix(const std::string& text) { return detail::utf8_prefix(text, 64); }

// The lines a previous run wrote: each a JSON object whose index and prompt match the prompts file.
void check_resumed_line(const std::string& line, int line_no, const std::string& path,
                        const std::vector<PromptSpec>& prompts, std::set<std::pair<int, int>>* done,
                        std::set<int>* failed) {
  const std::string where = path + ":" + std::to_string(line_no);
  json j = json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("index") || !j["index"].is_number_integer()) {
    throw InputError("not a gen result line (no integer \"index\"); cannot resume this file", where);
  }
  const long long i = j["index"].get<long long>();
  if (i < 0 || i >= (long long)prompts.size()) {
    throw InputError("index " + std::to_string(i) + " is beyond the " + std::to_string(prompts.size()) +
                         " prompts of the prompts file; not the same run", where);
  }
  const PromptSpec& p = prompts[size_t(i)];
  const bool error = j.contains("error");
  // An error line echoes only the prompt's first bytes.
  const std::string expected = error ? prompt_prefix(p.text) : p.text;
  if (p.error.empty() && (!j.contains("prompt") || j["prompt"] != expected)) {
    throw InputError("index " + std::to_string(i) + " holds a different prompt than the prompts file; not the same run",
                     where);
  }
  // One run writes each (index, sample) once; twice means two runs (or two writers) shared the file.
  const auto& s = j.contains("sample") ? j["sample"] : json(0);
  if (!s.is_number_integer() || s.get<long long>() < 0 || s.get<long long>() > limits::max_samples) {
    throw InputError("\"sample\" is not a sample number; cannot resume this file", where);
  }
  const int sample = s.get<int>();
  // An error line stands for all of its prompt's samples: nothing else may share its index.
  const bool has_results = done->lower_bound({int(i), 0}) != done->lower_bound({int(i) + 1, 0});
  const bool again = failed->count(int(i)) || (error ? has_results : done->count({int(i), sample}) != 0);
  if (again) throw InputError("index " + std::to_string(i) + " appears twice in the output file; not one run", where);
  if (error) {
    failed->insert(int(i));
  } else {
    done->insert({int(i), sample});
  }
}

}  // namespace

BatchOutput::BatchOutput(const std::string& path, bool resume, const std::vector<PromptSpec>& prompts)
    : path_(path) {
  // Opened and locked first: what --resume reads and cuts is then no other gen run's file in progress.
  fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw InputError(std::string("cannot write the output file: ") + std::strerror(errno), path);
  try {
    lock();
    load(resume, prompts);
  } catch (...) {
    ::close(fd_);  // the lock goes with it
    throw;
  }
}

void BatchOutput::lock() {
  if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) return;
  if (errno == EWOULDBLOCK)
    throw InputError(path_ + " is being written by another gen run (locked)", "--output");
  // A filesystem without locks (some network mounts): go on, as before there were locks.
  std::cerr << "[gen] " << path_ << ": cannot lock (" << std::strerror(errno)
            << "); another run could write it too\n";
}

void BatchOutput::load(bool resume, const std::vector<PromptSpec>& prompts) {
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
  if (keep < content.size()) {  // a line cut by a kill: drop it, its prompt runs again
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
    check_resumed_line(content.substr(pos, end - pos), line_no, path_, prompts, &done_, &failed_);
    pos = end + 1;
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

namespace gen {

namespace {

// The most tokens a request can generate: its budget, or what the context leaves after its prompt.
long token_budget(const GenOptions& o, size_t prompt_tokens, int max_ctx) {
  return std::min<long>(o.max_new_tokens, max_ctx - long(prompt_tokens));
}

GenOptions request_options(const GenOptions& base, const PromptSpec& p) {
  GenOptions o = base;
  if (p.max_new_tokens) o.max_new_tokens = *p.max_new_tokens;
  if (p.temperature) o.sampling.temperature = *p.temperature;
  if (p.top_k) o.sampling.top_k = *p.top_k;
  if (p.top_p) o.sampling.top_p = *p.top_p;
  if (p.seed) o.seed = *p.seed;
  if (p.stop) o.stop_strings = *p.stop;
  return o;
}

// One completion to run: prompt `prompt` (its index in the prompts), sample k of --samples K with seed
// (the prompt's seed) + k, so that `--seed <its seed>` repeats it alone.
struct Job {
  int prompt = 0;
  int sample = 0;
};


// Where finished prompts go: appended to --output as they finish, or to stdout in input order
// (DESIGN.md section 3), each printed as soon as every earlier prompt is out.
class Emitter {
 public:
  Emitter(const BatchContext& ctx, BatchOutput* file) : ctx_(ctx), file_(file) {}
  void result(const PromptSpec& p, const GenResult& r, uint64_t seed, int sample) {
    const int key = p.index * ctx_.opt.samples + sample;
    if (file_ || ctx_.opt.json) {
      RunInfo info{p.index, p.text, ctx_.device, ctx_.backend.dtype(), ctx_.opt.gen.use_cache, "", seed, -1};
      if (ctx_.opt.samples > 1) info.sample = sample;
      put_json(key, p.index, sample, result_json(info, r));
    } else {
      put_stdout(key, p.text + r.text + "\n\n");
    }
  }
  void error(const PromptSpec& p, const std::string& msg) {
    const int key = p.index * ctx_.opt.samples;  // one error line for all of the prompt's samples
    next_skip_.insert(key);
    if (file_ || ctx_.opt.json) {
      put_json(key, p.index, -1,
               json_line(json{{"index", p.index}, {"line", p.line}, {"prompt", prompt_prefix(p.text)}, {"error", msg}}));
    } else {
      std::cerr << "[gen] prompt " << p.index << " (line " << p.line << ") failed: " << msg << "\n";
      put_stdout(key, "");
    }
  }
  // After an interruption: what finished is printed even where an earlier prompt never will be.
  void drain() {
    for (auto& [i, s] : pending_) write_stdout(s);
    pending_.clear();
  }

 private:
  // key: the stdout order (index x samples + sample); sample -1: the prompt's error line.
  void put_json(int key, int index, int sample, const std::string& line) {
    if (file_) {
      file_->write_line(index, sample, line);
    } else {
      put_stdout(key, line + "\n");
    }
  }
  void put_stdout(int index, std::string text) {
    pending_[index] = std::move(text);
    while (!pending_.empty() && pending_.begin()->first == next_) {
      write_stdout(pending_.begin()->second);
      pending_.erase(pending_.begin());
      // A failed prompt has one error line for its K samples.
      next_ += next_skip_.erase(next_) ? ctx_.opt.samples : 1;
    }
  }
  const BatchContext& ctx_;
  BatchOutput* file_;
  std::map<int, std::string> pending_;  // by key: prompt index x samples + sample
  std::set<int> next_skip_;              // keys of error lines
  int next_ = 0;  // stdout mode runs every prompt, so keys 0.. come in turn
};

// The progress line on stderr (a terminal only): prompts done, tokens, tokens/s, time left from the
// remaining token budget (an upper bound: EOS ends prompts early).
class Progress {
 public:
  Progress(int total, long budget) : total_(total), budget_(budget), on_(::isatty(STDERR_FILENO) != 0) {}
  void step(int tokens) {
    tokens_ += tokens;
    show(false);
  }
  void finished(long unused_budget) {
    ++done_;
    budget_ -= unused_budget;
    show(false);
  }
  void clear() {
    if (on_ && shown_) std::cerr << "\r\033[K" << std::flush;
  }
  long tokens() const { return tokens_; }

 private:
  void show(bool force) {
    if (!on_) return;
    const double now = seconds_since(t0_);
    if (!force && now - last_ < 0.25) return;
    last_ = now;
    shown_ = true;
    const double rate = now > 0 ? double(tokens_) / now : 0;
    const double left = rate > 0 ? double(std::max(0L, budget_ - tokens_)) / rate : 0;
    char buf[200];
    std::snprintf(buf, sizeof buf, "\r[gen] %d/%d prompts, %ld tokens, %.1f tok/s, ~%dm%02ds left\033[K", done_,
                  total_, tokens_, rate, int(left) / 60, int(left) % 60);
    std::cerr << buf << std::flush;
  }
  const Clock::time_point t0_ = Clock::now();
  int total_, done_ = 0;
  long budget_, tokens_ = 0;
  bool on_, shown_ = false;
  double last_ = -1;
};

// The requests to run: every prompt not already in `output`; a prompt that cannot run gets its error
// line now. *budget: the most tokens they can generate (for the time-left estimate).
std::vector<Request> make_requests(const BatchContext& ctx, const std::vector<PromptSpec>& prompts,
                                   BatchOutput* output, Emitter& out, int* failed, long* budget,
                                   std::vector<Job>* jobs) {
  const int max_ctx = effective_context(ctx.backend.config(), ctx.opt.gen.max_ctx);
  const int K = ctx.opt.samples;
  std::vector<Request> requests;
  for (const PromptSpec& p : prompts) {
    std::vector<int> todo;  // the samples not yet in the output
    for (int k = 0; k < K; ++k) {
      if (!output || !output->done(p.index, k)) todo.push_back(k);
    }
    if (todo.empty()) continue;
    std::string err = p.error;
    std::vector<int> ids;
    if (err.empty()) {
      try {
        ids = ctx.generator.encode_prompt(p.text, max_ctx);
      } catch (const InputError& e) {
        err = e.what();
      }
    }
    if (!err.empty()) {
      out.error(p, err);
      ++*failed;
      continue;
    }
    for (int k : todo) {
      Request r{int(jobs->size()), ids, request_options(ctx.opt.gen, p)};
      r.opt.seed += uint64_t(k);  // wraps at 2^64, as any seed arithmetic
      *budget += token_budget(r.opt, r.prompt.size(), max_ctx);
      jobs->push_back(Job{p.index, k});
      requests.push_back(std::move(r));
    }
  }
  return requests;
}

}  // namespace

int run_batch(const BatchContext& ctx, const std::vector<PromptSpec>& prompts, BatchOutput* output) {
  const Options& opt = ctx.opt;
  const int max_ctx = effective_context(ctx.backend.config(), opt.gen.max_ctx);
  Emitter out(ctx, output);
  int failed = output ? output->failed_before() : 0;
  const int skipped = output ? output->done_count() : 0;
  long budget = 0;
  std::vector<Job> jobs;
  const std::vector<Request> requests = make_requests(ctx, prompts, output, out, &failed, &budget, &jobs);
  Progress progress(int(requests.size()), budget);
  int finished = 0;
  long reused = 0, computed = 0;  // prompt tokens over the run
  RunCallbacks cb;
  cb.on_done = [&](int index, GenResult&& r) {
    reused += r.timing.cached_tokens;
    computed += r.timing.prefill_tokens;
    if (r.finish_reason == "interrupted") return;  // not written: --resume runs it again
    r.timing.load_ms = ctx.load_ms;
    const Job& job = jobs[size_t(index)];
    const PromptSpec& p = prompts[size_t(job.prompt)];
    out.result(p, r, requests[size_t(index)].opt.seed, job.sample);
    ++finished;
    const long asked = token_budget(requests[size_t(index)].opt, r.prompt_tokens.size(), max_ctx);
    progress.finished(std::max(0L, asked - long(r.tokens.size())));
  };
  cb.on_step = [&](const StepInfo& s) {
    progress.step(s.batch);
    if (ctx.trace) ctx.trace->row(opt.gen.use_cache, s);
  };
  std::unique_ptr<PrefixCache> prefix;
  if (opt.prefix_cache && opt.gen.use_cache) {
    const size_t mb = size_t(opt.prefix_cache_mb);
    prefix = std::make_unique<PrefixCache>(ctx.backend,
                                           opt.prefix_cache_mb >= 0 ? mb << 20 : PrefixCache::default_budget(ctx.backend));
  }
  ctx.generator.set_prefix_cache(prefix.get());
  const auto t0 = Clock::now();
  install_sigint();
  ctx.generator.run(requests, opt.gen, opt.batch_size, cb);
  restore_sigint();
  ctx.generator.set_prefix_cache(nullptr);
  const double secs = seconds_since(t0);
  progress.clear();
  out.drain();
  if (ctx.trace) ctx.trace->close();
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "[gen] %d prompts finished, %d failed, %d already in the output; %ld tokens in %.2f s = %.1f tok/s "
                "(batch size %d, %s, device %s, load %.0f ms)\n",
                finished, failed, skipped, progress.tokens(), secs, secs > 0 ? progress.tokens() / secs : 0.0,
                opt.batch_size, opt.gen.use_cache ? "KV cache" : "no cache", ctx.device.c_str(), ctx.load_ms);
  std::cerr << buf;
  std::cerr << "[gen] prompt tokens: " << reused << " reused, " << computed << " computed"
            << (prefix ? " (prefix cache " + human_bytes(double(prefix->bytes())) + " of " +
                             human_bytes(double(prefix->budget_bytes())) + ", " + std::to_string(prefix->blocks()) +
                             " blocks of " + std::to_string(PrefixCache::kBlock) + " tokens)"
                       : std::string(opt.gen.use_cache ? " (prefix cache off)" : ""))
            << "\n";
  if (g_interrupted) {
    std::cerr << "[gen] interrupted: " << int(requests.size()) - finished << " prompts not finished"
              << (output ? "; run the same command with --resume to finish them" : "") << "\n";
    return int(ExitCode::interrupted);
  }
  return failed > 0 ? int(ExitCode::some_failed) : 0;
}

}  // namespace gen
