// What the command-line front ends share (gen, gen perplexity, gen info, gen chat): CLI11 parsing that
// turns its errors into one-line InputErrors, and the device flags.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
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

// An integer flag's check, on the text as typed: decimal digits only (CLI11 alone reads "010" as
// eight and takes "0x10"), an optional '-', leading zeros dropped, and lo <= value <= hi. It throws
// InputError "<flag> <typed> is not a decimal integer" or "<flag> <typed> is out of range: must be in
// lo..hi", with the real bounds (any length of digits is compared exactly, so 2^64 is out of range).
CLI::Validator decimal(const std::string& flag, long long lo, long long hi);
// --seed: 0..2^64-1 as above.
CLI::Validator decimal_u64(const std::string& flag);
// A real flag's check on the text as typed: a decimal number (no hex floats) in [lo, hi], or (lo, hi]
// when lo_open; NaN is out of range.
CLI::Validator number_in(const std::string& flag, double lo, double hi, bool lo_open = false);

// -n/--max-new-tokens (min_new_tokens..limits::max_new_tokens), --temperature, --top-k, --top-p.
void add_sampling_flags(CLI::App& app, GenOptions* g, int min_new_tokens);

// A seed drawn from the OS's entropy, for runs without --seed (reported, so that they can be repeated).
uint64_t random_seed();

// Text from a flag (--stop, --system, ...) or a file is checked as prompts are: UTF-8, else InputError
// "invalid UTF-8 at byte N (<where>)", where is the flag or the file.
void require_utf8(const std::string& text, const std::string& where);

// True when `path` names something, or it cannot be told (a broken link, a directory that cannot be
// searched): reading it then says why. False only for "no such file".
bool path_exists(const std::string& path);

// --threads above the machine's cores is allowed; this one stderr note says so ("" when not above).
std::string threads_note(int threads);

}  // namespace gen
