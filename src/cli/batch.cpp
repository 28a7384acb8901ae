#include "cli/batch.h"

#include <unistd.h>

#include <chrono>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "gen/device.h"
#include "gen/error.h"
#include "gen/prefix_cache.h"
#include "cli/output.h"
#include "cli/stdout_writer.h"

namespace gen {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }


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
    const int key = key_of(p) + sample;
    if (file_ || ctx_.opt.json) {
      RunInfo info{p.index, p.text, ctx_.device, ctx_.backend.dtype(), ctx_.opt.gen.use_cache, "", seed, -1, ctx_.run, ctx_.opt.samples};
      if (ctx_.opt.samples > 1) info.sample = sample;
      put_json(key, p.index, sample, result_json(info, r));
    } else {
      put_stdout(key, p.text + r.text + "\n\n");
    }
  }
  void error(const PromptSpec& p, const std::string& msg) {
    const int key = key_of(p);  // one error line for all of the prompt's samples
    next_skip_.insert(key);
    if (file_ || ctx_.opt.json) {
      json j{{"index", p.index}, {"line", p.line}, {"prompt", prompt_prefix(p.text)}, {"error", msg}};
      if (!ctx_.run.empty()) j["run"] = ctx_.run;
      put_json(key, p.index, -1, json_line(j));
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
  // The stdout order of a prompt's first sample: its position in the shard x samples.
  int key_of(const PromptSpec& p) const { return int(ctx_.shard.position(p.index)) * ctx_.opt.samples; }
  // key: the stdout order (key_of + sample); sample -1: the prompt's error line.
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
  std::map<int, std::string> pending_;  // by key: position in the shard x samples + sample
  std::set<int> next_skip_;              // keys of error lines
  int next_ = 0;  // stdout mode runs every prompt of the shard, so keys 0.. come in turn
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
    if (!ctx.shard.contains(p.index)) continue;
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

std::string batch_run_id(const Options& opt, const std::string& prompts_bytes, const std::string& model_dir,
                         const ModelConfig& cfg, const std::string& dtype) {
  const GenOptions& g = opt.gen;
  const json settings = {
      {"kind", "generate"},
      {"dtype", dtype},
      {"ctx", effective_context(cfg, g.max_ctx)},
      {"max_new_tokens", g.max_new_tokens},
      {"temperature", g.sampling.temperature},
      {"top_k", g.sampling.top_k},
      {"top_p", g.sampling.top_p},
      {"seed", opt.seed_given ? json(g.seed) : json("random")},
      {"stop", g.stop_strings},
      {"ignore_eos", g.ignore_eos},
      {"samples", opt.samples},
  };
  return run_id(prompts_bytes, model_dir, cfg, settings);
}

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
                "[gen] %d prompts finished, %d failed, %d already in the output; %ld tokens in %.3f s = %.1f tok/s "
                "(batch size %d, %s, device %s, load %.0f ms)\n",
                finished, failed, skipped, progress.tokens(), secs, secs > 0 ? progress.tokens() / secs : 0.0,
                opt.batch_size, opt.gen.use_cache ? "KV cache" : "no cache", ctx.device.c_str(), ctx.load_ms);
  std::cerr << buf;
  if (ctx.shard.n > 1) {
    std::cerr << "[gen] shard " << ctx.shard.str() << ": " << ctx.shard.count(long(prompts.size())) << " of "
              << prompts.size() << " prompts (index % " << ctx.shard.n << " == " << ctx.shard.k << "), run "
              << ctx.run << "\n";
  }
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
