#include "gen/generator.h"

#include <algorithm>
#include <chrono>

#include "gen/error.h"
#include "gen/prefix_cache.h"

namespace gen {

namespace {
using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// True when a stop string ends within the last `added` bytes of text (it was just completed).
bool hits_stop(const std::string& text, size_t added, const std::vector<std::string>& stops) {
  for (const auto& s : stops) {
    if (s.empty() || text.size() < s.size()) continue;
    const size_t from = text.size() >= added + s.size() - 1 ? text.size() - added - s.size() + 1 : 0;
    if (text.find(s, from) != std::string::npos) return true;
  }
  return false;
}

std::string too_long(size_t n, int max_ctx) {
  return "prompt is " + std::to_string(n) + " tokens, longer than the context of " + std::to_string(max_ctx);
}

// Scratch tokens one forward call may need: with a cache, the worst step prefills the B longest
// prompts at once; without one, every live sequence is recomputed whole, up to its final length.
int max_step_tokens(const std::vector<Request>& reqs, int B, int max_ctx, bool use_cache) {
  std::vector<int> n;
  n.reserve(reqs.size());
  for (const auto& r : reqs) {
    const long full = long(r.prompt.size()) + std::max(r.opt.max_new_tokens, 0);
    n.push_back(int(use_cache ? long(r.prompt.size()) : std::min<long>(full, max_ctx)));
  }
  std::partial_sort(n.begin(), n.begin() + std::min<size_t>(B, n.size()), n.end(), std::greater<int>());
  long sum = 0;
  for (size_t i = 0; i < n.size() && i < size_t(B); ++i) sum += n[i];
  return int(std::max(1L, sum));
}

// True when `prompt` shares more whole blocks with one of `others` (prompts prefilled in the coming
// step, whose blocks the prefix cache takes after it) than the `cached` tokens it can copy now.
bool shares_uncached(const std::vector<int>& prompt, int cached, const std::vector<const std::vector<int>*>& others) {
  for (const auto* o : others) {
    const size_t n = common_prefix(prompt, *o, prompt.size() - 1);
    if (int(n / PrefixCache::kBlock * PrefixCache::kBlock) > cached) return true;
  }
  return false;
}

// One sequence in the batch: its tokens so far, how many of them the cache holds, and its result.
struct Live {
  const Request* req = nullptr;
  Clock::time_point t0;  // its times count from here (its arrival, or the run's start)
  int slot = 0;
  std::vector<int> seq;  // prompt + generated
  int computed = 0;      // leading positions of seq whose K and V are in the cache
  bool done = false;
  Utf8Stream stream;
  GenResult res;
};

// A run's fixed list of requests as a source: taken in order, never cancelled.
class VectorSource : public RequestSource {
 public:
  explicit VectorSource(const std::vector<Request>& r) : r_(r) {}
  const Request* peek(bool) override { return next_ < r_.size() ? &r_[next_] : nullptr; }
  void pop() override { ++next_; }
  bool cancelled(int) override { return false; }

 private:
  const std::vector<Request>& r_;
  size_t next_ = 0;
};

void check_batch_size(int batch_size) {
  if (batch_size < 1) throw InputError("--batch-size " + std::to_string(batch_size) + " must be >= 1", "--batch-size");
}

void check_prompts(const std::vector<Request>& requests, int max_ctx) {
  for (const auto& r : requests) {
    if (r.prompt.empty()) throw Error("generate: empty prompt");
    if (int(r.prompt.size()) > max_ctx) throw InputError(too_long(r.prompt.size(), max_ctx), "prompt");
  }
}

}  // namespace

size_t common_prefix(const std::vector<int>& a, const std::vector<int>& b, size_t limit) {
  limit = std::min({limit, a.size(), b.size()});
  size_t n = 0;
  while (n < limit && a[n] == b[n]) ++n;
  return n;
}

int effective_context(const ModelConfig& cfg, int requested) {
  if (requested < 0 || requested > cfg.n_positions) {
    throw InputError("--ctx " + std::to_string(requested) + " is out of range: must be in 0.." +
                         std::to_string(cfg.n_positions) + " (0: the model's n_positions)",
                     "--ctx");
  }
  return requested == 0 ? cfg.n_positions : requested;
}

Generator::Generator(Backend& backend, const Tokenizer& tokenizer) : backend_(backend), tok_(tokenizer) {
  for (int id = 0; id < tok_.vocab_size(); ++id) max_token_bytes_ = std::max(max_token_bytes_, tok_.token_bytes(id).size());
}

void Generator::set_prefix_cache(PrefixCache* cache) {
  if (cache && &cache->backend() != &backend_) throw Error("the prefix cache belongs to another backend");
  prefix_ = cache;
}

std::vector<int> Generator::encode_prompt(const std::string& text, int max_ctx) const {
  // No token is longer than max_token_bytes_, so a prompt of more bytes than the context times that
  // cannot fit: refused by its length before the tokenizer spends time and memory on it.
  if (text.size() > size_t(max_ctx) * std::max<size_t>(1, max_token_bytes_)) {
    throw InputError("prompt is " + std::to_string(text.size()) + " bytes, more than the context of " +
                         std::to_string(max_ctx) + " tokens can hold (" + std::to_string(max_token_bytes_) +
                         " bytes per token at most)",
                     "prompt");
  }
  std::vector<int> ids = tok_.encode(text);
  if (ids.empty()) {
    if (tok_.eos_id() < 0) throw InputError("empty prompt, and the vocabulary has no <|endoftext|> to start from", "prompt");
    ids.push_back(tok_.eos_id());
  }
  if (int(ids.size()) > max_ctx) throw InputError(too_long(ids.size(), max_ctx), "prompt");
  return ids;
}

// One run of the loop: its cache, the live sequences and the buffers every step reuses, all allocated
// before the first token. Each step admits waiting requests into free slots (continuous batching),
// builds the batch, runs it, and accepts the drawn tokens.
class Generator::Loop {
 public:
  // B slots; a step computes at most step_tokens tokens (with a cache).
  // cache_ctx: the positions a slot of its own cache holds (0: the context; fewer where every request
  // of the run is known to need fewer).
  Loop(Generator& g, RequestSource& source, const GenOptions& run_opt, int B, int step_tokens,
       const RunCallbacks& cb, Session* session, int cache_ctx = 0);
  int run();

 private:
  void admit();
  void drop_cancelled();
  void step(int step);
  int build_step();  // returns the tokens the step computes
  void accept(double ms, StepInfo& info);
  void accept_token(Live& L, int tok);
  void finish(Live& L, const char* reason);

  Generator& g_;
  RequestSource& src_;
  const GenOptions& opt_;
  const RunCallbacks& cb_;
  Session* session_;
  const Clock::time_point t_start_ = Clock::now();
  int max_ctx_ = 0;
  std::unique_ptr<KVCache> own_cache_;
  KVCache* cache_ = nullptr;
  PrefixCache* prefix_ = nullptr;  // shared prompt blocks (a run with its own cache only)
  std::vector<int> free_slots_;
  std::vector<Live> live_;
  std::vector<SeqInput> batch_;
  std::vector<DrawParams> draws_;
  std::vector<int> next_;  // [B] drawn ids
  std::vector<float> logits_;  // [B][V] when a request of the step wants log-probabilities
  int step_budget_ = 0;        // tokens a step may compute (with a cache)
};

GenResult Generator::generate(const std::vector<int>& prompt, const GenOptions& opt, const TextCallback& on_text,
                              Session* session, const std::function<void(const StepInfo&)>& on_step) {
  std::vector<Request> one(1);
  one[0].prompt = prompt;
  one[0].opt = opt;
  GenResult out;
  RunCallbacks cb;
  if (on_text) cb.on_text = [&](int, const std::string& s) { on_text(s); };
  cb.on_done = [&](int, GenResult&& r) { out = std::move(r); };
  cb.on_step = on_step;
  const int max_ctx = effective_context(backend_.config(), opt.max_ctx);
  check_prompts(one, max_ctx);
  VectorSource src(one);
  Loop(*this, src, opt, 1, max_step_tokens(one, 1, max_ctx, opt.use_cache), cb, opt.use_cache ? session : nullptr).run();
  if (out.finish_reason.empty()) {  // stopped before the prompt was admitted
    out.prompt_tokens = prompt;
    out.finish_reason = "interrupted";
  }
  return out;
}

int Generator::run(const std::vector<Request>& requests, const GenOptions& run_opt, int batch_size,
                   const RunCallbacks& cb) {
  const int max_ctx = effective_context(backend_.config(), run_opt.max_ctx);
  check_batch_size(batch_size);
  check_prompts(requests, max_ctx);
  const int B = std::max(1, std::min<int>(batch_size, int(requests.size())));
  VectorSource src(requests);
  // No sequence of the run outgrows its prompt and token budget: a cache of that many positions (less
  // memory, and fewer pages to fault in).
  long need = 1;
  for (const Request& r : requests) need = std::max(need, long(r.prompt.size()) + std::max(0, r.opt.max_new_tokens));
  return Loop(*this, src, run_opt, B, max_step_tokens(requests, B, max_ctx, run_opt.use_cache), cb, nullptr,
              int(std::min<long>(need, max_ctx)))
      .run();
}

int Generator::serve(RequestSource& source, const GenOptions& run_opt, int batch_size, int step_tokens,
                     const RunCallbacks& cb) {
  const int max_ctx = effective_context(backend_.config(), run_opt.max_ctx);
  check_batch_size(batch_size);
  if (!run_opt.use_cache) throw InputError("serving needs the KV cache", "--no-cache");
  // Any prompt fits in a step beside the B - 1 other sequences' one token each.
  step_tokens = std::max(step_tokens, max_ctx + batch_size);
  return Loop(*this, source, run_opt, batch_size, step_tokens, cb, nullptr).run();
}

Generator::Loop::Loop(Generator& g, RequestSource& source, const GenOptions& run_opt, int B, int step_tokens,
                      const RunCallbacks& cb, Session* session, int cache_ctx)
    : g_(g), src_(source), opt_(run_opt), cb_(cb), session_(session), step_budget_(step_tokens) {
  const ModelConfig& cfg = g_.backend_.config();
  max_ctx_ = effective_context(cfg, run_opt.max_ctx);
  if (session_) {
    if (!session_->cache || session_->cache->max_ctx() != max_ctx_) {
      session_->cache = g_.backend_.make_cache(1, max_ctx_);
      session_->tokens.clear();
    }
    cache_ = session_->cache.get();
  } else if (run_opt.use_cache) {
    own_cache_ = g_.backend_.make_cache(B, cache_ctx > 0 ? std::min(cache_ctx, max_ctx_) : max_ctx_);
    cache_ = own_cache_.get();
    prefix_ = g_.prefix_;
  }
  g_.backend_.reserve(step_tokens);
  for (int s = B - 1; s >= 0; --s) free_slots_.push_back(s);
  live_.reserve(B);
  next_.resize(B);
}

int Generator::Loop::run() {
  int step = 0;
  for (;; ++step) {
    if (opt_.stop && *opt_.stop) {
      for (auto& L : live_) finish(L, "interrupted");
      break;
    }
    drop_cancelled();
    admit();
    if (live_.empty()) break;
    this->step(step);
  }
  return step;
}

// Ends the live requests the source cancels (a client that went away), freeing their slots.
void Generator::Loop::drop_cancelled() {
  bool any = false;
  for (auto& L : live_) {
    if (src_.cancelled(L.req->index)) {
      finish(L, "cancelled");
      free_slots_.push_back(L.slot);
      any = true;
    }
  }
  if (any) live_.erase(std::remove_if(live_.begin(), live_.end(), [](const Live& L) { return L.done; }), live_.end());
}

void Generator::Loop::step(int step) {
  const int new_tokens = build_step();
  const auto t_step = Clock::now();
  const bool want_lp = std::any_of(live_.begin(), live_.end(), [](const Live& L) { return L.req->opt.logprobs >= 0; });
  if (want_lp) {
    logits_.resize(live_.size() * size_t(g_.backend_.config().vocab_size));
    g_.backend_.forward_sample_logits(batch_, cache_, draws_, next_.data(), logits_.data());
  } else {
    g_.backend_.forward_sample(batch_, cache_, draws_, next_.data());
  }
  StepInfo info{step, int(live_.size()), 0, new_tokens, ms_since(t_step)};
  accept(info.ms, info);
  if (cb_.on_step) cb_.on_step(info);
  for (const Live& L : live_) {
    if (L.done) free_slots_.push_back(L.slot);
  }
  live_.erase(std::remove_if(live_.begin(), live_.end(), [](const Live& L) { return L.done; }), live_.end());
}

void Generator::Loop::finish(Live& L, const char* reason) {
  L.res.finish_reason = reason;
  const std::string tail = L.stream.flush();
  if (!tail.empty()) {
    L.res.text += tail;
    if (cb_.on_text) cb_.on_text(L.req->index, tail);
  }
  if (cache_) {
    L.res.kv_bytes_allocated = cache_->bytes();
    L.res.kv_bytes_used = cache_->bytes_for_positions(size_t(L.computed));
  }
  L.res.timing.total_ms = ms_since(L.t0);
  if (session_) session_->tokens.assign(L.seq.begin(), L.seq.begin() + L.computed);
  L.done = true;
  if (cb_.on_done) cb_.on_done(L.req->index, std::move(L.res));
}

void Generator::Loop::admit() {
  // The prompts admitted now are prefilled in the coming step. A request that shares blocks with one
  // of them beyond what the prefix cache holds waits: after the step it copies them instead.
  std::vector<const std::vector<int>*> prefilling;
  int tokens = int(live_.size());  // the step's tokens so far: one per live sequence
  while (!free_slots_.empty()) {
    const Request* next = src_.peek(live_.empty());
    if (!next) break;
    const Request& r = *next;
    if (r.prompt.empty()) throw Error("generate: empty prompt");
    const int reuse = prefix_ ? prefix_->match(r.prompt, int(r.prompt.size()) - 1) : 0;
    if (prefix_ && prefix_->capacity() > 0 && shares_uncached(r.prompt, reuse, prefilling)) break;
    if (cache_ && !live_.empty() && tokens + int(r.prompt.size()) - reuse > step_budget_) break;  // next step
    src_.pop();
    live_.emplace_back();
    Live& L = live_.back();
    L.req = &r;
    L.t0 = r.arrived != Clock::time_point{} ? r.arrived : t_start_;
    L.seq = r.prompt;
    L.seq.reserve(max_ctx_);
    L.res.prompt_tokens = r.prompt;
    L.res.tokens.reserve(std::max(0, std::min(r.opt.max_new_tokens, max_ctx_)));
    L.res.timing.queue_ms = ms_since(L.t0);
    if (r.opt.max_new_tokens <= 0 || int(r.prompt.size()) >= max_ctx_) {
      finish(L, r.opt.max_new_tokens > 0 ? "context" : "length");
      live_.pop_back();
      continue;
    }
    L.slot = free_slots_.back();
    free_slots_.pop_back();
    if (session_) {  // reuse the cached prefix, leaving at least one token to compute
      L.computed = int(common_prefix(session_->tokens, r.prompt, r.prompt.size() - 1));
    } else if (reuse > 0) {
      prefix_->load(r.prompt, reuse, *cache_, L.slot);
      L.computed = reuse;
    }
    L.res.timing.cached_tokens = L.computed;
    tokens += int(r.prompt.size()) - L.computed;
    if (prefix_) prefilling.push_back(&r.prompt);
  }
}

int Generator::Loop::build_step() {
  const size_t n_live = live_.size();
  batch_.resize(n_live);
  draws_.resize(n_live);
  int new_tokens = 0;
  for (size_t i = 0; i < n_live; ++i) {
    const Live& L = live_[i];
    SeqInput& s = batch_[i];
    s.slot = L.slot;
    const int from = cache_ ? L.computed : 0;
    s.tokens.assign(L.seq.begin() + from, L.seq.end());
    s.pos0 = from;
    new_tokens += int(s.tokens.size());
    // The draw of token k of a request depends only on (seed, k, logits): the same whatever the batch.
    draws_[i] = DrawParams{L.req->opt.sampling, L.req->opt.seed, int(L.res.tokens.size())};
  }
  return new_tokens;
}

void Generator::Loop::accept(double ms, StepInfo& info) {
  for (size_t i = 0; i < live_.size(); ++i) {
    Live& L = live_[i];
    Timing& t = L.res.timing;
    if (L.res.tokens.empty()) {
      t.prefill_ms = ms;
      t.ttft_ms = ms_since(L.t0);
      t.prefill_tokens = int(batch_[i].tokens.size());
      // The prompt's K/V are all in the slot now (seq is still the prompt): its blocks for later requests.
      if (prefix_) prefix_->store(L.seq, int(L.seq.size()), *cache_, L.slot);
    } else {
      t.decode_ms += ms;
      ++t.decode_steps;
    }
    L.computed = int(L.seq.size());
    info.context = std::max(info.context, L.computed);
    const TokenLogprob* lp = nullptr;
    if (L.req->opt.logprobs >= 0) {
      const int V = g_.backend_.config().vocab_size;
      L.res.logprobs.push_back(token_logprob(&logits_[i * size_t(V)], g_.backend_.config().usable_vocab(), next_[i],
                                             L.req->opt.logprobs));
      lp = &L.res.logprobs.back();
    }
    if (cb_.on_token) cb_.on_token(L.req->index, next_[i], lp);
    accept_token(L, next_[i]);
  }
}

void Generator::Loop::accept_token(Live& L, int tok) {
  const Request& r = *L.req;
  L.res.tokens.push_back(tok);
  L.seq.push_back(tok);
  if (tok == (r.opt.ignore_eos ? -1 : g_.backend_.config().eos_token_id)) return finish(L, "eos");
  const std::string piece = L.stream.push(g_.tok_.token_bytes(tok));
  if (!piece.empty()) {
    L.res.text += piece;
    if (cb_.on_text) cb_.on_text(r.index, piece);
  }
  if (!piece.empty() && hits_stop(L.res.text, piece.size(), r.opt.stop_strings)) {
    finish(L, "stop");
  } else if (int(L.res.tokens.size()) >= r.opt.max_new_tokens) {
    finish(L, "length");
  } else if (int(L.seq.size()) >= max_ctx_) {
    finish(L, "context");
  }
}

}  // namespace gen
