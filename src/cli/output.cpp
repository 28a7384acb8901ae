#include "cli/output.h"
#include "gen/device.h"

#include <cstdio>
#include <nlohmann/json.hpp>

namespace gen {

nlohmann::json result_object(const RunInfo& info, const GenResult& r) {
  const Timing& t = r.timing;
  nlohmann::json j = {
      {"index", info.index},
      {"prompt", info.prompt},
      {"prompt_tokens", r.prompt_tokens},
      {"tokens", r.tokens},
      {"text", r.text},
      {"finish_reason", r.finish_reason},
      {"use_cache", info.use_cache},
      {"device", info.device},
      {"dtype", info.dtype},
      {"timing",
       {{"load_ms", t.load_ms},
        {"prefill_ms", t.prefill_ms},
        {"decode_ms", t.decode_ms},
        {"ttft_ms", t.ttft_ms},
        {"decode_tokens_per_s", t.decode_tokens_per_s()},
        {"queue_ms", t.queue_ms},
        {"total_ms", t.total_ms},
        {"prefill_tokens", t.prefill_tokens},
        {"cached_tokens", t.cached_tokens},
        {"prompt_cache_ms", t.prompt_cache_ms}}},
      {"kv_cache_bytes", r.kv_bytes_allocated},
      {"kv_cache_bytes_used", r.kv_bytes_used},
      {"seed", info.seed},
  };
  if (info.sample >= 0) j["sample"] = info.sample;
  if (info.samples > 1) j["samples"] = info.samples;
  if (!info.run.empty()) j["run"] = info.run;
  return j;
}

std::string result_json(const RunInfo& info, const GenResult& r) { return json_line(result_object(info, r)); }

std::string json_line(const nlohmann::json& j) {
  // Generated text may end inside a character only as U+FFFD, so the dump never meets bad UTF-8;
  // "replace" guards the prompt echo all the same.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string timing_summary(const RunInfo& info, const GenResult& r) {
  const Timing& t = r.timing;
  char buf[1024];
  std::snprintf(buf, sizeof buf,
                "\n[gen] device %s (%s), %s, seed %llu, finish: %s\n"
                "[gen] load     %9.1f ms\n"
                "[gen] prefill  %9.1f ms  %5d tokens  %9.1f tok/s\n"
                "[gen] decode   %9.1f ms  %5d tokens  %9.3f ms/token  %9.1f tok/s\n"
                "[gen] total    %9.1f ms  (time to first token %.1f ms)\n",
                info.device.c_str(), info.dtype.c_str(), info.use_cache ? "KV cache" : "no cache (full recompute each step)",
                static_cast<unsigned long long>(info.seed), r.finish_reason.c_str(), t.load_ms, t.prefill_ms,
                t.prefill_tokens, t.prefill_tokens_per_s(),
                t.decode_ms, t.decode_steps, t.decode_steps ? t.decode_ms / t.decode_steps : 0.0,
                t.decode_tokens_per_s(), t.total_ms, t.ttft_ms);
  std::string s = buf;
  if (t.cached_tokens > 0) {
    s += "[gen] prompt   " + std::to_string(t.cached_tokens) + " tokens' K/V reused, " +
         std::to_string(t.prefill_tokens) + " computed\n";
  }
  if (info.use_cache) {
    s += "[gen] KV cache " + human_bytes(double(r.kv_bytes_allocated)) + " allocated, " +
         human_bytes(double(r.kv_bytes_used)) + " used\n";
  }
  if (!info.memory.empty()) s += "[gen] " + info.memory + "\n";
  return s;
}

}  // namespace gen
