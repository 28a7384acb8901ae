// gen: the command-line program. Library code throws; only this file (and the subcommands) print
// errors and exit.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <new>
#include <optional>

#include "cli/batch.h"
#include "cli/cli_common.h"
#include "cli/commands.h"
#include "cli/merge.h"
#include "gen/error.h"
#include "gen/device.h"
#include "gen/model.h"
#include "cli/options.h"
#include "cli/output.h"
#include "cli/prompt_cache.h"
#include "cli/report.h"
#include "cli/stdout_writer.h"
#include "serve/cmd_serve.h"

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

int exit_code(const gen::GenResult& r) {
  return r.finish_reason == "interrupted" ? int(gen::ExitCode::interrupted) : 0;
}

// Streamed text mode: the prompt now, then each piece of generated text as it comes.
gen::TextCallback echo_and_stream(const std::string& prompt) {
  gen::write_stdout(prompt);
  return [](const std::string& s) { gen::write_stdout(s); };
}

// A single run's --prompt-cache: the file and the session it was loaded into.
struct CacheFile {
  gen::PromptCache& file;
  gen::Session& session;
  gen::Backend& backend;
};

// One prompt, text streamed to stdout (or one JSON line), the summary on stderr.
int run_single(const gen::Options& opt, gen::Generator& generator, const std::vector<int>& ids,
               const std::string& prompt, const gen::RunInfo& info, double load_ms, gen::TraceWriter* trace,
               const CacheFile* cache) {
  const gen::TextCallback stream = opt.json ? gen::TextCallback() : echo_and_stream(prompt);
  std::function<void(const gen::StepInfo&)> on_step;
  if (trace) on_step = [&](const gen::StepInfo& s) { trace->row(opt.gen.use_cache, s); };
  gen::GenResult res = generator.generate(ids, opt.gen, stream, cache ? &cache->session : nullptr, on_step);
  res.timing.load_ms = load_ms;
  if (cache) {
    gen::Timing& t = res.timing;
    t.prompt_cache_ms = cache->file.load_ms();
    t.ttft_ms += t.prompt_cache_ms;
    t.total_ms += t.prompt_cache_ms;
    cache->file.save(cache->backend, ids, cache->session);  // before any result is printed: a failed save is exit 1
  }
  if (trace) trace->close();
  if (opt.json) {
    gen::write_stdout(gen::result_json(info, res) + "\n");
  } else {
    gen::write_stdout("\n");
    std::cerr << gen::timing_summary(info, res) << (cache ? cache->file.summary() : "");
  }
  return exit_code(res);
}

// --compare: the same prompt with the cache, then without; one table (or one JSON object). After a
// Ctrl-C it prints what it has: the cut run (and one never started) with finish "interrupted", exit 130.
int run_compare(const gen::Options& opt, gen::Generator& generator, const std::vector<int>& ids,
                const std::string& prompt, const std::string& device, const std::string& dtype,
                gen::TraceWriter* trace) {
  gen::CompareRun runs[2];
  bool cut = false;
  for (int i = 0; i < 2 && !cut; ++i) {
    gen::GenOptions o = opt.gen;
    o.use_cache = i == 0;
    auto on_step = [&](const gen::StepInfo& s) {
      runs[i].step_ms.push_back(s.ms);
      if (trace) trace->row(o.use_cache, s);
    };
    const gen::TextCallback stream = !opt.json && i == 0 ? echo_and_stream(prompt) : gen::TextCallback();
    if (!opt.json) std::cerr << "[gen] --compare: running " << (o.use_cache ? "with" : "without") << " the KV cache\n";
    runs[i].result = generator.generate(ids, o, stream, nullptr, on_step);
    if (i == 0 && !opt.json) gen::write_stdout("\n");
    cut = runs[i].result.finish_reason == "interrupted";
  }
  if (runs[1].result.finish_reason.empty()) {  // cut during the first run: the second never began
    runs[1].result.prompt_tokens = ids;
    runs[1].result.finish_reason = "interrupted";
  }
  if (trace) trace->close();
  if (opt.json) {
    gen::write_stdout(gen::compare_json(runs[0], runs[1], prompt, device, dtype, opt.gen.seed) + "\n");
  } else {
    gen::write_stdout("\n" + gen::compare_table(runs[0], runs[1], device));
  }
  return cut ? int(gen::ExitCode::interrupted) : 0;
}

// The subcommands by name (argv from the command's name on); nullptr for any other word.
using Command = int (*)(int, char**);
Command find_command(const std::string& name) {
  if (name == "perplexity") return gen::run_perplexity;
  if (name == "info") return gen::run_info;
  if (name == "chat") return gen::run_chat;
  if (name == "serve") return gen::run_serve;
  if (name == "merge") return gen::run_merge;
  return nullptr;
}

int run(int argc, char** argv) {
  if (argc > 1) {
    const std::string cmd = argv[1];
    if (Command command = find_command(cmd)) return command(argc - 1, argv + 1);
    if (cmd == "help" && argc > 2) {  // gen help CMD: CMD's own --help
      Command command = find_command(argv[2]);
      if (!command) {
        throw gen::InputError("unknown command '" + std::string(argv[2]) + "' (chat, perplexity, info, serve, merge)", "gen help");
      }
      char help_flag[] = "--help";
      char* sub_argv[] = {argv[2], help_flag, nullptr};
      return command(2, sub_argv);
    }
    if (cmd == "help") {
      char help_flag[] = "--help";
      char* main_argv[] = {argv[0], help_flag, nullptr};
      return run(2, main_argv);
    }
  }
  gen::Options opt = gen::parse_options(argc, argv);
  if (opt.help) {
    gen::write_stdout(opt.help_text);
    return 0;
  }
  if (opt.version) {
    gen::write_stdout("gen 0.1.0\n");
    return 0;
  }
  std::string note;
  const gen::Device device = gen::choose_device(opt.device, &note, opt.dtype);  // before the slow load
  // Every input that can be checked before the slow load is checked first.
  std::vector<gen::PromptSpec> prompts;
  std::string prompt, prompts_bytes;
  const gen::Shard shard = opt.shard.empty() ? gen::Shard{} : gen::parse_shard(opt.shard);
  if (opt.prompts_file) {
    prompts = gen::read_prompts_file(*opt.prompts_file, &prompts_bytes);
  } else {
    prompt = gen::read_prompt(opt);
  }
  if (!opt.prompts_file && opt.samples > 1) {  // K completions of one prompt: a batch of one prompt
    gen::PromptSpec p;
    p.line = 1;
    p.text = prompt;
    prompts.push_back(std::move(p));
    prompts_bytes = prompt;
  }
  const bool batch = !prompts.empty();
  const std::string more_threads = gen::threads_note(opt.threads);
  if (!more_threads.empty()) note += (note.empty() ? "" : "\n") + more_threads;
  std::unique_ptr<gen::BatchOutput> output;
  if (!opt.output.empty()) output = std::make_unique<gen::BatchOutput>(opt.output, opt.resume, prompts, shard);
  std::unique_ptr<gen::TraceWriter> trace;
  if (!opt.trace.empty()) trace = std::make_unique<gen::TraceWriter>(opt.trace);
  std::unique_ptr<gen::PromptCache> prompt_cache;
  if (!opt.prompt_cache.empty()) prompt_cache = std::make_unique<gen::PromptCache>(opt.prompt_cache);

  const auto t0 = Clock::now();
  gen::Model model = gen::load_model(gen::resolve_model_dir(opt.model));
  auto backend = gen::make_backend(device, model.weights, opt.threads, opt.dtype);
  const double load_ms = ms_since(t0);
  gen::Generator generator(*backend, *model.tokenizer);
  opt.gen.stop = &gen::g_interrupted;
  if (batch) {
    // The fingerprint hashes the model's bytes (cached beside it): only for the JSON lines that carry it.
    const bool lines = output || opt.json;
    gen::BatchContext ctx{opt, generator, *model.tokenizer, *backend, gen::device_name(device), load_ms, trace.get(), shard,
                          lines ? gen::batch_run_id(opt, prompts_bytes, model.dir, model.cfg, backend->dtype()) : ""};
    if (output) output->check_run(ctx.run);
    if (!note.empty()) std::cerr << note << "\n";
    const int rc = gen::run_batch(ctx, prompts, output.get());
    if (output) output->close();  // a write lost at close() is still an error, exit 1
    return rc;
  }
  const int ctx = gen::effective_context(model.cfg, opt.gen.max_ctx);
  const std::vector<int> ids = generator.encode_prompt(prompt, ctx);
  gen::Session session;
  std::optional<CacheFile> cache_file;
  if (prompt_cache) {
    session = prompt_cache->load(*backend, model.dir, model.cfg, ids, ctx);
    cache_file.emplace(CacheFile{*prompt_cache, session, *backend});
  }
  if (!note.empty()) std::cerr << note << "\n";  // after every input check: an error stays one line
  gen::install_sigint();
  const int rc = opt.compare ? run_compare(opt, generator, ids, prompt, gen::device_name(device), backend->dtype(), trace.get())
                             : run_single(opt, generator, ids, prompt,
                                          gen::RunInfo{0, prompt, gen::device_name(device), backend->dtype(), opt.gen.use_cache,
                                                       backend->memory_summary(), opt.gen.seed, -1, "", 1},
                                          load_ms, trace.get(), cache_file ? &*cache_file : nullptr);
  gen::restore_sigint();
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    gen::guard_standard_fds();  // before any file is opened
    gen::set_cpu_threads(0);  // before any parallel region; --threads sets it again for the run
    return run(argc, argv);
  } catch (const gen::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return int(e.code());
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
