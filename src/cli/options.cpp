#include "cli/options.h"

#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/cli_common.h"
#include "gen/error.h"
#include "gen/prompts.h"

namespace gen {

namespace {

void validate(const Options& o) {
  if (!o.prompt && !o.prompt_file && !o.prompts_file) {
    throw InputError("a prompt is required: gen \"TEXT\", --prompt, --prompt-file or --prompts-file", "usage");
  }
  if (o.resume && o.output.empty()) throw InputError("--resume needs --output FILE", "--resume");
  if (!o.output.empty() && !o.prompts_file) throw InputError("--output goes with --prompts-file", "--output");
  if (!o.shard.empty() && !o.prompts_file) throw InputError("--shard goes with --prompts-file", "--shard");
  if (o.compare && o.prompts_file) throw InputError("--compare takes one prompt, not --prompts-file", "--compare");
  if (o.compare && o.samples > 1) throw InputError("--compare runs one sample, not --samples", "--compare");
  if (!o.prompt_cache.empty()) {
    const char* other = o.prompts_file ? "--prompts-file (its prompts share prefixes through the prefix cache)"
                        : o.samples > 1 ? "--samples"
                        : o.compare     ? "--compare"
                        : !o.gen.use_cache ? "--no-cache (there is no K/V to keep)"
                                           : nullptr;
    if (other) throw InputError(std::string("--prompt-cache takes a single prompt with the KV cache, not ") + other, "--prompt-cache");
  }
  for (const auto& s : o.gen.stop_strings) {
    if (s.empty()) throw InputError("--stop needs a non-empty string", "--stop");
    require_utf8(s, "--stop");
  }
}

}  // namespace

Options parse_options(int argc, const char* const* argv) {
  Options o;
  std::string positional;
  std::optional<uint64_t> seed;
  CLI::App app{"gen: GPT-2 text generation with a KV cache (CPU and CUDA)", "gen"};
  app.option_defaults()->always_capture_default();
  app.set_version_flag("--version", "gen 0.1.0");
  app.add_option("--model", o.model, "model directory, or gpt2 | gpt2-medium | gpt2-large | gpt2-xl (models/NAME)");
  app.footer(
      "Commands:\n"
      "  gen chat         a conversation on stdin, the KV cache kept across turns\n"
      "  gen perplexity   perplexity of a text file\n"
      "  gen info         memory a model needs (weights, KV cache) and whether it fits\n"
      "  gen serve        an OpenAI-compatible completions server (HTTP, continuous batching)\n"
      "  gen merge        the --output files of a sharded run (--shard K/N) as one, in index order\n"
      "  gen help CMD     a command's options (also: gen CMD --help)");
  auto* p = app.add_option("-p,--prompt", o.prompt, "prompt text");
  auto* pos = app.add_option("TEXT", positional, "prompt text (as --prompt): gen \"TEXT\"");
  auto* pf = app.add_option("--prompt-file", o.prompt_file, "read the prompt from FILE ('-': stdin)");
  auto* pm = app.add_option("--prompts-file", o.prompts_file,
                            "many prompts: one per line, or .jsonl {\"prompt\": ...} objects");
  p->excludes(pf);
  p->excludes(pm);
  pos->excludes(p);
  pos->excludes(pf);
  pos->excludes(pm);
  pf->excludes(pm);
  app.add_option("--batch-size", o.batch_size, "prompts decoded together (continuous batching)")
      ->transform(decimal("--batch-size", 1, 4096));
  app.add_option("--samples", o.samples, "completions per prompt, each with its own seed (seed + k)")
      ->transform(decimal("--samples", 1, limits::max_samples));
  app.add_option("--output", o.output, "append each finished prompt's JSON line to FILE");
  app.add_flag("--resume", o.resume, "skip the prompts whose index is already in --output");
  app.add_option("--shard", o.shard,
                 "K/N: only the prompts whose index i has i % N == K (indices stay global; gen merge joins the "
                 "shards); slurm: K and N from the Slurm array job");
  auto* cmp = app.add_flag("--compare", o.compare, "run with and without the KV cache and compare");
  app.add_option("--trace", o.trace, "write one CSV row per step (mode,step,context,batch,step_ms)");
  app.add_option("--stop", o.gen.stop_strings, "stop when the generated text contains STR (repeatable)")
      ->allow_extra_args(false);
  add_sampling_flags(app, &o.gen, 0);
  app.add_option("--seed", seed, "sampling seed, 0..2^64-1 (default: a random one, reported)")
      ->transform(decimal_u64("--seed"));
  auto* uc = app.add_flag("--use-cache", o.gen.use_cache, "use the KV cache (default)");
  auto* nc = app.add_flag("!--no-cache", o.gen.use_cache, "recompute the whole sequence every step");
  uc->excludes(nc);
  cmp->excludes(uc);  // --compare runs both modes itself
  cmp->excludes(nc);
  app.add_flag("--ignore-eos", o.gen.ignore_eos, "do not stop at <|endoftext|>");
  auto* npc = app.add_flag("!--no-prefix-cache", o.prefix_cache,
                           "do not share the K/V of common prompt prefixes among the prompts of a batch");
  app.add_option("--prefix-cache-mb", o.prefix_cache_mb,
                 "memory for shared prompt prefixes, MiB (default: a quarter of the free memory)")
      ->transform(decimal("--prefix-cache-mb", 0, 1 << 24))
      ->default_str("auto")
      ->excludes(npc);
  app.add_option("--prompt-cache", o.prompt_cache,
                 "reuse the prompt's K/V saved in FILE (the longest common prefix), then save this prompt's");
  app.add_option("--ctx", o.gen.max_ctx, "context length for the KV cache (0: n_positions)")
      ->transform(decimal("--ctx", 0, limits::max_ctx));
  add_device_flags(app, &o.device, &o.dtype, &o.threads);
  app.add_flag("--json", o.json, "one JSON object per prompt on stdout");
  switch (parse_cli(app, argc, argv, "gen", &o.help_text)) {
    case Parsed::help:
      o.help = true;
      return o;
    case Parsed::version:
      o.version = true;
      return o;
    case Parsed::run:
      break;
  }
  if (!positional.empty()) o.prompt = positional;
  o.gen.seed = seed ? *seed : random_seed();
  o.seed_given = seed.has_value();
  validate(o);
  return o;
}

std::string read_prompt(const Options& opt) {
  std::string text;
  if (opt.prompt) {
    text = *opt.prompt;
  } else if (*opt.prompt_file == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    text = read_user_file(*opt.prompt_file, "prompt file");
  }
  if (opt.prompt_file) {
    // Editors end files with a newline that is not part of the prompt (llama.cpp drops it too).
    if (!text.empty() && text.back() == '\n') text.pop_back();
    if (!text.empty() && text.back() == '\r') text.pop_back();
  }
  long bad = utf8_error_offset(text);
  if (bad >= 0) {
    throw InputError("invalid UTF-8 in prompt at byte " + std::to_string(bad),
                     opt.prompt ? "--prompt" : *opt.prompt_file);
  }
  return text;
}

}  // namespace gen
