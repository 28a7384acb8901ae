// The Generator owns the loop: prefill, decode, stop conditions, timing, streaming. Backend-agnostic.
#pragma once
#include <csignal>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "gen/backend.h"
#include "gen/sampler.h"
#include "gen/tokenizer.h"

namespace gen {

struct GenOptions {
  int max_new_tokens = 128;
  SamplingParams sampling;
  uint64_t seed = 0;
  bool use_cache = true;
  bool ignore_eos = false;
  int max_ctx = 0;  // 0: the model's n_positions
  // Checked before each step: when it reads true the run ends with finish_reason "interrupted"
  // (set from a SIGINT handler; what was generated is kept).
  const volatile std::sig_atomic_t* stop = nullptr;
};

struct Timing {
  double load_ms = 0;     // filled by the caller (model loading is not the generator's)
  double prefill_ms = 0;  // the first forward pass over the prompt, with its draw
  double ttft_ms = 0;     // prefill plus sampling of the first token
  double decode_ms = 0;   // every later step (forward + sampling)
  double total_ms = 0;
  int prefill_tokens = 0;
  int decode_steps = 0;
  double prefill_tokens_per_s() const { return prefill_ms > 0 ? prefill_tokens * 1e3 / prefill_ms : 0; }
  double decode_tokens_per_s() const { return decode_ms > 0 ? decode_steps * 1e3 / decode_ms : 0; }
};

struct GenResult {
  std::vector<int> prompt_tokens;
  std::vector<int> tokens;     // generated ids; a final EOS is included, as in Hugging Face's output
  std::string text;            // UTF-8 text of `tokens` without the final EOS
  std::string finish_reason;   // "length", "eos", "context" or "interrupted"
  Timing timing;
  size_t kv_bytes_allocated = 0;
  size_t kv_bytes_used = 0;
};

// Called with each piece of complete UTF-8 text as soon as it is known.
using TextCallback = std::function<void(const std::string&)>;

class Generator {
 public:
  Generator(Backend& backend, const Tokenizer& tokenizer) : backend_(backend), tok_(tokenizer) {}
  // Prompt text -> ids: an empty prompt is <|endoftext|>; a prompt longer than the context throws
  // InputError.
  std::vector<int> encode_prompt(const std::string& text, int max_ctx) const;
  GenResult generate(const std::vector<int>& prompt, const GenOptions& opt, const TextCallback& on_text = {});

 private:
  Backend& backend_;
  const Tokenizer& tok_;
};

// The context a run uses: opt.max_ctx when set (checked against n_positions), else n_positions.
int effective_context(const ModelConfig& cfg, int requested);

}  // namespace gen
