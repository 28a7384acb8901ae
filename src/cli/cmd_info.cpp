// gen info: a calculator for a model's memory (parameters, weights per dtype, KV cache per token,
// sequence and batch) and whether this machine's GPU and RAM hold it. Reads only config.json.
#include <CLI/CLI.hpp>
#include <climits>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "gen/error.h"
#include "cli/info.h"
#include "cli/stdout_writer.h"

namespace gen {

int run_info(int argc, char** argv) {
  std::string model = "models/gpt2";
  int ctx = 0, batch = 1;
  std::string dtype = "fp16";  // the CUDA backend's default
  bool json = false;
  CLI::App app{"gen info: parameters, weight and KV-cache bytes of a model, and whether they fit here",
               "gen info"};
  app.option_defaults()->always_capture_default();
  app.add_option("--model", model, "model directory (its config.json), or gpt2 | gpt2-medium | gpt2-large | gpt2-xl");
  auto* ctx_opt = app.add_option("--ctx", ctx, "context per sequence (default: the model's n_positions)")
                      ->transform(decimal("--ctx", 1, INT_MAX));
  app.add_option("--batch-size,--batch", batch, "sequences in the batch")->transform(decimal("--batch-size", 1, INT_MAX));
  app.add_option("--dtype", dtype, "KV cache and GPU weight dtype: fp32 | fp16 | bf16 (fp32 is shown too)");
  app.add_flag("--json", json, "one JSON object on stdout");
  std::string help;
  if (parse_cli(app, argc, argv, "gen info", &help) == Parsed::help) {
    write_stdout(help);
    return 0;
  }
  ModelSource src = find_model_source(model);
  // An explicit --ctx 0 stays 0 so that make_info_report refuses it; it also checks --batch and
  // --dtype, before any GPU is woken.
  const int T = ctx_opt->count() > 0 ? ctx : src.cfg.n_positions;
  InfoReport report = make_info_report(std::move(src), T, batch, dtype);
  check_fit(report, gpu_memory(), host_memory_available());
  write_stdout(json ? info_json(report) + "\n" : info_text(report));
  return 0;
}

}  // namespace gen
