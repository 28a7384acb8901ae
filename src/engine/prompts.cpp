#include "gen/prompts.h"

#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "gen/error.h"
#include "gen/tokenizer.h"
#include "text/text_util.h"

namespace gen {

namespace {

using nlohmann::json;

template <typename T>
std::optional<T> number_field(const json& j, const char* key, double lo, double hi, std::string* err) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  const bool integral = std::is_integral_v<T>;
  if (!it->is_number() || (integral && !it->is_number_integer())) {
    *err = std::string("\"") + key + "\" must be " + (integral ? "an integer" : "a number");
    return std::nullopt;
  }
  const double v = it->get<double>();
  if (!(v >= lo && v <= hi)) {
    *err = std::string("\"") + key + "\" " + it->dump() + " is out of range";
    return std::nullopt;
  }
  return integral && it->is_number_unsigned() ? T(it->get<unsigned long long>()) : it->get<T>();
}

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
  auto it = j.find("prompt");
  if (it == j.end() || !it->is_string()) {
    p.error = "no \"prompt\" string";
    return;
  }
  p.text = it->get<std::string>();
  std::string err;
  p.max_new_tokens = number_field<int>(j, "max_new_tokens", 0, 1 << 24, &err);
  if (err.empty()) p.temperature = number_field<float>(j, "temperature", 0, 100, &err);
  if (err.empty()) p.top_k = number_field<int>(j, "top_k", 0, 1 << 24, &err);
  if (err.empty()) p.top_p = number_field<float>(j, "top_p", 1e-30, 1, &err);
  if (err.empty()) p.seed = number_field<unsigned long long>(j, "seed", 0, 1.8446744073709552e19, &err);
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

std::vector<PromptSpec> read_prompts_file(const std::string& path) {
  const std::string content = read_user_file(path, "prompts file");
  // JSON lines by extension, in any case: .jsonl, .ndjson (.JSONL too).
  const size_t dot = path.find_last_of('.'), slash = path.find_last_of('/');
  std::string ext = dot != std::string::npos && (slash == std::string::npos || dot > slash) ? path.substr(dot) : "";
  for (char& ch : ext) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  const bool jsonl = ext == ".jsonl" || ext == ".ndjson";
  std::vector<PromptSpec> prompts = parse_prompts(content, jsonl);
  if (prompts.empty()) throw InputError("no prompts in the file (blank lines are skipped)", path);
  return prompts;
}

}  // namespace gen
