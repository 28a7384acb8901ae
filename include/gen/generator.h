// The Generator owns the loop: prefill, decode, stop conditions, timing, streaming and continuous
// batching. Backend-agnostic.
#pragma once
#include <chrono>
#include <csignal>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "gen/backend.h"
#include "gen/sampler.h"
#include "gen/tokenizer.h"

namespace gen {

// What one prompt asks for. In a batch run (Generator::run) max_new_tokens, sampling, seed and
// ignore_eos are per request; use_cache, max_ctx and stop are the run's (taken from its options).
struct GenOptions {
  int max_new_tokens = 128;
  SamplingParams sampling;
  uint64_t seed = 0;
  bool use_cache = true;
  bool ignore_eos = false;
  // Generation ends (finish_reason "stop") once the text contains one of these; the text keeps it,
  // as Hugging Face's stop_strings does.
  std::vector<std::string> stop_strings;
  int max_ctx = 0;  // 0: the model's n_positions
  // Checked before each step: when it reads true the run ends with finish_reason "interrupted"
  // (set from a SIGINT handler; what was generated is kept).
  const volatile std::sig_atomic_t* stop = nullptr;
  // Per request: -1 none; k >= 0: each generated token's log-probability under the model (log-softmax of
  // the raw logits over the usable ids, before temperature, top-k and top-p) and the k most likely ids'
  // (GenResult::logprobs). The draws are the same as without.
  int logprobs = -1;
};


// Times of one prompt, measured from the start of its run (generate() or run()). In a batch, a
// step's time counts for every sequence in it: per-prompt rates are what each prompt saw, and the
// run's aggregate throughput is tokens over the run's wall time.
struct Timing {
  double load_ms = 0;     // filled by the caller (model loading is not the generator's)
  double queue_ms = 0;    // waiting for a free batch slot (0 in single runs)
  double prefill_ms = 0;  // the step that ran the prompt and drew the first token
  double ttft_ms = 0;     // run start to the first token (queue + prefill)
  double decode_ms = 0;   // every later step (forward + sampling)
  double total_ms = 0;    // run start to the last token
  // Reading a --prompt-cache file before the run (fingerprint, read, checks, copy into the cache);
  // filled by the caller, who adds it to ttft_ms and total_ms: a hit is not faster by leaving it out.
  double prompt_cache_ms = 0;
  int prefill_tokens = 0;  // prompt tokens computed in the prefill
  int cached_tokens = 0;   // prompt tokens whose K and V were reused (a session's cache, the prefix cache)
  int decode_steps = 0;
  double prefill_tokens_per_s() const { return prefill_ms > 0 ? prefill_tokens * 1e3 / prefill_ms : 0; }
  double decode_tokens_per_s() const { return decode_ms > 0 ? decode_steps * 1e3 / decode_ms : 0; }
};

struct GenResult {
  std::vector<int> prompt_tokens;
  std::vector<int> tokens;     // generated ids; a final EOS is included, as in Hugging Face's output
  std::string text;            // UTF-8 text of `tokens` without the final EOS
  std::string finish_reason;   // "length", "eos", "stop", "context", "interrupted" or "cancelled"
  std::vector<TokenLogprob> logprobs;  // one per generated token when GenOptions::logprobs >= 0
  Timing timing;
  size_t kv_bytes_allocated = 0;
  size_t kv_bytes_used = 0;
};

// Called with each piece of complete UTF-8 text as soon as it is known.
using TextCallback = std::function<void(const std::string&)>;

// One prompt of a batch run. `index` is the caller's (the line of a prompts file).
struct Request {
  int index = 0;
  std::vector<int> prompt;  // encoded, 1..context tokens
  GenOptions opt;           // per-request fields only (see GenOptions)
  // When it arrived (a server's request): its Timing counts from here. Unset: from the run's start.
  std::chrono::steady_clock::time_point arrived{};
};

// Where a serving loop (Generator::serve) takes its requests from, polled by the loop's thread before
// each step. Others may add requests to it meanwhile (it locks as it needs).
class RequestSource {
 public:
  virtual ~RequestSource() = default;
  // The next request waiting to start, or nullptr when none waits now. With `wait` (nothing is live)
  // it blocks until one arrives or the source ends; nullptr then ends the loop.
  virtual const Request* peek(bool wait) = 0;
  // The request peek() returned starts. It must stay valid, unchanged, until on_done reports it.
  virtual void pop() = 0;
  // Asked for each live request before each step: true ends it at once, finish_reason "cancelled".
  virtual bool cancelled(int index) = 0;
};

// One forward call of the loop, for --trace: the step's number in the run, the sequences in it, the
// positions the longest one attended over (its length before the step's new token), how many tokens
// the step computed, and its wall time.
struct StepInfo {
  int step = 0;
  int batch = 0;
  int context = 0;
  int new_tokens = 0;
  double ms = 0;
};

struct RunCallbacks {
  // Each generated token as it is accepted (before the text it completes): its log-probabilities when
  // the request asked for them (else nullptr). The final EOS is reported too.
  std::function<void(int index, int token, const TokenLogprob* lp)> on_token;
  std::function<void(int index, const std::string& text)> on_text;  // streamed pieces per request
  std::function<void(int index, GenResult&& result)> on_done;        // as each request finishes
  std::function<void(const StepInfo&)> on_step;
};

// A conversation's KV cache kept across generate() calls (gen chat): the longest prefix of a new
// prompt whose K and V are already cached is reused and only the rest is prefilled. The cache has one
// slot; it is made on first use.
struct Session {
  std::unique_ptr<KVCache> cache;
  std::vector<int> tokens;  // the ids whose K and V the cache holds, positions 0..n-1
};

class PrefixCache;

class Generator {
 public:
  Generator(Backend& backend, const Tokenizer& tokenizer);
  // Shares prompt prefixes among the requests of run() and across runs (gen/prefix_cache.h): a request
  // copies the cached K/V of its prompt's longest cached run of blocks and prefills the rest; after its
  // prefill, its prompt's blocks are added. A request that shares blocks not yet cached with one being
  // prefilled in the same step waits one step, so that the shared part is computed once. nullptr: off.
  // The cache must be for this generator's backend. Not used by generate() (a session keeps its own).
  void set_prefix_cache(PrefixCache* cache);
  // Prompt text -> ids: an empty prompt is <|endoftext|>; a prompt longer than the context throws
  // InputError, before tokenizing when its bytes alone show it cannot fit.
  std::vector<int> encode_prompt(const std::string& text, int max_ctx) const;
  // One prompt. With a session (and opt.use_cache) the cached prefix is reused and the session keeps
  // the cache for the next call.
  GenResult generate(const std::vector<int>& prompt, const GenOptions& opt, const TextCallback& on_text = {},
                     Session* session = nullptr, const std::function<void(const StepInfo&)>& on_step = {});
  // Many prompts, up to batch_size at once (continuous batching: a finished sequence frees its slot
  // and the next waiting request takes it in the next step). Each request gets exactly the tokens it
  // gets alone. on_done is called once per request that finishes; after a stop (run_opt.stop) the
  // live ones finish as "interrupted" and the waiting ones are not reported. Returns the steps run.
  int run(const std::vector<Request>& requests, const GenOptions& run_opt, int batch_size,
          const RunCallbacks& cb);
  // run(), with requests that come from `source` while it runs (gen serve), until the source ends and
  // nothing is live. A step computes at most `step_tokens` tokens (>= the context: any prompt fits), so
  // new prompts wait a step when the ones already admitted fill it. Returns the steps run.
  int serve(RequestSource& source, const GenOptions& run_opt, int batch_size, int step_tokens,
            const RunCallbacks& cb);

 private:
  class Loop;  // one run: admitting requests, building a step, accepting its tokens
  Backend& backend_;
  const Tokenizer& tok_;
  PrefixCache* prefix_ = nullptr;
  size_t max_token_bytes_ = 0;  // the longest token's bytes
};

// The context a run uses: opt.max_ctx when set (checked against n_positions), else n_positions.
int effective_context(const ModelConfig& cfg, int requested);

// Leading tokens a and b share, at most `limit`: what a cache holding `a` can serve of `b`.
size_t common_prefix(const std::vector<int>& a, const std::vector<int>& b, size_t limit);

}  // namespace gen
