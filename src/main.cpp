// gen: the command-line program. Library code throws; only this file prints errors and exits.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <new>

#include "gen/commands.h"
#include "gen/error.h"
#include "gen/model.h"
#include "gen/options.h"
#include "gen/output.h"

namespace {

int run(int argc, char** argv) {
  using Clock = std::chrono::steady_clock;
  if (argc > 1) {
    const std::string cmd = argv[1];
    if (cmd == "perplexity") return gen::run_perplexity(argc - 1, argv + 1);
    if (cmd == "info") return gen::run_info(argc - 1, argv + 1);
    if (cmd == "chat") return gen::run_chat(argc - 1, argv + 1);
  }
  gen::Options opt = gen::parse_options(argc, argv);
  if (opt.help) {
    std::cout << opt.help_text;
    return 0;
  }
  if (opt.version) {
    std::cout << "gen 0.1.0\n";
    return 0;
  }
  std::string note;
  const gen::Device device = gen::choose_device(opt.device, &note);
  if (device == gen::Device::cpu && !opt.dtype.empty() && opt.dtype != "fp32") {  // before the slow load
    throw gen::InputError("--dtype " + opt.dtype + " is not supported on the CPU (it computes in fp32)", "--dtype");
  }
  const std::string prompt = gen::read_prompt(opt);
  const auto t0 = Clock::now();
  gen::Model model = gen::load_model(gen::resolve_model_dir(opt.model));
  auto backend = gen::make_backend(device, model.weights, opt.threads, opt.dtype);
  const double load_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();

  gen::Generator generator(*backend, *model.tokenizer);
  const int ctx = gen::effective_context(model.cfg, opt.gen.max_ctx);
  const std::vector<int> ids = generator.encode_prompt(prompt, ctx);
  if (!note.empty()) std::cerr << note << "\n";  // after every input check: an error stays one line
  gen::TextCallback stream;
  if (!opt.json) {
    std::cout << prompt << std::flush;
    stream = [](const std::string& s) { std::cout << s << std::flush; };
  }
  opt.gen.stop = &gen::g_interrupted;
  gen::install_sigint();
  gen::GenResult res = generator.generate(ids, opt.gen, stream);
  gen::restore_sigint();
  res.timing.load_ms = load_ms;
  gen::RunInfo info{0, prompt, gen::device_name(device), opt.gen.use_cache, backend->memory_summary()};
  if (opt.json) {
    std::cout << gen::result_json(info, res) << "\n" << std::flush;
  } else {
    std::cout << "\n" << std::flush;
    std::cerr << gen::timing_summary(info, res);
  }
  return res.finish_reason == "interrupted" ? int(gen::ExitCode::interrupted) : 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
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
