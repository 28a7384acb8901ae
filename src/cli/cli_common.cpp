#include "cli/cli_common.h"

#include "gen/error.h"

namespace gen {

Parsed parse_cli(CLI::App& app, int argc, const char* const* argv, const std::string& usage, std::string* help_text) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    *help_text = app.help();
    return Parsed::help;
  } catch (const CLI::CallForVersion&) {
    return Parsed::version;
  } catch (const CLI::ParseError& e) {
    std::string msg = e.what();
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    for (char& c : msg) {
      if (c == '\n') c = ' ';
    }
    throw InputError(msg, "usage: " + usage + " --help");
  }
  return Parsed::run;
}

void check_generation_flags(const GenOptions& g, int threads, int min_new_tokens, const char* new_tokens_rule) {
  require_range("--max-new-tokens", g.max_new_tokens, min_new_tokens, 1 << 24, new_tokens_rule);
  require_range("--temperature", g.sampling.temperature, 0.0f, 100.0f, "must be in [0, 100]");
  require_range("--top-k", g.sampling.top_k, 0, 1 << 24, "must be >= 0 (0 disables)");
  if (!(g.sampling.top_p > 0.0f && g.sampling.top_p <= 1.0f)) {
    std::ostringstream ss;
    ss << "--top-p " << g.sampling.top_p << " is out of range: must be in (0, 1]";
    throw InputError(ss.str(), "--top-p");
  }
  require_range("--threads", threads, 0, 4096, "must be >= 0 (0: all cores)");
  require_range("--ctx", g.max_ctx, 0, 1 << 20, "must be >= 0 (0: the model's n_positions)");
}

CLI::Validator decimal(bool negative, bool uint64) {
  return CLI::Validator(
      [negative, uint64](std::string& s) -> std::string {
        const size_t sign = negative && !s.empty() && s[0] == '-' ? 1 : 0;
        if (s.size() == sign || s.find_first_not_of("0123456789", sign) != std::string::npos) {
          return std::string("must be a decimal integer") + (negative ? "" : " >= 0") + ", got '" + s + "'";
        }
        size_t digits = s.find_first_not_of('0', sign);
        if (digits == std::string::npos) digits = s.size() - 1;  // all zeros: keep one
        s = s.substr(0, sign) + s.substr(digits);
        const std::string max = "18446744073709551615";
        if (uint64 && (s.size() > max.size() || (s.size() == max.size() && s > max))) {
          return "must be 0.." + max + ", got " + s;
        }
        return "";
      },
      negative ? "INT" : "UINT");
}

void add_device_flags(CLI::App& app, std::string* device, std::string* dtype, int* threads) {
  app.add_option("--device", *device, "auto | cpu | cuda")->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  app.add_option("--dtype", *dtype, "weight dtype: CPU fp32 (default) | bf16 | int8; CUDA fp16 (default) | fp32 | bf16")
      ->check(CLI::IsMember({"fp32", "fp16", "bf16", "int8"}));
  app.add_option("--threads", *threads, "CPU threads (0: all cores)")->transform(decimal(true));
}

}  // namespace gen
