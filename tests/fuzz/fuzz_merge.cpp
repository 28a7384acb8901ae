// libFuzzer target: arbitrary bytes as shard files to gen merge (the first byte splits them into two
// files, the second sets --expect). InputError is the contract for bad lines; any other exception
// escapes and aborts (a finding). What is merged must hold: every output line is an input line, in
// strictly increasing (index, sample) order, each (index, sample) once, and the missing count adds up.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "cli/merge.h"
#include "gen/error.h"

namespace {

std::pair<long, int> key_of(const std::string& line) {
  const auto j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) abort();  // the merger took a line that is not a JSON object
  const long index = long(j["index"].get<long long>());
  const int sample = j.contains("error") ? -1 : j.contains("sample") ? j["sample"].get<int>() : 0;
  return {index, sample};
}

void check(const std::string& a, const std::string& b, long expect, const gen::MergeResult& r) {
  std::pair<long, int> last{-1, -2};
  for (const std::string& line : r.lines) {
    if (a.find(line) == std::string::npos && b.find(line) == std::string::npos) abort();
    const auto k = key_of(line);
    if (!(last < k)) abort();  // out of order, or twice
    if (last.first == k.first && (k.second == -1 || last.second == -1)) abort();  // an error line beside a result
    last = k;
    if (expect >= 0 && k.first >= expect) abort();
  }
  if (expect >= 0 && r.missing_count > expect * long(r.samples)) abort();
  if (r.missing_count > 0 && r.missing.empty()) abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 2, size - 2);
  const size_t cut = std::min(rest.size(), size_t(data[0]) * rest.size() / 255);
  const std::string a = rest.substr(0, cut), b = rest.substr(cut);
  const long expect = data[1] == 255 ? -1 : long(data[1] % 64);
  try {
    const gen::MergeResult r = gen::merge_runs({{"a", a}, {"b", b}}, expect);
    check(a, b, expect, r);
  } catch (const gen::InputError&) {
  }
  return 0;
}
