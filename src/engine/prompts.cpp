#include "gen/prompts.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "gen/error.h"
#include "gen/tokenizer.h"
#include "text/text_util.h"

namespace gen {

namespace {

using nlohmann::json;

// lo..hi as a message gives them: integers exactly (2^64 - 1 for the seed's bound), reals as the flags'
// messages give them: [lo, hi], or (lo, hi] when `open_lo` (lo itself is out).
std::string bounds_text(double lo, double hi, bool integral, bool open_lo) {
  std::ostringstream ss;
  if (integral) {
    ss << (long long)lo << "..";
    if (hi >= 1.8e19) ss << "18446744073709551615";
    else ss << (long long)hi;
  } else {
    ss << (open_lo ? "(" : "[") << lo << ", " << hi << "]";
  }
  return ss.str();
}

// A number field in lo..hi (an integer one for integral T), or nullopt when absent or null; *err says
// what is wrong, with the real bounds. nlohmann reads integers past 2^64 as doubles: out of range too.
template <typename T>
std::optional<T> number_field(const json& j, const char* key, double lo, double hi, std::string* err,
                              bool open_lo = false) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  const bool integral = std::is_integral_v<T>;
  const std::string range = "\"" + std::string(key) + "\" " + it->dump() + " is out of range: must be in " +
                            bounds_text(lo, hi, integral, open_lo);
  if (!it->is_number()) {
    *err = std::string("\"") + key + "\" must be " + (integral ? "an integer" : "a number");
    return std::nullopt;
  }
  const double v = it->get<double>();
  if (integral && !it->is_number_integer()) {
    // An integer literal past 64 bits arrives as a double: out of range, not "not an integer".
    const bool whole = std::isfinite(v) && v == std::floor(v);
    *err = whole && (v < lo || v > hi || std::fabs(v) >= 9.2e18) ? range : "\"" + std::string(key) + "\" must be an integer";
    return std::nullopt;
  }
  if (!((open_lo ? v > lo : v >= lo) && v <= hi)) {
    *err = range;
    return std::nullopt;
  }
  return integral && it->is_number_unsigned() ? T(it->get<unsigned long long>()) : it->get<T>();
}

// "stop": a non-empty UTF-8 string or an array of them, as --stop.
std::optional<std::vector<std::string>> stop_field(const json& j, std::string* err) {
  auto it = j.find("stop");
  if (it == j.end() || it->is_null()) return std::nullopt;
  std::vector<std::string> out;
  const json items = it->is_array() ? *it : json::array({*it});
  for (const json& s : items) {
    if (!s.is_string() || s.get<std::string>().empty()) {
      *err = "\"stop\" must be a non-empty string or an array of them";
      return std::nullopt;
    }
    out.push_back(s.get<std::string>());
  }
  return out;
}

const char* const kKeys[] = {"prompt", "max_new_tokens", "temperature", "top_k", "top_p", "seed", "stop"};

void parse_json_line(const std::string& line, PromptSpec& p) {
  json j = json::parse(line, nullptr, false);
  if (j.is_discarded()) {
    p.error = "not valid JSON";
    return;
  }
  if (!j.is_object()) {
    p.error = "not a JSON object";
    return;
  }
  for (const auto& item : j.items()) {
    if (std::find(std::begin(kKeys), std::end(kKeys), item.key()) == std::end(kKeys)) {
      std::string known;
      for (const char* k : kKeys) known += std::string(known.empty() ? "" : ", ") + k;
      p.error = "unknown key \"" + detail::printable(item.key(), false, 40) + "\" (" + known + ")";
      return;
    }
  }
  auto it = j.find("prompt");
  if (it == j.end() || !it->is_string()) {
    p.error = "no \"prompt\" string";
    return;
  }
  p.text = it->get<std::string>();
  std::string err;
  p.max_new_tokens = number_field<int>(j, "max_new_tokens", 0, limits::max_new_tokens, &err);
  if (err.empty()) p.temperature = number_field<float>(j, "temperature", 0, limits::max_temperature, &err);
  if (err.empty()) p.top_k = number_field<int>(j, "top_k", 0, limits::max_top_k, &err);
  if (err.empty()) p.top_p = number_field<float>(j, "top_p", 0, 1, &err, true);
  if (err.empty()) p.seed = number_field<unsigned long long>(j, "seed", 0, 18446744073709551615.0, &err);
  if (err.empty()) p.stop = stop_field(j, &err);
  p.error = err;
}

}  // namespace

std::string read_user_file(const std::string& path, const std::string& what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    throw InputError("cannot read " + what + ": " + std::strerror(errno), path);
  }
  if (S_ISDIR(st.st_mode)) throw InputError("cannot read " + what + ": it is a directory", path);
  std::ifstream f(path, std::ios::binary);
  if (!f) throw InputError("cannot read " + what + ": " + std::strerror(errno), path);
  std::string text;
  try {
    text.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  } catch (const std::exception& e) {
    throw InputError("cannot read " + what + ": " + e.what(), path);
  }
  if (f.bad()) throw InputError("cannot read " + what, path);
  return text;
}


std::vector<PromptSpec> parse_prompts(const std::string& content, bool jsonl) {
  std::vector<PromptSpec> out;
  size_t pos = 0;
  int line_no = 0;
  while (pos < content.size()) {
    size_t end = content.find('\n', pos);
    if (end == std::string::npos) end = content.size();
    std::string line = content.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;  // blank
    PromptSpec p;
    p.index = int(out.size());
    p.line = line_no;
    const long bad = utf8_error_offset(line);
    if (bad >= 0) {
      p.error = "invalid UTF-8 at byte " + std::to_string(bad) + " of line " + std::to_string(line_no);
    } else if (jsonl) {
      parse_json_line(line, p);
      if (!p.error.empty()) p.error += " (line " + std::to_string(line_no) + ")";
    } else {
      p.text = std::move(line);
    }
    out.push_back(std::move(p));
  }
  return out;
}

std::vector<PromptSpec> read_prompts_file(const std::string& path, std::string* bytes) {
  std::string content = read_user_file(path, "prompts file");
  // JSON lines by extension, in any case: .jsonl, .ndjson (.JSONL too).
  const size_t dot = path.find_last_of('.'), slash = path.find_last_of('/');
  std::string ext = dot != std::string::npos && (slash == std::string::npos || dot > slash) ? path.substr(dot) : "";
  for (char& ch : ext) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  const bool jsonl = ext == ".jsonl" || ext == ".ndjson";
  std::vector<PromptSpec> prompts = parse_prompts(content, jsonl);
  if (prompts.empty()) throw InputError("no prompts in the file (blank lines are skipped)", path);
  if (bytes) *bytes = std::move(content);
  return prompts;
}

}  // namespace gen
