// libFuzzer target: arbitrary bytes as gen's command line (split at NUL bytes into argv), parsed by
// gen::parse_options with CLI11 and gen's decimal / number checks. Bad flags must be an InputError
// (one line, exit 2); anything else thrown, or a crash, is a bug; what is accepted is in range.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "cli/options.h"
#include "gen/error.h"
#include "gen/prompts.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;
  std::vector<std::string> args{"gen"};
  std::string cur;
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0) {
      args.push_back(cur);
      cur.clear();
    } else {
      cur += char(data[i]);
    }
  }
  args.push_back(cur);
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  try {
    const gen::Options o = gen::parse_options(int(argv.size()), argv.data());
    if (o.help || o.version) return 0;
    const auto& g = o.gen;
    if (g.max_new_tokens < 0 || g.max_new_tokens > gen::limits::max_new_tokens) abort();
    if (!(g.sampling.temperature >= 0 && g.sampling.temperature <= gen::limits::max_temperature)) abort();
    if (!(g.sampling.top_p > 0 && g.sampling.top_p <= 1)) abort();
    if (g.sampling.top_k < 0 || g.sampling.top_k > gen::limits::max_top_k) abort();
    if (g.max_ctx < 0 || g.max_ctx > gen::limits::max_ctx) abort();
    if (o.batch_size < 1 || o.batch_size > 4096 || o.samples < 1 || o.samples > gen::limits::max_samples) abort();
    if (o.threads < 0 || o.threads > 4096) abort();
    if (!o.prompt && !o.prompt_file && !o.prompts_file) abort();
    for (const auto& s : g.stop_strings) {
      if (s.empty()) abort();
    }
  } catch (const gen::InputError&) {
  }
  return 0;
}
