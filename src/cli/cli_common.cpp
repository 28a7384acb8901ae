#include "cli/cli_common.h"

#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <random>
#include <sstream>
#include <thread>

#include "gen/error.h"
#include "gen/prompts.h"
#include "gen/tokenizer.h"

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

namespace {

[[noreturn]] void not_decimal(const std::string& flag, const std::string& typed) {
  throw InputError(flag + " '" + typed + "' is not a decimal integer", flag);
}

// Digits (after an optional '-') with the leading zeros dropped; throws for anything else.
std::string decimal_digits(const std::string& flag, const std::string& s, bool* negative) {
  *negative = !s.empty() && s[0] == '-';
  const size_t sign = *negative ? 1 : 0;
  if (s.size() == sign || s.find_first_not_of("0123456789", sign) != std::string::npos) not_decimal(flag, s);
  size_t digits = s.find_first_not_of('0', sign);
  if (digits == std::string::npos) digits = s.size() - 1;  // all zeros: keep one
  if (s.substr(digits) == "0") *negative = false;          // -0 is 0
  return s.substr(digits);
}

// a < b for decimal digit strings without leading zeros.
bool digits_less(const std::string& a, const std::string& b) {
  return a.size() != b.size() ? a.size() < b.size() : a < b;
}

// The signed value of (negative, digits) compared with v: -1, 0, 1.
int compare(bool negative, const std::string& digits, long long v) {
  const bool v_negative = v < 0;
  if (negative != v_negative) return negative ? -1 : 1;
  const std::string vd = v_negative ? std::to_string(v).substr(1) : std::to_string(v);
  const int mag = digits_less(digits, vd) ? -1 : digits == vd ? 0 : 1;
  return negative ? -mag : mag;
}

[[noreturn]] void out_of_range(const std::string& flag, const std::string& typed, const std::string& bounds) {
  throw InputError(flag + " " + typed + " is out of range: must be in " + bounds, flag);
}

}  // namespace

CLI::Validator decimal(const std::string& flag, long long lo, long long hi) {
  return CLI::Validator(
      [flag, lo, hi](std::string& s) -> std::string {
        bool negative = false;
        const std::string digits = decimal_digits(flag, s, &negative);
        if (compare(negative, digits, lo) < 0 || compare(negative, digits, hi) > 0) {
          out_of_range(flag, s, std::to_string(lo) + ".." + std::to_string(hi));
        }
        s = (negative ? "-" : "") + digits;
        return "";
      },
      lo < 0 ? "INT" : "UINT");
}

CLI::Validator decimal_u64(const std::string& flag) {
  return CLI::Validator(
      [flag](std::string& s) -> std::string {
        const std::string max = "18446744073709551615";
        bool negative = false;
        const std::string digits = decimal_digits(flag, s, &negative);
        if (negative || digits_less(max, digits)) out_of_range(flag, s, "0.." + max);
        s = digits;
        return "";
      },
      "UINT");
}

CLI::Validator number_in(const std::string& flag, double lo, double hi, bool lo_open) {
  return CLI::Validator(
      [flag, lo, hi, lo_open](std::string& s) -> std::string {
        char* end = nullptr;
        const double v = s.empty() || s.find_first_of("xX") != std::string::npos ? 0 : std::strtod(s.c_str(), &end);
        if (!end || *end != '\0' || std::isspace(static_cast<unsigned char>(s[0]))) {
          throw InputError(flag + " '" + s + "' is not a number", flag);
        }
        if (!((lo_open ? v > lo : v >= lo) && v <= hi)) {
          std::ostringstream b;
          b << (lo_open ? "(" : "[") << lo << ", " << hi << "]";
          out_of_range(flag, s, b.str());
        }
        return "";
      },
      "FLOAT");
}

void add_sampling_flags(CLI::App& app, GenOptions* g, int min_new_tokens) {
  app.add_option("-n,--max-new-tokens", g->max_new_tokens, "tokens to generate")
      ->transform(decimal("--max-new-tokens", min_new_tokens, limits::max_new_tokens));
  app.add_option("--temperature", g->sampling.temperature, "0: greedy (argmax)")
      ->check(number_in("--temperature", 0, limits::max_temperature));
  app.add_option("--top-k", g->sampling.top_k, "keep the K most likely tokens (0: off)")
      ->transform(decimal("--top-k", 0, limits::max_top_k));
  app.add_option("--top-p", g->sampling.top_p, "keep the smallest set of tokens with mass >= P (1: off)")
      ->check(number_in("--top-p", 0, 1, true));
}

uint64_t random_seed() {
  std::random_device rd;
  return (uint64_t(rd()) << 32) ^ uint64_t(rd());
}

void require_utf8(const std::string& text, const std::string& where) {
  const long bad = utf8_error_offset(text);
  if (bad >= 0) throw InputError("invalid UTF-8 at byte " + std::to_string(bad), where);
}

bool path_exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 || errno != ENOENT;
}

std::string threads_note(int threads) {
  const unsigned cores = std::thread::hardware_concurrency();
  if (cores == 0 || threads <= int(cores)) return "";
  return "[gen] note: --threads " + std::to_string(threads) + " is more than the " + std::to_string(cores) +
         " cores; the threads share them";
}

void add_device_flags(CLI::App& app, std::string* device, std::string* dtype, int* threads) {
  app.add_option("--device", *device, "auto | cpu | cuda")->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  app.add_option("--dtype", *dtype, "weight dtype: CPU fp32 (default) | bf16 | int8; CUDA fp16 (default) | fp32 | bf16")
      ->check(CLI::IsMember({"fp32", "fp16", "bf16", "int8"}));
  app.add_option("--threads", *threads, "CPU threads (0: all cores; more than the cores is allowed)")
      ->transform(decimal("--threads", 0, 4096));
}

}  // namespace gen
