// gen serve's /metrics: exact exposition text after known updates, label escaping, exact totals under
// concurrent updates and scrapes, and a line-by-line check of the Prometheus text format 0.0.4.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "serve/metrics.h"

using namespace gen::serve;

namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

bool has_line(const std::string& text, const std::string& line) {
  for (const auto& l : lines_of(text))
    if (l == line) return true;
  return false;
}

// The lines of one family, from its "# HELP" to the next family's.
std::string family(const std::string& text, const std::string& name) {
  const size_t begin = text.find("# HELP " + name + ' ');
  if (begin == std::string::npos) return "";
  const size_t end = text.find("# HELP ", begin + 1);
  return text.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

struct Sample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;  // unescaped values
  double value = 0;
};

// One sample line, `name{k="v",...} value`, strictly as the 0.0.4 text format has it (no timestamp).
// Fails the test on anything else.
Sample parse_sample(const std::string& line) {
  static const std::regex name_re("^[a-zA-Z_:][a-zA-Z0-9_:]*");
  static const std::regex label_re("^[a-zA-Z_][a-zA-Z0-9_]*");
  static const std::regex value_re("^([+-]?Inf|NaN|[+-]?[0-9]+(\\.[0-9]*)?([eE][+-]?[0-9]+)?)$");
  INFO(line);
  Sample s;
  std::smatch m;
  REQUIRE(std::regex_search(line, m, name_re));
  s.name = m.str();
  size_t i = s.name.size();
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (line.at(i) != '}') {
      const std::string rest = line.substr(i);
      REQUIRE(std::regex_search(rest, m, label_re));
      std::string key = m.str(), value;
      i += key.size();
      REQUIRE(line.substr(i, 2) == "=\"");
      for (i += 2; line.at(i) != '"'; ++i) {
        if (line[i] != '\\') {
          value += line[i];
          continue;
        }
        const char e = line.at(++i);
        REQUIRE((e == '\\' || e == '"' || e == 'n'));
        value += e == 'n' ? '\n' : e;
      }
      s.labels.emplace_back(key, value);
      ++i;
      if (line.at(i) == ',') ++i;
    }
    ++i;
  }
  REQUIRE(line.substr(i, 1) == " ");
  const std::string value = line.substr(i + 1);
  REQUIRE(std::regex_match(value, value_re));
  s.value = value.find("Inf") != std::string::npos ? (value[0] == '-' ? -1 : 1) * HUGE_VAL
                                                   : std::strtod(value.c_str(), nullptr);
  return s;
}

// The whole body: every line a HELP, a TYPE or a sample of the family just declared; one HELP and TYPE per
// family, before its samples; no series twice; histograms with ascending le, cumulative buckets ending in
// le="+Inf" equal to _count. Returns the samples by "name{labels}" text.
std::map<std::string, double> check_exposition(const std::string& text) {
  REQUIRE(!text.empty());
  REQUIRE(text.back() == '\n');
  static const std::regex help_re("^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) [^\\n]+$");
  static const std::regex type_re("^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$");
  std::map<std::string, double> series;
  std::set<std::string> families;
  std::string fam, type, help_for;
  std::vector<double> les, buckets;
  for (const auto& line : lines_of(text)) {
    INFO(line);
    std::smatch m;
    if (std::regex_match(line, m, help_re)) {
      REQUIRE(families.insert(m[1]).second);
      help_for = m[1];
      continue;
    }
    if (std::regex_match(line, m, type_re)) {
      REQUIRE(m[1] == help_for);
      fam = m[1];
      type = m[2];
      les.clear();
      buckets.clear();
      if (type == "counter") REQUIRE(fam.size() > 6);
      if (type == "counter") REQUIRE(fam.substr(fam.size() - 6) == "_total");
      continue;
    }
    REQUIRE(line.substr(0, 1) != "#");
    REQUIRE(fam.substr(0, 4) == "gen_");
    const Sample s = parse_sample(line);
    std::string key = s.name;
    for (const auto& [k, v] : s.labels) key += '|' + k + '=' + v;
    REQUIRE(series.emplace(key, s.value).second);
    if (type != "histogram") {
      REQUIRE(s.name == fam);
      continue;
    }
    if (s.name == fam + "_bucket") {
      REQUIRE(s.labels.size() == 1);
      REQUIRE(s.labels[0].first == "le");
      const double le = parse_sample("x " + s.labels[0].second).value;
      if (!les.empty()) REQUIRE(le > les.back());
      if (!buckets.empty()) REQUIRE(s.value >= buckets.back());
      les.push_back(le);
      buckets.push_back(s.value);
    } else if (s.name == fam + "_count") {
      REQUIRE(!les.empty());
      REQUIRE(std::isinf(les.back()));
      REQUIRE(s.value == buckets.back());
    } else {
      REQUIRE(s.name == fam + "_sum");
    }
  }
  return series;
}

// Scrapes taken in order while counters rose: each well formed (+Inf == _count), no series vanishes and no
// counter, bucket or count goes back.
void check_scrapes(const std::vector<std::string>& scrapes) {
  REQUIRE(!scrapes.empty());
  std::map<std::string, double> previous;
  for (const auto& text : scrapes) {
    const auto series = check_exposition(text);
    for (const auto& [key, v] : previous) {
      INFO(key);
      REQUIRE(series.count(key) == 1);
      const bool gauge = key.find("_total") == std::string::npos && key.find("_count") == std::string::npos &&
                         key.find("_bucket") == std::string::npos;
      if (!gauge) REQUIRE(series.at(key) >= v);
    }
    previous = series;
  }
}

}  // namespace

TEST_CASE("Label values escape backslash, quote and newline; values print shortest", "[serve][metrics]") {
  REQUIRE(escape_label_value("plain /v1/completions") == "plain /v1/completions");
  REQUIRE(escape_label_value("a\\b\"c\nd") == "a\\\\b\\\"c\\nd");
  REQUIRE(escape_label_value("") == "");
  REQUIRE(format_value(0.005) == "0.005");
  REQUIRE(format_value(60) == "60");
  REQUIRE(format_value(0.1 + 0.2) == "0.30000000000000004");
  REQUIRE(format_value(1.5) == "1.5");
  REQUIRE(format_value(0) == "0");
  REQUIRE(format_value(std::numeric_limits<double>::infinity()) == "+Inf");
  REQUIRE(format_value(-std::numeric_limits<double>::infinity()) == "-Inf");
  REQUIRE(format_value(std::nan("")) == "NaN");

  Metrics m;
  m.http_request("/odd\"path\\with\nnewline", 404);
  const std::string text = m.render();
  REQUIRE(has_line(text, "gen_requests_total{endpoint=\"/odd\\\"path\\\\with\\nnewline\",status=\"404\"} 1"));
  const auto series = check_exposition(text);
  REQUIRE(series.at("gen_requests_total|endpoint=/odd\"path\\with\nnewline|status=404") == 1);
}

TEST_CASE("A fresh Metrics renders every family, at zero, in a fixed order", "[serve][metrics]") {
  Metrics m;
  const std::string text = m.render();
  check_exposition(text);
  std::string types;  // every family, in order, with its type
  for (const auto& line : lines_of(text))
    if (line.rfind("# TYPE ", 0) == 0) types += line.substr(7) + '\n';
  REQUIRE(types ==
          "gen_requests_total counter\ngen_requests_rejected_total counter\n"
          "gen_completions_started_total counter\ngen_completions_total counter\n"
          "gen_prompt_tokens_total counter\ngen_completion_tokens_total counter\n"
          "gen_prompt_tokens_cached_total counter\ngen_queue_depth gauge\ngen_batch_live gauge\n"
          "gen_batch_capacity gauge\ngen_kv_cache_bytes_used gauge\ngen_kv_cache_bytes_total gauge\n"
          "gen_prefix_cache_bytes_used gauge\ngen_prefix_cache_bytes_capacity gauge\n"
          "gen_time_to_first_token_seconds histogram\ngen_time_per_output_token_seconds histogram\n"
          "gen_request_duration_seconds histogram\n");
  REQUIRE(family(text, "gen_requests_total") ==
          "# HELP gen_requests_total HTTP requests answered, by endpoint and status code.\n"
          "# TYPE gen_requests_total counter\n");
  REQUIRE(has_line(text, "gen_requests_rejected_total{reason=\"queue_full\"} 0"));
  REQUIRE(has_line(text, "gen_queue_depth 0"));
  REQUIRE(has_line(text, "gen_time_to_first_token_seconds_bucket{le=\"+Inf\"} 0"));
  REQUIRE(has_line(text, "gen_time_to_first_token_seconds_sum 0"));
  REQUIRE(m.render() == text);  // stable
}

TEST_CASE("Counters and gauges read back exactly after known updates", "[serve][metrics]") {
  Metrics m;
  m.http_request("/v1/completions", 200);
  m.http_request("/v1/completions", 200);
  m.http_request("/v1/completions", 400);
  m.http_request("/health", 200);
  m.completion_started();
  m.completion_started();
  m.completion_started();
  m.completion_finished("stop", 10, 5);
  m.completion_finished("length", 7, 16);
  m.completion_finished("stop", 3, -1);  // a negative count adds nothing
  m.prompt_tokens_cached(8);
  m.prompt_tokens_cached(-4);
  m.rejected_queue_full();
  m.set_queue_depth(3);
  m.set_queue_depth(2);
  m.set_batch(5, 8);
  m.set_kv_cache(1000, 4096);
  m.set_prefix_cache(12345678901ull, 20000000000ull);
  const std::string text = m.render();
  check_exposition(text);
  REQUIRE(family(text, "gen_requests_total") ==
          "# HELP gen_requests_total HTTP requests answered, by endpoint and status code.\n"
          "# TYPE gen_requests_total counter\n"
          "gen_requests_total{endpoint=\"/health\",status=\"200\"} 1\n"
          "gen_requests_total{endpoint=\"/v1/completions\",status=\"200\"} 2\n"
          "gen_requests_total{endpoint=\"/v1/completions\",status=\"400\"} 1\n");
  REQUIRE(family(text, "gen_completions_total") ==
          "# HELP gen_completions_total Completions finished, by finish reason.\n"
          "# TYPE gen_completions_total counter\n"
          "gen_completions_total{finish_reason=\"length\"} 1\n"
          "gen_completions_total{finish_reason=\"stop\"} 2\n");
  REQUIRE(family(text, "gen_queue_depth") ==
          "# HELP gen_queue_depth Completions waiting for a batch slot.\n"
          "# TYPE gen_queue_depth gauge\n"
          "gen_queue_depth 2\n");
  for (const char* line :
       {"gen_requests_rejected_total{reason=\"queue_full\"} 1", "gen_completions_started_total 3",
        "gen_prompt_tokens_total 20", "gen_completion_tokens_total 21", "gen_prompt_tokens_cached_total 8",
        "gen_batch_live 5", "gen_batch_capacity 8", "gen_kv_cache_bytes_used 1000",
        "gen_kv_cache_bytes_total 4096", "gen_prefix_cache_bytes_used 12345678901",
        "gen_prefix_cache_bytes_capacity 20000000000"}) {
    INFO(line);
    REQUIRE(has_line(text, line));
  }
}

TEST_CASE("Histogram buckets are cumulative, le inclusive, with _sum and _count", "[serve][metrics]") {
  Metrics m;
  m.observe_ttft(0.005);  // on a bound: counts in le="0.005"
  m.observe_ttft(0.3);
  m.observe_ttft(0.3);
  m.observe_ttft(100);                                      // past the last bound: only +Inf
  m.observe_ttft(-1);                                       // counts as 0
  m.observe_ttft(std::nan(""));                             // dropped
  m.observe_ttft(std::numeric_limits<double>::infinity());  // dropped
  const std::string text = m.render();
  check_exposition(text);
  REQUIRE(family(text, "gen_time_to_first_token_seconds") ==
          "# HELP gen_time_to_first_token_seconds Time from admission to a completion's first token.\n"
          "# TYPE gen_time_to_first_token_seconds histogram\n"
          "gen_time_to_first_token_seconds_bucket{le=\"0.005\"} 2\n"
          "gen_time_to_first_token_seconds_bucket{le=\"0.01\"} 2\n"
          "gen_time_to_first_token_seconds_bucket{le=\"0.025\"} 2\n"
          "gen_time_to_first_token_seconds_bucket{le=\"0.05\"} 2\n"
          "gen_time_to_first_token_seconds_bucket{le=\"0.075\"} 2\n"
          "gen_time_to_first_token_seconds_bucket{le=\"0.1\"} 2\n"
          "gen_time_to_first_token_seconds_bucket{le=\"0.25\"} 2\n"
          "gen_time_to_first_token_seconds_bucket{le=\"0.5\"} 4\n"
          "gen_time_to_first_token_seconds_bucket{le=\"0.75\"} 4\n"
          "gen_time_to_first_token_seconds_bucket{le=\"1\"} 4\n"
          "gen_time_to_first_token_seconds_bucket{le=\"2.5\"} 4\n"
          "gen_time_to_first_token_seconds_bucket{le=\"5\"} 4\n"
          "gen_time_to_first_token_seconds_bucket{le=\"7.5\"} 4\n"
          "gen_time_to_first_token_seconds_bucket{le=\"10\"} 4\n"
          "gen_time_to_first_token_seconds_bucket{le=\"20\"} 4\n"
          "gen_time_to_first_token_seconds_bucket{le=\"30\"} 4\n"
          "gen_time_to_first_token_seconds_bucket{le=\"60\"} 4\n"
          "gen_time_to_first_token_seconds_bucket{le=\"+Inf\"} 5\n"
          "gen_time_to_first_token_seconds_sum " +
              format_value(0.005 + 0.3 + 0.3 + 100) +
              "\n"
              "gen_time_to_first_token_seconds_count 5\n");

  m.observe_token_latency(0.0004);
  m.observe_token_latency(0.02);
  m.observe_request_duration(1.5);
  const std::string after = m.render();
  REQUIRE(has_line(after, "gen_time_per_output_token_seconds_bucket{le=\"0.001\"} 1"));
  REQUIRE(has_line(after, "gen_time_per_output_token_seconds_bucket{le=\"0.01\"} 1"));
  REQUIRE(has_line(after, "gen_time_per_output_token_seconds_bucket{le=\"0.025\"} 2"));
  REQUIRE(has_line(after, "gen_time_per_output_token_seconds_bucket{le=\"5\"} 2"));
  REQUIRE(has_line(after, "gen_time_per_output_token_seconds_count 2"));
  REQUIRE(has_line(after, "gen_request_duration_seconds_bucket{le=\"1\"} 0"));
  REQUIRE(has_line(after, "gen_request_duration_seconds_bucket{le=\"2.5\"} 1"));
  REQUIRE(has_line(after, "gen_request_duration_seconds_sum 1.5"));

  Histogram h({1, 2});
  h.observe(2);
  h.observe(3);
  const Histogram::Snapshot s = h.snapshot();
  REQUIRE(s.cumulative == std::vector<uint64_t>{0, 1, 2});
  REQUIRE(s.count == 2);
  REQUIRE(s.sum == 5);
}

TEST_CASE("Distinct label series are capped; the overflow counts under \"other\"", "[serve][metrics]") {
  Metrics m;
  const int n = static_cast<int>(Metrics::kMaxRequestSeries) + 50;
  for (int i = 0; i < n; ++i) m.http_request("/probe/" + std::to_string(i), 404);
  m.http_request("/probe/0", 404);  // an existing series still counts as itself
  for (int i = 0; i < 40; ++i) m.completion_finished("reason" + std::to_string(i), 1, 1);
  const auto series = check_exposition(m.render());
  double requests = 0, completions = 0;
  size_t request_series = 0, completion_series = 0;
  for (const auto& [key, v] : series) {
    if (key.rfind("gen_requests_total|", 0) == 0) {
      requests += v;
      ++request_series;
    } else if (key.rfind("gen_completions_total|", 0) == 0) {
      completions += v;
      ++completion_series;
    }
  }
  REQUIRE(requests == n + 1);
  REQUIRE(request_series == Metrics::kMaxRequestSeries + 1);
  REQUIRE(series.at("gen_requests_total|endpoint=/probe/0|status=404") == 2);
  REQUIRE(series.at("gen_requests_total|endpoint=other|status=404") == 50);
  REQUIRE(completions == 40);
  REQUIRE(completion_series == Metrics::kMaxFinishReasons + 1);
  REQUIRE(series.at("gen_completions_total|finish_reason=other") == 40 - Metrics::kMaxFinishReasons);
}

TEST_CASE("Concurrent updates add up exactly while scrapes run", "[serve][metrics]") {
  Metrics m;
  constexpr int kThreads = 8, kIters = 5000;
  std::atomic<bool> done{false};
  std::vector<std::string> scrapes;  // checked on this thread afterwards: Catch2's REQUIRE is not thread-safe
  std::thread scraper([&] {
    do {
      scrapes.push_back(m.render());
    } while (!done.load() && scrapes.size() < 200);
  });
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&m, t] {
      for (int i = 0; i < kIters; ++i) {
        m.http_request(t % 2 ? "/v1/completions" : "/health", 200 + (i % 2));
        m.completion_started();
        m.completion_finished(i % 3 ? "stop" : "length", 3, 2);
        m.prompt_tokens_cached(1);
        m.observe_ttft(0.5);  // exact in binary: the sums add up exactly
        m.observe_token_latency(0.25);
        m.observe_request_duration(2);
        m.set_queue_depth(t);
        m.set_batch(t, 8);
        if (i % 10 == 0) m.rejected_queue_full();
      }
    });
  }
  for (auto& w : workers) w.join();
  done = true;
  scraper.join();
  check_scrapes(scrapes);

  const auto s = check_exposition(m.render());
  constexpr double total = double(kThreads) * kIters;
  REQUIRE(s.at("gen_requests_total|endpoint=/health|status=200") +
              s.at("gen_requests_total|endpoint=/health|status=201") ==
          total / 2);
  REQUIRE(s.at("gen_requests_total|endpoint=/v1/completions|status=201") == total / 4);
  REQUIRE(s.at("gen_completions_started_total") == total);
  REQUIRE(s.at("gen_completions_total|finish_reason=stop") +
              s.at("gen_completions_total|finish_reason=length") ==
          total);
  REQUIRE(s.at("gen_completions_total|finish_reason=length") == kThreads * ((kIters + 2) / 3));
  REQUIRE(s.at("gen_prompt_tokens_total") == 3 * total);
  REQUIRE(s.at("gen_completion_tokens_total") == 2 * total);
  REQUIRE(s.at("gen_prompt_tokens_cached_total") == total);
  REQUIRE(s.at("gen_requests_rejected_total|reason=queue_full") == kThreads * (kIters / 10));
  REQUIRE(s.at("gen_time_to_first_token_seconds_count") == total);
  REQUIRE(s.at("gen_time_to_first_token_seconds_sum") == 0.5 * total);
  REQUIRE(s.at("gen_time_to_first_token_seconds_bucket|le=0.25") == 0);
  REQUIRE(s.at("gen_time_to_first_token_seconds_bucket|le=0.5") == total);
  REQUIRE(s.at("gen_time_per_output_token_seconds_sum") == 0.25 * total);
  REQUIRE(s.at("gen_request_duration_seconds_sum") == 2 * total);
  REQUIRE(s.at("gen_request_duration_seconds_bucket|le=2.5") == total);
  REQUIRE(s.at("gen_batch_capacity") == 8);
  REQUIRE(s.at("gen_queue_depth") < kThreads);
}
