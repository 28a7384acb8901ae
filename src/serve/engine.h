// gen serve's engine: one thread runs the Generator's continuous-batching loop (Generator::serve) over a
// bounded queue that the HTTP threads fill. A Job is one HTTP request: its sequences (prompts x n) and
// what they produced, handed to the HTTP thread that waits on it as events.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "gen/generator.h"
#include "serve/metrics.h"

namespace gen::serve {

using Clock = std::chrono::steady_clock;

// What a sequence of a job produced since the HTTP thread last looked: text pieces with their tokens,
// then its end.
struct SeqEvent {
  int choice = 0;
  std::string text;                     // a piece of complete UTF-8 text ("" at the end)
  std::vector<int> tokens;              // the tokens accepted since the previous event
  std::vector<TokenLogprob> logprobs;   // theirs, when asked
  bool done = false;
  GenResult result;                     // when done (text, tokens, finish_reason, ...)
};

class Job {
 public:
  // One sequence per (prompt, sample): choice c = prompt * n + sample.
  std::vector<Request> seqs;
  std::vector<int> prompt_of;  // [choice] the prompt it belongs to
  Clock::time_point arrived = Clock::now();
  // The waiting thread is woken for an event at most this often (events gather meanwhile), except for
  // the first one and the end of a sequence, which wake it at once. 0: every event wakes it.
  std::chrono::milliseconds wake_interval{0};
  // echo with logprobs: each prompt's own log-probabilities (gen::prompt_logprobs, with score_top
  // alternatives), computed by the engine thread before the job's first sequence starts, so they are
  // there by the first event. -1: not asked.
  int score_top = -1;
  std::vector<std::vector<TokenLogprob>> prompt_logprobs;  // [prompt]
  bool scored = false;                                     // the engine thread's

  // HTTP thread: waits up to `timeout` for events; returns them (empty on timeout).
  std::vector<SeqEvent> wait(std::chrono::milliseconds timeout);
  bool finished() const { return remaining_.load() == 0; }
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }

  // Engine thread. An event with e.done also ends its sequence: finished() turns true with the last
  // one's push, never before the event is there to take.
  void push(SeqEvent&& e);
  void start(int sequences) { remaining_.store(sequences); }
  // Every sequence that never started is reported as ended with `reason` (the engine stopped).
  void fail_all(const std::string& reason);
  std::string failure() const;

 private:
  mutable std::mutex m_;
  std::condition_variable cv_;
  std::deque<SeqEvent> events_;
  Clock::time_point last_wake_{};
  bool woken_ = false;  // any event woke the waiter yet
  std::atomic<int> remaining_{0};
  std::atomic<bool> cancelled_{false};
  std::string failure_;
};

struct EngineOptions {
  int batch_size = 8;
  int max_queue = 256;   // sequences waiting for a slot
  int step_tokens = 0;   // 0: the Generator's minimum (context + batch)
  int threads = 0;       // the engine thread's CPU threads (OpenMP's setting is per thread); 0: all cores
  GenOptions run;        // max_ctx, use_cache
};

class Engine : public RequestSource {
 public:
  // backend: the generator's, for the scoring passes of echo with logprobs (on the engine thread) and
  // the K/V bytes the metrics report.
  Engine(Generator& g, Backend& backend, const EngineOptions& opt, Metrics& metrics, const PrefixCache* prefix);
  ~Engine() override;
  void start();
  // Queues a job's sequences; throws ApiError 503 when the queue is full or the engine stops.
  void submit(const std::shared_ptr<Job>& job);
  // Refuses new jobs, lets the live and waiting ones finish for up to `grace`, then cancels the rest
  // and joins the thread.
  void shutdown(std::chrono::milliseconds grace);
  int waiting() const;
  // False once the engine stopped (shutdown, or the model failed): /health then answers 503.
  bool accepting() const;

  // RequestSource (the engine thread).
  const Request* peek(bool wait) override;
  void pop() override;
  bool cancelled(int index) override;

 private:
  struct Entry {
    std::shared_ptr<Job> job;
    int choice = 0;
    int positions = 0;                 // K/V positions it holds now
    Clock::time_point last_token{};    // for the per-token latency
    std::vector<int> tokens;           // accepted since its last event
    std::vector<TokenLogprob> logprobs;
  };
  void loop();
  RunCallbacks callbacks();
  void on_token(int index, int token, const TokenLogprob* lp);
  void on_text(int index, const std::string& text);
  void on_done(int index, GenResult&& r);
  void on_step(const StepInfo& s);
  void update_gauges();  // batch occupancy and K/V bytes in use
  // Scores the prompts of the job at the queue's front when it asks (unlocking `lock` meanwhile).
  void score(std::unique_lock<std::mutex>& lock);

  Generator& g_;
  Backend& backend_;
  EngineOptions opt_;
  Metrics& metrics_;
  size_t kv_bytes_per_position_;
  size_t kv_bytes_total_;
  const PrefixCache* prefix_;
  mutable std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::pair<std::shared_ptr<Job>, int>> queue_;  // (job, choice) waiting
  bool closing_ = false;
  bool cancel_all_ = false;
  int next_index_ = 0;
  std::unordered_map<int, Entry> live_;  // by Request::index; the engine thread's only
  std::atomic<int> live_count_{0};
  std::thread thread_;
};

}  // namespace gen::serve
