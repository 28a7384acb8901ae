#include "serve/engine.h"

#include <iostream>

#include "gen/device.h"
#include "gen/error.h"
#include "gen/kv_file.h"
#include "gen/perplexity.h"
#include "gen/prefix_cache.h"
#include "serve/request.h"

namespace gen::serve {

namespace {
double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
}  // namespace

// ---- Job ---------------------------------------------------------------------------------------------

std::vector<SeqEvent> Job::wait(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(m_);
  cv_.wait_for(lock, timeout, [&] { return !events_.empty() || remaining_.load() == 0; });
  std::vector<SeqEvent> out(std::make_move_iterator(events_.begin()), std::make_move_iterator(events_.end()));
  events_.clear();
  return out;
}

void Job::push(SeqEvent&& e) {
  bool wake = e.done || !woken_;
  {
    std::lock_guard<std::mutex> lock(m_);
    const bool ends = e.done;
    events_.push_back(std::move(e));
    if (ends) remaining_.fetch_sub(1);
    const auto now = Clock::now();
    wake = wake || now - last_wake_ >= wake_interval;
    if (wake) {
      last_wake_ = now;
      woken_ = true;
    }
  }
  if (wake) cv_.notify_all();
}

void Job::fail_all(const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(m_);
    failure_ = reason;
    remaining_.store(0);
  }
  cv_.notify_all();
}

std::string Job::failure() const {
  std::lock_guard<std::mutex> lock(m_);
  return failure_;
}

// ---- Engine ------------------------------------------------------------------------------------------

Engine::Engine(Generator& g, Backend& backend, const EngineOptions& opt, Metrics& metrics, const PrefixCache* prefix)
    : g_(g), backend_(backend), opt_(opt), metrics_(metrics), prefix_(prefix) {
  const ModelConfig& cfg = backend.config();
  kv_bytes_per_position_ = KVCache::bytes_for(cfg.n_layer, cfg.n_embd, 1, 1, kv_dtype_bytes(backend.kv_dtype()));
  kv_bytes_total_ = kv_bytes_per_position_ * size_t(effective_context(cfg, opt.run.max_ctx)) * size_t(opt.batch_size);
  metrics_.set_batch(0, opt_.batch_size);
  metrics_.set_kv_cache(0, kv_bytes_total_);
  if (prefix_) metrics_.set_prefix_cache(0, prefix_->budget_bytes());
}

Engine::~Engine() {
  if (thread_.joinable()) shutdown(std::chrono::milliseconds(0));
}

void Engine::start() { thread_ = std::thread([this] { loop(); }); }

void Engine::loop() {
  set_cpu_threads(opt_.threads);  // OpenMP's thread count is this thread's own setting
  try {
    g_.serve(*this, opt_.run, opt_.batch_size, opt_.step_tokens, callbacks());
  } catch (const std::exception& e) {
    // The model failed (non-finite logits, out of memory): every job still here gets the error.
    std::cerr << "gen serve: the engine stopped: " << e.what() << "\n";
    std::lock_guard<std::mutex> lock(m_);
    closing_ = true;
    for (auto& [index, entry] : live_) entry.job->fail_all(e.what());
    for (auto& [job, choice] : queue_) job->fail_all(e.what());
    live_.clear();
    queue_.clear();
  }
}

RunCallbacks Engine::callbacks() {
  RunCallbacks cb;
  cb.on_token = [this](int i, int t, const TokenLogprob* lp) { on_token(i, t, lp); };
  cb.on_text = [this](int i, const std::string& s) { on_text(i, s); };
  cb.on_done = [this](int i, GenResult&& r) { on_done(i, std::move(r)); };
  cb.on_step = [this](const StepInfo& s) { on_step(s); };
  return cb;
}

void Engine::submit(const std::shared_ptr<Job>& job) {
  const int n = int(job->seqs.size());
  {
    std::lock_guard<std::mutex> lock(m_);
    if (closing_) throw ApiError(503, "the server is shutting down", "", "shutting_down", "server_error");
    if (n > opt_.max_queue) {
      throw ApiError(400, "the request asks for " + std::to_string(n) + " completions; the queue holds " +
                              std::to_string(opt_.max_queue) + " (--max-queue)", "n");
    }
    if (int(queue_.size()) + n > opt_.max_queue) {
      metrics_.rejected_queue_full();
      throw ApiError(503, "the queue is full (" + std::to_string(queue_.size()) + " waiting); retry later", "",
                     "queue_full", "server_error");
    }
    job->start(n);
    for (int c = 0; c < n; ++c) {
      job->seqs[size_t(c)].index = next_index_++;
      job->seqs[size_t(c)].arrived = job->arrived;
      queue_.emplace_back(job, c);
    }
    metrics_.set_queue_depth(int(queue_.size()));
  }
  for (int c = 0; c < n; ++c) metrics_.completion_started();
  cv_.notify_all();
}

bool Engine::accepting() const {
  std::lock_guard<std::mutex> lock(m_);
  return !closing_;
}

int Engine::waiting() const {
  std::lock_guard<std::mutex> lock(m_);
  return int(queue_.size());
}

const Request* Engine::peek(bool wait) {
  std::unique_lock<std::mutex> lock(m_);
  for (;;) {
    // A job whose client left before it started is dropped here.
    while (!queue_.empty() && (queue_.front().first->cancelled() || cancel_all_)) {
      auto [job, choice] = queue_.front();
      queue_.pop_front();
      SeqEvent e;
      e.choice = choice;
      e.done = true;
      e.result.prompt_tokens = job->seqs[size_t(choice)].prompt;
      e.result.finish_reason = "cancelled";
      metrics_.completion_finished("cancelled", 0, 0);
      job->push(std::move(e));
    }
    metrics_.set_queue_depth(int(queue_.size()));
    if (!queue_.empty() && queue_.front().first->score_top >= 0 && !queue_.front().first->scored) {
      score(lock);
      continue;  // the queue may have changed meanwhile
    }
    if (!queue_.empty()) return &queue_.front().first->seqs[size_t(queue_.front().second)];
    if (!wait || closing_) return nullptr;
    cv_.wait(lock);
  }
}

void Engine::score(std::unique_lock<std::mutex>& lock) {
  std::shared_ptr<Job> job = queue_.front().first;
  lock.unlock();  // submits go on meanwhile; only this thread takes from the queue
  std::vector<std::vector<TokenLogprob>> lps;
  for (size_t c = 0; c < job->seqs.size(); ++c) {
    if (size_t(job->prompt_of[c]) == lps.size()) lps.push_back(prompt_logprobs(backend_, job->seqs[c].prompt, job->score_top));
  }
  job->prompt_logprobs = std::move(lps);
  job->scored = true;
  lock.lock();
}

void Engine::pop() {
  std::pair<std::shared_ptr<Job>, int> front;
  {
    std::lock_guard<std::mutex> lock(m_);
    front = std::move(queue_.front());
    queue_.pop_front();
    metrics_.set_queue_depth(int(queue_.size()));
  }
  Entry e;
  e.job = std::move(front.first);
  e.choice = front.second;
  const Request& r = e.job->seqs[size_t(e.choice)];
  e.positions = int(r.prompt.size());
  e.last_token = Clock::now();
  live_.emplace(r.index, std::move(e));
  live_count_.store(int(live_.size()));
}

bool Engine::cancelled(int index) {
  const auto it = live_.find(index);
  if (it == live_.end()) return false;
  std::lock_guard<std::mutex> lock(m_);
  return cancel_all_ || it->second.job->cancelled();
}

void Engine::on_token(int index, int token, const TokenLogprob* lp) {
  Entry& e = live_.at(index);
  const auto now = Clock::now();
  if (e.positions == int(e.job->seqs[size_t(e.choice)].prompt.size())) {
    metrics_.observe_ttft(seconds(now - e.job->arrived));
  } else {
    metrics_.observe_token_latency(seconds(now - e.last_token));
  }
  e.last_token = now;
  ++e.positions;
  e.tokens.push_back(token);
  if (lp) e.logprobs.push_back(*lp);
}

void Engine::on_text(int index, const std::string& text) {
  Entry& e = live_.at(index);
  SeqEvent ev;
  ev.choice = e.choice;
  ev.text = text;
  ev.tokens = std::move(e.tokens);
  ev.logprobs = std::move(e.logprobs);
  e.tokens.clear();
  e.logprobs.clear();
  e.job->push(std::move(ev));
}

void Engine::on_done(int index, GenResult&& r) {
  auto it = live_.find(index);
  Entry& e = it->second;
  metrics_.completion_finished(r.finish_reason, int(r.prompt_tokens.size()), int(r.tokens.size()));
  metrics_.prompt_tokens_cached(r.timing.cached_tokens);
  metrics_.observe_request_duration(seconds(Clock::now() - e.job->arrived));
  SeqEvent ev;
  ev.choice = e.choice;
  ev.tokens = std::move(e.tokens);
  ev.logprobs = std::move(e.logprobs);
  ev.done = true;
  ev.result = std::move(r);
  std::shared_ptr<Job> job = std::move(e.job);
  live_.erase(it);
  live_count_.store(int(live_.size()));
  update_gauges();
  job->push(std::move(ev));
}

void Engine::on_step(const StepInfo&) { update_gauges(); }

void Engine::update_gauges() {
  size_t positions = 0;
  for (const auto& [index, e] : live_) positions += size_t(e.positions);
  metrics_.set_batch(int(live_.size()), opt_.batch_size);
  metrics_.set_kv_cache(positions * kv_bytes_per_position_, kv_bytes_total_);
  if (prefix_) metrics_.set_prefix_cache(size_t(prefix_->blocks()) * prefix_->block_bytes(), prefix_->budget_bytes());
}

void Engine::shutdown(std::chrono::milliseconds grace) {
  {
    std::lock_guard<std::mutex> lock(m_);
    closing_ = true;
  }
  cv_.notify_all();
  const auto deadline = Clock::now() + grace;
  while (Clock::now() < deadline) {
    {
      std::lock_guard<std::mutex> lock(m_);
      if (queue_.empty() && live_count_.load() == 0) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  {
    std::lock_guard<std::mutex> lock(m_);
    cancel_all_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace gen::serve
