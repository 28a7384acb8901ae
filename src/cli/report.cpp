#include "cli/report.h"

#include <cerrno>
#include <cstring>

#include "gen/error.h"
#include "cli/output.h"
#include "gen/device.h"

namespace gen {

TraceWriter::TraceWriter(const std::string& path) : path_(path) {
  f_ = std::fopen(path.c_str(), "w");
  if (!f_) throw InputError(std::string("cannot write the trace file: ") + std::strerror(errno), path);
  std::fputs("mode,step,context,batch,step_ms\n", f_);
}

TraceWriter::~TraceWriter() {
  if (!f_) return;
  // Never closed: the run failed before its end; leave no half-written trace behind.
  std::fclose(f_);
  std::remove(path_.c_str());
}

void TraceWriter::row(bool use_cache, const StepInfo& s) {
  if (f_) std::fprintf(f_, "%s,%d,%d,%d,%.4f\n", use_cache ? "cache" : "no-cache", s.step, s.context, s.batch, s.ms);
}

void TraceWriter::close() {
  if (!f_) return;
  const bool ok = std::ferror(f_) == 0;
  const bool closed = std::fclose(f_) == 0;
  f_ = nullptr;
  if (!ok || !closed) throw Error("writing the trace file failed (" + path_ + ")");
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

std::string compare_table(const CompareRun& c, const CompareRun& u, const std::string& device) {
  const GenResult &rc = c.result, &ru = u.result;
  char buf[2048];
  std::snprintf(buf, sizeof buf,
                "%-34s %14s %14s\n"
                "%-34s %14zu %14zu\n"
                "%-34s %14.1f %14.1f\n"
                "%-34s %14.1f %14.1f\n"
                "%-34s %14.3f %14.3f\n"
                "%-34s %14.3f %14.3f\n"
                "%-34s %14.1f %14.1f\n"
                "%-34s %14s %14s\n"
                "speed-up with the cache: %.2fx (total time), %.2fx (decode, last tenth)\n"
                "outputs identical: %s\n",
                ("device " + device).c_str(), "KV cache", "no cache",
                "generated tokens", rc.tokens.size(), ru.tokens.size(),
                "total ms", rc.timing.total_ms, ru.timing.total_ms,
                "prefill ms", rc.timing.prefill_ms, ru.timing.prefill_ms,
                "decode ms/token, first tenth", c.first_tenth_ms(), u.first_tenth_ms(),
                "decode ms/token, last tenth", c.last_tenth_ms(), u.last_tenth_ms(),
                "tokens/s (total)", tokens_per_s(rc), tokens_per_s(ru),
                "finish", rc.finish_reason.c_str(), ru.finish_reason.c_str(),
                speedup(c, u), c.last_tenth_ms() > 0 ? u.last_tenth_ms() / c.last_tenth_ms() : 0.0,
                rc.tokens == ru.tokens ? "yes" : "NO (the token ids differ)");
  std::string s = buf;
  if (rc.kv_bytes_allocated) {
    s += "KV cache: " + human_bytes(double(rc.kv_bytes_allocated)) + " allocated, " +
         human_bytes(double(rc.kv_bytes_used)) + " used\n";
  }
  return s;
}

std::string compare_json(const CompareRun& c, const CompareRun& u, const std::string& prompt,
                         const std::string& device, const std::string& dtype) {
  auto side = [&](const CompareRun& r, bool use_cache) {
    nlohmann::json j = result_object(RunInfo{0, prompt, device, dtype, use_cache, ""}, r.result);
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
                      {"cache", side(c, true)},
                      {"no_cache", side(u, false)},
                      {"speedup", speedup(c, u)},
                      {"identical", c.result.tokens == u.result.tokens}};
  return json_line(j);
}

}  // namespace gen
