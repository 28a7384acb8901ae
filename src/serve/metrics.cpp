#include "serve/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace gen::serve {
namespace {

// Time to first token: queueing plus the prompt's prefill, from a cached short prompt to a long wait.
const std::vector<double> kTtftBounds = {0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75,
                                         1,     2.5,  5,     7.5,  10,    20,  30,   60};
// One decode step of a sequence: sub-millisecond on a small model, seconds on a CPU with a large one.
const std::vector<double> kTokenBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15,
                                          0.2,   0.3,    0.4,   0.5,  0.75,  1,    2.5,   5};
// Whole requests, up to a long generation on a slow backend.
const std::vector<double> kDurationBounds = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,   2.5,
                                             5,    10,    20,   30,  60,   120, 300, 600};

uint64_t non_negative(int n) { return n > 0 ? static_cast<uint64_t>(n) : 0; }

void add_double(std::atomic<double>& a, double v) {
  double cur = a.load(std::memory_order_relaxed);
  while (!a.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
  }
}

void header(std::string& out, const char* name, const char* help, const char* type) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

// One sample line; labels is "" or the text between the braces, already escaped.
void sample(std::string& out, const std::string& name, const std::string& labels, const std::string& value) {
  out += name;
  if (!labels.empty()) out += '{' + labels + '}';
  out += ' ';
  out += value;
  out += '\n';
}

void sample(std::string& out, const char* name, uint64_t value) {
  sample(out, name, "", std::to_string(value));
}

void gauge(std::string& out, const char* name, const char* help, uint64_t value) {
  header(out, name, help, "gauge");
  sample(out, name, value);
}

void gauge(std::string& out, const char* name, const char* help, int64_t value) {
  header(out, name, help, "gauge");
  sample(out, name, "", std::to_string(value));
}

void counter(std::string& out, const char* name, const char* help, uint64_t value) {
  header(out, name, help, "counter");
  sample(out, name, value);
}

std::string label(const char* key, const std::string& value) {
  return std::string(key) + "=\"" + escape_label_value(value) + '"';
}

void histogram(std::string& out, const std::string& name, const char* help, const Histogram& h) {
  const Histogram::Snapshot s = h.snapshot();
  header(out, name.c_str(), help, "histogram");
  const std::vector<double>& bounds = h.bounds();
  for (size_t i = 0; i <= bounds.size(); ++i) {
    const std::string le = i < bounds.size() ? format_value(bounds[i]) : "+Inf";
    sample(out, name + "_bucket", label("le", le), std::to_string(s.cumulative[i]));
  }
  sample(out, name + "_sum", "", format_value(s.sum));
  sample(out, name + "_count", "", std::to_string(s.count));
}

}  // namespace

std::string escape_label_value(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string format_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, value);  // shortest round trip, "C" locale
  return std::string(buf, r.ptr);
}

// ---- Histogram ------------------------------------------------------------------------------------------

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::observe(double value) {
  if (!std::isfinite(value)) return;
  value = std::max(value, 0.0);
  // The first bound >= value: a bucket counts the observations <= its le.
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  add_double(sum_, value);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.cumulative.resize(bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = running;
  }
  s.count = running;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

// ---- Metrics --------------------------------------------------------------------------------------------

Metrics::Metrics() : ttft_(kTtftBounds), token_latency_(kTokenBounds), request_duration_(kDurationBounds) {}

void Metrics::http_request(const std::string& endpoint, int status) {
  std::lock_guard<std::mutex> lock(mu_);
  auto key = std::make_pair(endpoint, status);
  auto it = requests_.find(key);
  if (it == requests_.end() && requests_.size() >= kMaxRequestSeries) {
    key.first = "other";
    it = requests_.find(key);
  }
  if (it == requests_.end()) it = requests_.emplace(std::move(key), 0).first;
  ++it->second;
}

void Metrics::completion_started() { completions_started_.fetch_add(1, std::memory_order_relaxed); }

void Metrics::completion_finished(const std::string& finish_reason, int prompt_tokens,
                                  int completion_tokens) {
  prompt_tokens_.fetch_add(non_negative(prompt_tokens), std::memory_order_relaxed);
  completion_tokens_.fetch_add(non_negative(completion_tokens), std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = completions_.find(finish_reason);
  if (it == completions_.end()) {
    const std::string key = completions_.size() < kMaxFinishReasons ? finish_reason : "other";
    it = completions_.emplace(key, 0).first;
  }
  ++it->second;
}

void Metrics::prompt_tokens_cached(int n) {
  prompt_tokens_cached_.fetch_add(non_negative(n), std::memory_order_relaxed);
}

void Metrics::observe_ttft(double seconds) { ttft_.observe(seconds); }
void Metrics::observe_token_latency(double seconds) { token_latency_.observe(seconds); }
void Metrics::observe_request_duration(double seconds) { request_duration_.observe(seconds); }

void Metrics::set_queue_depth(int waiting) { queue_depth_.store(waiting, std::memory_order_relaxed); }

void Metrics::set_batch(int live, int capacity) {
  batch_live_.store(live, std::memory_order_relaxed);
  batch_capacity_.store(capacity, std::memory_order_relaxed);
}

void Metrics::set_kv_cache(size_t used_bytes, size_t total_bytes) {
  kv_used_.store(used_bytes, std::memory_order_relaxed);
  kv_total_.store(total_bytes, std::memory_order_relaxed);
}

void Metrics::set_prefix_cache(size_t used_bytes, size_t capacity_bytes) {
  prefix_used_.store(used_bytes, std::memory_order_relaxed);
  prefix_capacity_.store(capacity_bytes, std::memory_order_relaxed);
}

void Metrics::rejected_queue_full() { rejected_queue_full_.fetch_add(1, std::memory_order_relaxed); }

std::string Metrics::render() const {
  std::map<std::pair<std::string, int>, uint64_t> requests;
  std::map<std::string, uint64_t> completions;
  {
    std::lock_guard<std::mutex> lock(mu_);  // copy, then format without the lock
    requests = requests_;
    completions = completions_;
  }
  const auto get = [](const auto& a) { return a.load(std::memory_order_relaxed); };
  std::string out;
  out.reserve(8192);
  header(out, "gen_requests_total", "HTTP requests answered, by endpoint and status code.", "counter");
  for (const auto& [key, n] : requests) {
    sample(out, "gen_requests_total",
           label("endpoint", key.first) + ',' + label("status", std::to_string(key.second)),
           std::to_string(n));
  }
  header(out, "gen_requests_rejected_total", "Requests refused with 503, by reason.", "counter");
  sample(out, "gen_requests_rejected_total", label("reason", "queue_full"),
         std::to_string(get(rejected_queue_full_)));
  counter(out, "gen_completions_started_total", "Completions admitted to the queue.",
          get(completions_started_));
  header(out, "gen_completions_total", "Completions finished, by finish reason.", "counter");
  for (const auto& [reason, n] : completions) {
    sample(out, "gen_completions_total", label("finish_reason", reason), std::to_string(n));
  }
  counter(out, "gen_prompt_tokens_total", "Prompt tokens of finished completions.", get(prompt_tokens_));
  counter(out, "gen_completion_tokens_total", "Tokens generated by finished completions.",
          get(completion_tokens_));
  counter(out, "gen_prompt_tokens_cached_total", "Prompt tokens served from the prefix cache.",
          get(prompt_tokens_cached_));
  gauge(out, "gen_queue_depth", "Completions waiting for a batch slot.", get(queue_depth_));
  gauge(out, "gen_batch_live", "Sequences in the running batch.", get(batch_live_));
  gauge(out, "gen_batch_capacity", "Slots in the running batch.", get(batch_capacity_));
  gauge(out, "gen_kv_cache_bytes_used", "KV cache bytes holding live sequences.", get(kv_used_));
  gauge(out, "gen_kv_cache_bytes_total", "KV cache bytes allocated.", get(kv_total_));
  gauge(out, "gen_prefix_cache_bytes_used", "Prefix cache bytes in use.", get(prefix_used_));
  gauge(out, "gen_prefix_cache_bytes_capacity", "Prefix cache capacity in bytes.", get(prefix_capacity_));
  histogram(out, "gen_time_to_first_token_seconds", "Time from admission to a completion's first token.",
            ttft_);
  histogram(out, "gen_time_per_output_token_seconds", "Time between consecutive tokens of a sequence.",
            token_latency_);
  histogram(out, "gen_request_duration_seconds", "Time to answer a completion request in full.",
            request_duration_);
  return out;
}

}  // namespace gen::serve
