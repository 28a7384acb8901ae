// gen perplexity --model DIR|NAME --file TEXT [--ctx N] [--json] [--device D] [--dtype T] [--threads N]
// (many files: --file-list LIST, --shard K/N, --output FILE [--resume]; cli/perplexity_cli.h)
// Every input is checked before the result is computed; the result is printed whole or not at all.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/cli_common.h"
#include "gen/prompts.h"
#include "cli/commands.h"
#include "cli/perplexity_cli.h"
#include "cli/stdout_writer.h"
#include "gen/error.h"
#include "gen/device.h"
#include "gen/model.h"
#include "gen/perplexity.h"
#include "gen/prompts.h"

namespace gen {

namespace {

PplOptions parse(int argc, char** argv) {
  PplOptions o;
  CLI::App app{"gen perplexity: perplexity of a text file, in non-overlapping windows of --ctx tokens",
               "gen perplexity"};
  app.add_option("--model", o.model,
                 "model directory, or gpt2 | gpt2-medium | gpt2-large | gpt2-xl (models/NAME)")
      ->capture_default_str();
  app.add_option("--file", o.files, "UTF-8 text to score (repeatable: one JSON line per file)");
  app.add_option("--file-list", o.file_list, "a file naming the texts to score, one path a line");
  app.add_option("--shard", o.shard, "K/N: only the files whose index i has i % N == K; slurm: from the array job");
  app.add_option("--output", o.output, "append each file's JSON line to FILE");
  app.add_flag("--resume", o.resume, "skip the files whose index is already in --output");
  auto* ctx =
      app.add_option("--ctx,--context", o.context, "window length in tokens, 2..n_positions (default n_positions)")
          ->transform(decimal("--ctx", 2, limits::max_ctx));
  add_device_flags(app, &o.device, &o.dtype, &o.threads);
  app.add_flag("--json", o.json, R"(one line {"ppl", "nll", "tokens_scored", "windows", ...} on stdout)");
  if (parse_cli(app, argc, argv, "gen perplexity", &o.help_text) == Parsed::help) {
    o.help = true;
    return o;
  }
  o.context_given = ctx->count() > 0;  // its upper bound, n_positions, needs the model's config
  if (o.files.empty() && o.file_list.empty()) throw InputError("--file or --file-list is required", "gen perplexity");
  if (o.resume && o.output.empty()) throw InputError("--resume needs --output FILE", "--resume");
  return o;
}

}  // namespace

std::string read_ppl_text(const std::string& path) {
  const std::string text = read_user_file(path, "file");
  if (text.empty()) throw InputError("the file is empty", path);
  require_utf8(text, path);
  return text;
}

int ppl_context(const PplOptions& opt, const ModelConfig& cfg) {
  const int n_pos = cfg.n_positions;
  const int context = opt.context_given ? opt.context : n_pos;
  if (context > n_pos) {
    throw InputError("--ctx " + std::to_string(context) + " is out of range: must be in 2.." + std::to_string(n_pos) +
                         " (the model's n_positions)",
                     "--ctx");
  }
  return context;
}

std::vector<int> ppl_tokens(const Tokenizer& tokenizer, const std::string& text, const std::string& path) {
  std::vector<int> tokens = tokenizer.encode(text);
  if (tokens.size() < 2) {
    throw InputError("the text is " + std::to_string(tokens.size()) + " token: at least 2 are needed", path);
  }
  return tokens;
}

nlohmann::json ppl_json(const PerplexityResult& r, size_t tokens, int context, const std::string& device, double secs) {
  const double run_tokens = double(r.tokens_scored + r.windows);  // every token of every window
  return {{"ppl", r.ppl()},
          {"nll", r.nll()},
          {"tokens_scored", r.tokens_scored},
          {"windows", r.windows},
          {"tokens", tokens},
          {"context", context},
          {"device", device},
          {"tokens_per_s", secs > 0 ? run_tokens / secs : 0.0}};
}

namespace {

std::string result_text(const PerplexityResult& r, size_t tokens, int context, const std::string& device, double secs,
                        bool json) {
  const nlohmann::json j = ppl_json(r, tokens, context, device, secs);
  if (json) return j.dump() + "\n";
  const double tokens_per_s = j["tokens_per_s"].get<double>();
  // One "key value" pair a line: readable, and still easy to parse.
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "ppl %.6f\nnll %.6f\ntokens_scored %ld\nwindows %d\ntokens %zu\ncontext %d\ndevice %s\n"
                "tokens_per_s %.1f\n",
                r.ppl(), r.nll(), r.tokens_scored, r.windows, tokens, context, device.c_str(), tokens_per_s);
  return buf;
}

}  // namespace

int run_perplexity(int argc, char** argv) {
  using Clock = std::chrono::steady_clock;
  const PplOptions opt = parse(argc, argv);
  if (opt.help) {
    write_stdout(opt.help_text);
    return 0;
  }
  if (opt.list_mode()) return run_perplexity_list(opt);
  const std::string text = read_ppl_text(opt.files[0]);
  std::string note;
  const Device device = choose_device(opt.device, &note, opt.dtype);  // before the slow load
  Model model = load_model(resolve_model_dir(opt.model));
  const int context = ppl_context(opt, model.cfg);
  const std::vector<int> tokens = ppl_tokens(*model.tokenizer, text, opt.files[0]);
  auto backend = make_backend(device, model.weights, opt.threads, opt.dtype);
  if (!note.empty()) std::cerr << note << "\n";  // after every input check: an error stays one line

  install_sigint();
  const auto t0 = Clock::now();
  const PerplexityResult res = perplexity(*backend, tokens, context, &g_interrupted);
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  restore_sigint();
  if (res.interrupted) {
    std::cerr << "interrupted: scored " << res.windows << " of " << res.windows_planned << " windows ("
              << res.tokens_scored << " tokens); no result\n";
    return int(ExitCode::interrupted);
  }
  write_stdout(result_text(res, tokens.size(), context, device_name(device), secs, opt.json));
  return 0;
}

}  // namespace gen
