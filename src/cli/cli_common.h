// What the command-line front ends share (gen, gen perplexity, gen info, gen chat): CLI11 parsing that
// turns its errors into one-line InputErrors, and the device flags.
#pragma once
#include <CLI/CLI.hpp>
#include <sstream>
#include <string>

#include "gen/error.h"
#include "gen/generator.h"

namespace gen {

enum class Parsed { run, help, version };

// Parses argv with `app`. CLI11's messages may span lines; the contract is one line
// "error: <what> (usage: <usage> --help)", so they become one InputError. On `help`, *help_text holds it.
Parsed parse_cli(CLI::App& app, int argc, const char* const* argv, const std::string& usage, std::string* help_text);

// --device auto|cpu|cuda, --dtype fp32|fp16|bf16|int8, --threads N.
void add_device_flags(CLI::App& app, std::string* device, std::string* dtype, int* threads);

// Throws InputError "<flag> <value> is out of range: <what>" unless lo <= value <= hi (NaN fails).
template <typename T>
void require_range(const char* flag, T value, T lo, T hi, const char* what) {
  if (!(value >= lo && value <= hi)) {
    std::ostringstream ss;
    ss << flag << " " << value << " is out of range: " << what;
    throw InputError(ss.str(), flag);
  }
}

// Integer flags are decimal: CLI11 alone reads "010" as eight and accepts "0x10". This transform
// refuses anything but an optional '-' (when `negative`) and digits, and drops leading zeros. An
// unsigned 64-bit flag (--seed) also gets its upper bound checked here, where the text still is exact.
CLI::Validator decimal(bool negative, bool uint64 = false);

// The ranges of -n (from min_new_tokens), --temperature, --top-k, --top-p, --ctx and --threads.
void check_generation_flags(const GenOptions& g, int threads, int min_new_tokens, const char* new_tokens_rule);

}  // namespace gen
