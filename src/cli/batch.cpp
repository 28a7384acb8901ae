#include "cli/batch.h"

#include <fcntl.h>
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
#include "gen/error.h"
#include "cli/output.h"

namespace gen {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// The lines a previous run wrote: each a JSON object whose index and prompt match the prompts file.
void check_resumed_line(const std::string& line, int line_no, const std::string& path,
                        const std::vector<PromptSpec>& prompts, std::set<int>* done, int* failed) {
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
  if (p.error.empty() && (!j.contains("prompt") || j["prompt"] != p.text)) {
    throw InputError("index " + std::to_string(i) + " holds a different prompt than the prompts file; not the same run",
                     where);
  }
  if (done->insert(int(i)).second && j.contains("error")) ++*failed;
}

}  // namespace

BatchOutput::BatchOutput(const std::string& path, bool resume, const std::vector<PromptSpec>& prompts) : path_(path) {
  struct stat st {};
  const bool exists = ::stat(path.c_str(), &st) == 0;
  if (exists && st.st_size > 0 && !resume) {
    throw InputError("the output file exists and is not empty; pass --resume to continue it, or remove it", path);
  }
  if (exists && resume) {
    std::string content = read_all(path);
    const size_t last_newline = content.rfind('\n');
    const size_t keep = last_newline == std::string::npos ? 0 : last_newline + 1;
    if (keep < content.size()) {  // a line cut by a kill: drop it, its prompt runs again
      if (::truncate(path.c_str(), off_t(keep)) != 0) {
        throw Error(std::string("cannot cut the partial last line: ") + std::strerror(errno) + " (" + path + ")");
      }
      std::cerr << "[gen] " << path << ": dropped a partial last line (" << content.size() - keep << " bytes)\n";
      content.resize(keep);
    }
    size_t pos = 0;
    for (int line_no = 1; pos < content.size(); ++line_no) {
      const size_t end = content.find('\n', pos);
      check_resumed_line(content.substr(pos, end - pos), line_no, path, prompts, &done_, &failed_before_);
      pos = end + 1;
    }
  }
  fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw InputError(std::string("cannot write the output file: ") + std::strerror(errno), path);
}

BatchOutput::~BatchOutput() {
  if (fd_ >= 0) ::close(fd_);
}

void BatchOutput::write_line(int index, const std::string& line) {
  const std::string buf = line + "\n";  // one write: a line lands whole or (killed) is cut and dropped on resume
  size_t off = 0;
  while (off < buf.size()) {
    const ssize_t n = ::write(fd_, buf.data() + off, buf.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Error(std::string("writing the output file failed: ") + std::strerror(errno) + " (" + path_ + ")");
    off += size_t(n);
  }
  done_.insert(index);
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
  return o;
}

// Where finished prompts go: appended to --output as they finish, or to stdout in input order
// (DESIGN.md section 3), each printed as soon as every earlier prompt is out.
class Emitter {
 public:
  Emitter(const BatchContext& ctx, BatchOutput* file) : ctx_(ctx), file_(file) {}
  void result(const PromptSpec& p, const GenResult& r) {
    if (file_ || ctx_.opt.json) {
      put_json(p.index, result_json(RunInfo{p.index, p.text, ctx_.device, ctx_.backend.dtype(), ctx_.opt.gen.use_cache, ""}, r));
    } else {
      put_stdout(p.index, p.text + r.text + "\n\n");
    }
  }
  void error(const PromptSpec& p, const std::string& msg) {
    if (file_ || ctx_.opt.json) {
      put_json(p.index, json_line(json{{"index", p.index}, {"line", p.line}, {"prompt", p.text}, {"error", msg}}));
    } else {
      std::cerr << "[gen] prompt " << p.index << " (line " << p.line << ") failed: " << msg << "\n";
      put_stdout(p.index, "");
    }
  }
  // After an interruption: what finished is printed even where an earlier prompt never will be.
  void drain() {
    for (auto& [i, s] : pending_) std::cout << s;
    pending_.clear();
    std::cout << std::flush;
  }

 private:
  void put_json(int index, const std::string& line) {
    if (file_) {
      file_->write_line(index, line);
    } else {
      put_stdout(index, line + "\n");
    }
  }
  void put_stdout(int index, std::string text) {
    pending_[index] = std::move(text);
    while (!pending_.empty() && pending_.begin()->first == next_) {
      std::cout << pending_.begin()->second;
      pending_.erase(pending_.begin());
      ++next_;
    }
    std::cout << std::flush;
  }
  const BatchContext& ctx_;
  BatchOutput* file_;
  std::map<int, std::string> pending_;
  int next_ = 0;  // stdout mode runs every prompt, so indices 0.. come in turn
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
                                   BatchOutput* output, Emitter& out, int* failed, long* budget) {
  const int max_ctx = effective_context(ctx.backend.config(), ctx.opt.gen.max_ctx);
  std::vector<Request> requests;
  for (const PromptSpec& p : prompts) {
    if (output && output->done(p.index)) continue;
    std::string err = p.error;
    Request r{p.index, {}, request_options(ctx.opt.gen, p)};
    if (err.empty()) {
      try {
        r.prompt = ctx.generator.encode_prompt(p.text, max_ctx);
      } catch (const InputError& e) {
        err = e.what();
      }
    }
    if (!err.empty()) {
      out.error(p, err);
      ++*failed;
      continue;
    }
    *budget += token_budget(r.opt, r.prompt.size(), max_ctx);
    requests.push_back(std::move(r));
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
  const std::vector<Request> requests = make_requests(ctx, prompts, output, out, &failed, &budget);
  Progress progress(int(requests.size()), budget);
  int finished = 0;
  RunCallbacks cb;
  cb.on_done = [&](int index, GenResult&& r) {
    if (r.finish_reason == "interrupted") return;  // not written: --resume runs it again
    r.timing.load_ms = ctx.load_ms;
    const PromptSpec& p = prompts[size_t(index)];
    out.result(p, r);
    ++finished;
    const long asked = token_budget(request_options(opt.gen, p), r.prompt_tokens.size(), max_ctx);
    progress.finished(std::max(0L, asked - long(r.tokens.size())));
  };
  cb.on_step = [&](const StepInfo& s) {
    progress.step(s.batch);
    if (ctx.trace) ctx.trace->row(opt.gen.use_cache, s);
  };
  const auto t0 = Clock::now();
  install_sigint();
  ctx.generator.run(requests, opt.gen, opt.batch_size, cb);
  restore_sigint();
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
  if (g_interrupted) {
    std::cerr << "[gen] interrupted: " << int(requests.size()) - finished << " prompts not finished"
              << (output ? "; run the same command with --resume to finish them" : "") << "\n";
    return int(ExitCode::interrupted);
  }
  return failed > 0 ? int(ExitCode::some_failed) : 0;
}

}  // namespace gen
