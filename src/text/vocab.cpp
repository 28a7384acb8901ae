#include "text/vocab.h"

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string_view>

#include "gen/error.h"
#include "text/byte_level.h"
#include "text/utf8.h"

namespace gen::text {
namespace {

using IdOf = std::unordered_map<std::string, int>;  // vocab strings as written (byte alphabet)

// vocab.json: a flat object of string -> id, parsed with SAX so that no hostile document (deep
// nesting, huge arrays) is ever built in memory.
class VocabReader : public nlohmann::json::json_sax_t {
 public:
  std::vector<std::pair<std::string, long>> entries;
  std::string error;

  bool start_object(std::size_t) override {
    if (depth_++ == 0) return true;
    return fail_value();
  }
  bool end_object() override {
    --depth_;
    return true;
  }
  bool key(string_t& k) override {
    key_ = k;
    return true;
  }
  bool number_integer(number_integer_t v) override { return v < 0 ? fail_value() : add(v); }
  bool number_unsigned(number_unsigned_t v) override {
    if (v > uint64_t(INT_MAX)) return fail_value();
    return add(long(v));
  }
  bool null() override { return fail_value(); }
  bool boolean(bool) override { return fail_value(); }
  bool number_float(number_float_t, const string_t&) override { return fail_value(); }
  bool string(string_t&) override { return fail_value(); }
  bool binary(binary_t&) override { return fail_value(); }
  bool start_array(std::size_t) override { return fail_value(); }
  bool end_array() override { return fail_value(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    // what() is "[json.exception.parse_error.101] parse error at ...: ...; last read: '<raw bytes>'".
    std::string_view what = e.what();
    size_t tag = what.find("] ");
    if (tag != std::string_view::npos) what.remove_prefix(tag + 2);
    error = "vocab is not valid JSON: " + printable_utf8(what, 300);
    return false;
  }

 private:
  bool add(long id) {
    if (depth_ == 0) return fail_value();
    entries.emplace_back(key_, id);
    return true;
  }
  bool fail_value() {
    error = depth_ == 0 ? "vocab must be a JSON object mapping token strings to ids"
                        : "vocab entry " + quote(key_) + " must map to a non-negative integer id";
    return false;
  }
  int depth_ = 0;
  std::string key_;
};

// Fills v.id_bytes from vocab.json: ids must be 0..n-1, each once, and strings unique, non-empty
// and in the byte alphabet. Returns the strings' ids.
IdOf read_tokens(const std::string& vocab_json, const std::string& where, Vocab& v) {
  VocabReader reader;
  if (!nlohmann::json::sax_parse(vocab_json, &reader) || !reader.error.empty()) {
    throw InputError(reader.error.empty() ? "vocab is not valid JSON" : reader.error, where);
  }
  const size_t n = reader.entries.size();
  if (n == 0) throw InputError("vocab is empty", where);
  if (n > size_t(INT_MAX)) throw InputError("vocab is too large", where);
  IdOf id_of;
  id_of.reserve(n);
  v.id_bytes.assign(n, std::string());
  std::vector<char> seen(n, 0);
  for (const auto& [tok, id] : reader.entries) {
    if (size_t(id) >= n) {
      throw InputError("token id " + std::to_string(id) + " of " + quote(tok) + " out of range: " +
                           std::to_string(n) + " tokens need ids 0.." + std::to_string(n - 1),
                       where);
    }
    if (seen[id]) throw InputError("token id " + std::to_string(id) + " appears twice", where);
    seen[id] = 1;
    if (!id_of.emplace(tok, int(id)).second)
      throw InputError("token " + quote(tok) + " appears twice", where);
    if (tok.empty()) throw InputError("empty token string for id " + std::to_string(id), where);
    if (!alphabet().bytes_of(tok, v.id_bytes[id])) {
      throw InputError("token " + quote(tok) + " has a character outside GPT-2's byte alphabet", where);
    }
  }
  return id_of;
}

void find_byte_ids(const IdOf& id_of, const std::string& where, Vocab& v) {
  for (int b = 0; b < 256; ++b) {
    std::string s = alphabet().text_of(b);
    auto it = id_of.find(s);
    if (it == id_of.end()) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", b);
      throw InputError("vocab lacks the token " + quote(s) + " for byte " + hex, where);
    }
    v.byte_id[b] = it->second;
  }
}

// HF's merges.txt reader: "#version" lines are skipped, anything else must be "left right";
// a repeated pair takes the later rank, as in HF and OpenAI's dict().
void read_merges(const std::string& merges_txt, const std::string& merges_where, const IdOf& id_of,
                 Vocab& v) {
  size_t line_no = 0, rank = 0;
  for (size_t pos = 0; pos <= merges_txt.size();) {
    size_t end = merges_txt.find('\n', pos);
    if (end == std::string::npos) end = merges_txt.size();
    std::string_view line(merges_txt.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.substr(0, 8) == "#version") continue;
    const std::string where = merges_where + ":" + std::to_string(line_no);
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos || sp == 0 || sp + 1 == line.size() ||
        line.find(' ', sp + 1) != std::string_view::npos) {
      throw InputError("merge " + quote(line) + " is not two tokens separated by one space", where);
    }
    std::string left(line.substr(0, sp)), right(line.substr(sp + 1));
    auto l = id_of.find(left), r = id_of.find(right), m = id_of.find(left + right);
    if (l == id_of.end()) throw InputError("merge token " + quote(left) + " is not in the vocab", where);
    if (r == id_of.end()) throw InputError("merge token " + quote(right) + " is not in the vocab", where);
    if (m == id_of.end())
      throw InputError("merged token " + quote(left + right) + " is not in the vocab", where);
    if (rank >= size_t(INT_MAX)) throw InputError("too many merges", where);
    v.merges[merge_key(l->second, r->second)] = {int(rank++), m->second};
  }
}

}  // namespace

std::string read_whole_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw InputError("cannot read file: is a directory", path);
  std::ifstream f(path, std::ios::binary);
  if (!f) throw InputError(std::string("cannot open file: ") + std::strerror(errno), path);
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) throw InputError("cannot read file", path);
  return ss.str();
}

Vocab parse_vocab(const std::string& vocab_json, const std::string& vocab_where,
                  const std::string& merges_txt, const std::string& merges_where) {
  Vocab v;
  const IdOf id_of = read_tokens(vocab_json, vocab_where, v);
  find_byte_ids(id_of, vocab_where, v);
  auto eos = id_of.find(kEndOfText);
  v.eos_id = eos == id_of.end() ? -1 : eos->second;
  read_merges(merges_txt, merges_where, id_of, v);
  return v;
}

}  // namespace gen::text
