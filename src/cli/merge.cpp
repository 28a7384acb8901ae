#include "cli/merge.h"

#include <map>
#include <nlohmann/json.hpp>

#include "gen/error.h"
#include "gen/prompts.h"
#include "model/hash.h"

namespace gen {

using nlohmann::json;

namespace {

// What two lines of one index may differ in: how long it took, where it ran, what memory it had.
const char* const kVolatile[] = {"timing", "device", "kv_cache_bytes", "kv_cache_bytes_used", "tokens_per_s"};

struct Parsed {
  long index = 0;
  int sample = 0;  // -1: an error line (it stands for every sample of its index)
  int samples = 1;  // "samples": the run's --samples K (absent: 1)
  std::string run;
};

Parsed parse_line(const json& j, const std::string& where) {
  if (!j.is_object() || !j.contains("index") || !j["index"].is_number_integer() || j["index"].get<long long>() < 0 ||
      j["index"].get<long long>() > (1LL << 31)) {
    throw InputError("not a gen result line (no \"index\" 0..2^31)", where);
  }
  if (!j.contains("run") || !j["run"].is_string()) {
    throw InputError("the line has no \"run\": gen merge takes the --output lines of gen --prompts-file and gen "
                     "perplexity", where);
  }
  Parsed p{long(j["index"].get<long long>()), 0, 1, j["run"].get<std::string>()};
  if (j.contains("error")) {
    p.sample = -1;
  } else if (j.contains("sample")) {
    const json& s = j["sample"];
    if (!s.is_number_integer() || s.get<long long>() < 0 || s.get<long long>() >= limits::max_samples) {
      throw InputError("\"sample\" is not a sample number", where);
    }
    p.sample = s.get<int>();
  }
  if (j.contains("samples")) {
    const json& k = j["samples"];
    if (!k.is_number_integer() || k.get<long long>() < 1 || k.get<long long>() > limits::max_samples ||
        p.sample >= k.get<int>()) {
      throw InputError("\"samples\" is not the run's sample count", where);
    }
    p.samples = k.get<int>();
  }
  return p;
}

// Sorted values as "3, 7, 11-13", at most `limit` items, then "... (N more)", built as they come: the
// missing of --expect 2^31 take no more memory than their text.
class Ranges {
 public:
  explicit Ranges(size_t limit) : limit_(limit) {}
  void add(long v) {
    if (count_ > 0 && v == hi_ + 1) {
      hi_ = v;
    } else {
      flush();
      lo_ = hi_ = v;
      count_ = 1;
    }
  }
  std::string text() {
    flush();
    count_ = 0;
    return more_ ? text_ + ", ... (" + std::to_string(more_) + " more)" : text_;
  }

 private:
  void flush() {
    if (count_ == 0) return;
    count_ = 0;
    if (hi_ == lo_ + 1) {  // two neighbours read better as "7, 8" than as "7-8"
      put(std::to_string(lo_), 1);
      put(std::to_string(hi_), 1);
    } else {
      put(hi_ > lo_ ? std::to_string(lo_) + "-" + std::to_string(hi_) : std::to_string(lo_), hi_ - lo_ + 1);
    }
  }
  void put(const std::string& item, long values) {
    if (items_ >= limit_) {
      more_ += values;
      return;
    }
    ++items_;
    text_ += (text_.empty() ? "" : ", ") + item;
  }
  size_t limit_, items_ = 0;
  long lo_ = 0, hi_ = 0, more_ = 0;
  int count_ = 0;
  std::string text_;
};

// The missing of indices 0..n-1: those with nothing (as ranges), then those missing some samples. have:
// the lines by (index, sample), sample -1 an index's error line.
template <typename Lines>
void list_missing(const Lines& have, long n, MergeResult* out) {
  Ranges whole(1000);
  bool any_whole = false;
  std::vector<std::string> partial;
  for (long i = 0; i < n; ++i) {
    if (have.count({i, -1})) continue;
    std::vector<long> gone;
    for (int s = 0; s < out->samples; ++s) {
      if (!have.count({i, s})) gone.push_back(s);
    }
    out->missing_count += long(gone.size());
    if (gone.size() == size_t(out->samples)) {
      whole.add(i);
      any_whole = true;
    } else if (!gone.empty() && partial.size() < 1000) {
      partial.push_back(std::to_string(i) + " (sample" + (gone.size() > 1 ? "s " : " ") + ranges_text(gone, 20) + ")");
    }
  }
  if (any_whole) out->missing.push_back(whole.text());
  out->missing.insert(out->missing.end(), partial.begin(), partial.end());
}

}  // namespace

std::string ranges_text(const std::vector<long>& sorted, size_t limit) {
  Ranges r(limit);
  for (long v : sorted) r.add(v);
  return r.text();
}

void ShardMerger::add(const MergeInput& f) {
  names_.push_back(f.name);
  size_t pos = 0;
  for (int line_no = 1; pos < f.content.size(); ++line_no) {
    size_t end = f.content.find('\n', pos);
    const bool last = end == std::string::npos;
    if (last) end = f.content.size();
    add_line(f.content.substr(pos, end - pos), line_no, last);
    pos = end + 1;
  }
}

void ShardMerger::check_run(const std::string& run, int line_no) {
  if (run_.empty()) {
    run_ = run;
    run_where_ = where(int(names_.size()) - 1, line_no);
  } else if (run != run_) {
    throw InputError("the line is from another run than " + run_where_ + " (run " + run + ", not " + run_ +
                         "): the input list, the model or the settings that decide the output differ",
                     where(int(names_.size()) - 1, line_no));
  }
}

void ShardMerger::add_line(std::string text, int line_no, bool unterminated) {
  const int file = int(names_.size()) - 1;
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() && unterminated) {  // a task killed in the middle of a write
    out_.notes.push_back(where(file, line_no) + ": dropped a partial last line (" + std::to_string(text.size()) + " bytes)");
    return;
  }
  if (j.is_discarded()) throw InputError("not a JSON line", where(file, line_no));
  const Parsed p = parse_line(j, where(file, line_no));
  check_run(p.run, line_no);
  samples_ = std::max(samples_, p.samples);  // one run: one K (its fingerprint holds it)
  if (expect_ >= 0 && p.index >= expect_) {
    throw InputError("index " + std::to_string(p.index) + " is beyond --expect " + std::to_string(expect_), where(file, line_no));
  }
  for (const char* k : kVolatile) j.erase(k);
  const std::string view_text = j.dump();
  const uint64_t view = xxh3_64(view_text.data(), view_text.size());
  // An error line and a result of the same index disagree, as do two results of one (index, sample).
  const auto lo = lines_.lower_bound({p.index, -1}), hi = lines_.lower_bound({p.index + 1, -1});
  for (auto it = lo; it != hi; ++it) {
    const bool same_key = it->first.second == p.sample;
    if (!same_key && it->first.second != -1 && p.sample != -1) continue;
    if (same_key && it->second.view == view) {
      ++out_.duplicates;
      return;
    }
    throw InputError("index " + std::to_string(p.index) + " is also in " + where(it->second.file, it->second.line_no) +
                         " with a different result; not merging two answers for one index", where(file, line_no));
  }
  lines_.emplace(std::make_pair(p.index, p.sample), Line{std::move(text), file, line_no, view});
}

MergeResult ShardMerger::finish() {
  MergeResult out = std::move(out_);
  out.run = run_;
  out.samples = samples_;
  long last = -1;
  for (const auto& [key, line] : lines_) {
    out.indices += key.first != last;
    last = key.first;
    out.samples = std::max(out.samples, key.second + 1);
  }
  // What should be there: every index below expect (or, without it, below the highest one found), each
  // with its samples 0..samples-1, or its error line.
  list_missing(lines_, expect_ >= 0 ? expect_ : last + 1, &out);
  for (auto& [key, line] : lines_) out.lines.push_back(std::move(line.text));
  lines_.clear();
  return out;
}

MergeResult merge_runs(const std::vector<MergeInput>& files, long expect) {
  ShardMerger m(expect);
  for (const MergeInput& f : files) m.add(f);
  return m.finish();
}

}  // namespace gen
