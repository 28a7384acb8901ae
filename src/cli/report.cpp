#include "cli/report.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "gen/error.h"
#include "cli/output.h"
#include "gen/device.h"

namespace gen {

TraceWriter::TraceWriter(const std::string& path) : path_(path) {
  f_ = std::fopen(path.c_str(), "w");
  if (!f_) throw InputError(std::string("cannot write the trace file: ") + std::strerror(errno), path);
  struct stat st {};
  regular_ = ::fstat(::fileno(f_), &st) == 0 && S_ISREG(st.st_mode);
  if (std::fputs("mode,step,context,batch,step_ms\n", f_) < 0) fail(errno);
}

TraceWriter::~TraceWriter() {
  if (!f_) return;
  // Never closed: the run failed before its end; leave no half-written trace behind.
  std::fclose(f_);
  if (regular_) std::remove(path_.c_str());
}

void TraceWriter::fail(int err) {
  if (f_) std::fclose(f_);
  f_ = nullptr;
  if (regular_) std::remove(path_.c_str());
  throw Error("writing " + path_ + " failed: " + std::strerror(err));
}

void TraceWriter::row(bool use_cache, const StepInfo& s) {
  if (!f_) return;
  // Flushed row by row (a write per step, next to a step's milliseconds): `tail -f` and a test see the
  // run as it goes.
  if (std::fprintf(f_, "%s,%d,%d,%d,%.4f\n", use_cache ? "cache" : "no-cache", s.step, s.context, s.batch,
                   s.ms) < 0 ||
      std::fflush(f_) != 0) {
    fail(errno);
  }
}

void TraceWriter::close() {
  if (!f_) return;
  // stdio keeps the data in its buffer: a full disk shows at the flush (or the close, on NFS).
  errno = 0;
  if (std::fflush(f_) != 0 || std::ferror(f_) != 0) fail(errno ? errno : EIO);
  const int rc = std::fclose(f_);
  f_ = nullptr;
  if (rc != 0) {
    const int err = errno;
    if (regular_) std::remove(path_.c_str());
    throw Error("writing " + path_ + " failed: " + std::strerror(err));
  }
}

namespace {
double mean(const std::vector<double>& v, size_t from, size_t to) {
  double s = 0;
  for (size_t i = from; i < to; ++i) s += v[i];
  return to > from ? s / double(to - from) : 0.0;
}
// Decode steps are step_ms[1..n); a tenth of them, at least one.
size_t tenth(const std::vector<double>& v) { return v.size() > 1 ? std::max<size_t>(1, (v.size() - 1) / 10) : 0; }
}  // namespace

double CompareRun::first_tenth_ms() const { return mean(step_ms, 1, 1 + tenth(step_ms)); }
double CompareRun::last_tenth_ms() const { return mean(step_ms, step_ms.size() - tenth(step_ms), step_ms.size()); }

namespace {
double tokens_per_s(const GenResult& r) {
  return r.timing.total_ms > 0 ? double(r.tokens.size()) * 1e3 / r.timing.total_ms : 0.0;
}
double speedup(const CompareRun& c, const CompareRun& u) {
  return c.result.timing.total_ms > 0 ? u.result.timing.total_ms / c.result.timing.total_ms : 0.0;
}
}  // namespace

namespace {
std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}
// One row: a label and the two runs' cells ("-" for a run that never started, unless `always`).
template <typename Cell>
std::string table_row(const std::string& label, const CompareRun& c, const CompareRun& u, Cell cell,
                      bool always = false) {
  const std::string a = always || c.started() ? cell(c) : "-";
  const std::string b = always || u.started() ? cell(u) : "-";
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-34s %14s %14s\n", label.c_str(), a.c_str(), b.c_str());
  return buf;
}
}  // namespace

std::string compare_table(const CompareRun& c, const CompareRun& u, const std::string& device) {
  std::string s = table_row(
      "device " + device, c, u,
      [&](const CompareRun& r) { return std::string(&r == &c ? "KV cache" : "no cache"); }, true);
  s += table_row("generated tokens", c, u,
                 [](const CompareRun& r) { return std::to_string(r.result.tokens.size()); });
  s += table_row("total ms", c, u, [](const CompareRun& r) { return fixed(r.result.timing.total_ms, 1); });
  s +=
      table_row("prefill ms", c, u, [](const CompareRun& r) { return fixed(r.result.timing.prefill_ms, 1); });
  s += table_row("decode ms/token, first tenth", c, u,
                 [](const CompareRun& r) { return fixed(r.first_tenth_ms(), 3); });
  s += table_row("decode ms/token, last tenth", c, u,
                 [](const CompareRun& r) { return fixed(r.last_tenth_ms(), 3); });
  s += table_row("tokens/s (total)", c, u,
                 [](const CompareRun& r) { return fixed(tokens_per_s(r.result), 1); });
  s += table_row("finish", c, u, [](const CompareRun& r) { return r.result.finish_reason; }, true);
  if (c.interrupted() || u.interrupted()) {
    s += "interrupted: the runs are incomplete, so no speed-up and no comparison of the outputs\n";
  } else {
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "speed-up with the cache: %.2fx (total time), %.2fx (decode, last tenth)\n"
                  "outputs identical: %s\n",
                  speedup(c, u), c.last_tenth_ms() > 0 ? u.last_tenth_ms() / c.last_tenth_ms() : 0.0,
                  c.result.tokens == u.result.tokens ? "yes" : "NO (the token ids differ)");
    s += buf;
  }
  const GenResult& rc = c.result;
  if (rc.kv_bytes_allocated) {
    s += "KV cache: " + human_bytes(double(rc.kv_bytes_allocated)) + " allocated, " +
         human_bytes(double(rc.kv_bytes_used)) + " used\n";
  }
  return s;
}

std::string compare_json(const CompareRun& c, const CompareRun& u, const std::string& prompt,
                         const std::string& device, const std::string& dtype, uint64_t seed) {
  auto side = [&](const CompareRun& r, bool use_cache) {
    nlohmann::json j = result_object(RunInfo{0, prompt, device, dtype, use_cache, "", seed, -1, "", 1}, r.result);
    j.erase("prompt");
    j.erase("index");
    j["decode_ms_per_token_first_tenth"] = r.first_tenth_ms();
    j["decode_ms_per_token_last_tenth"] = r.last_tenth_ms();
    j["tokens_per_s"] = tokens_per_s(r.result);
    return j;
  };
  nlohmann::json j = {{"index", 0},
                      {"prompt", prompt},
                      {"device", device},
                      {"seed", seed},
                      {"cache", side(c, true)},
                      {"no_cache", side(u, false)},
                      {"speedup", speedup(c, u)},
                      {"identical", c.result.tokens == u.result.tokens},
                      {"interrupted", c.interrupted() || u.interrupted()}};
  if (j["interrupted"]) j["speedup"] = j["identical"] = nullptr;  // nothing to compare yet
  return json_line(j);
}

}  // namespace gen
