// gen serve's /metrics: counters, gauges and fixed-bucket histograms, rendered in the Prometheus text
// exposition format 0.0.4. Updated from the HTTP threads and from the engine thread. Scalars and histogram
// buckets are lock-free atomics; only the labeled counters (by endpoint and status, by finish reason) take a
// mutex, for one map update, and render() holds it just long enough to copy those maps, so a scrape never
// stalls the engine's decode loop.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace gen::serve {

// A label value escaped for the exposition format: backslash, double quote and newline as \\, \" and \n.
std::string escape_label_value(const std::string& value);

// A sample value as the exposition format writes it: the shortest text that reads back as the same
// double ("0.005", "60", "1e-05"), "+Inf", "-Inf" or "NaN". Independent of the C locale.
std::string format_value(double value);

// A histogram with fixed upper bounds (ascending, finite; an implicit +Inf bucket follows). observe() is
// lock-free; a snapshot reads each bucket once, and its count is the sum of the buckets it read, so
// le="+Inf" and _count always agree.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  // Non-finite values are dropped (they would poison _sum); negative ones count as 0.
  void observe(double value);

  struct Snapshot {
    std::vector<uint64_t> cumulative;  // [bounds.size() + 1]: observations <= each bound, then the total
    uint64_t count = 0;
    double sum = 0;
  };
  Snapshot snapshot() const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // [bounds_.size() + 1], per bucket, not cumulative
  std::atomic<double> sum_{0.0};
};

class Metrics {
 public:
  // At most this many distinct (endpoint, status) series; later new ones count under endpoint="other", so a
  // client probing random paths cannot grow the scrape without bound.
  static constexpr size_t kMaxRequestSeries = 128;
  // Likewise for finish reasons (the engine has a handful).
  static constexpr size_t kMaxFinishReasons = 16;

  Metrics();

  // An HTTP request answered, by endpoint label ("/v1/completions", "/health", ...) and status code.
  // Pass the route's label, not the raw path.
  void http_request(const std::string& endpoint, int status);
  void completion_started();  // admitted to the queue
  void completion_finished(const std::string& finish_reason, int prompt_tokens, int completion_tokens);
  void prompt_tokens_cached(int n);            // prompt tokens served from the prefix cache
  void observe_ttft(double seconds);           // histogram: time to first token
  void observe_token_latency(double seconds);  // histogram: time between tokens of a sequence (per step)
  void observe_request_duration(double seconds);
  void set_queue_depth(int waiting);
  void set_batch(int live, int capacity);  // gauges: batch occupancy (live sequences, slots)
  void set_kv_cache(size_t used_bytes, size_t total_bytes);
  void set_prefix_cache(size_t used_bytes, size_t capacity_bytes);
  void rejected_queue_full();  // 503s for a full queue
  std::string render() const;  // the whole /metrics body

  // The Content-Type header to serve render() with.
  static const char* content_type() { return "text/plain; version=0.0.4; charset=utf-8"; }

 private:
  // Labeled counters, under mu_.
  std::map<std::pair<std::string, int>, uint64_t> requests_;  // (endpoint, status)
  std::map<std::string, uint64_t> completions_;               // finish_reason
  mutable std::mutex mu_;

  std::atomic<uint64_t> completions_started_{0};
  std::atomic<uint64_t> prompt_tokens_{0};
  std::atomic<uint64_t> completion_tokens_{0};
  std::atomic<uint64_t> prompt_tokens_cached_{0};
  std::atomic<uint64_t> rejected_queue_full_{0};

  std::atomic<int64_t> queue_depth_{0};
  std::atomic<int64_t> batch_live_{0};
  std::atomic<int64_t> batch_capacity_{0};
  std::atomic<uint64_t> kv_used_{0};
  std::atomic<uint64_t> kv_total_{0};
  std::atomic<uint64_t> prefix_used_{0};
  std::atomic<uint64_t> prefix_capacity_{0};

  Histogram ttft_;
  Histogram token_latency_;
  Histogram request_duration_;
};

}  // namespace gen::serve
