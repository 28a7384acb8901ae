// Perplexity of a token sequence (gen perplexity): the tokens are cut into non-overlapping windows of
// `context` tokens; each window starts fresh at position 0 (no cache, no overlap with the previous
// one); every token of a window but its first is scored by the logits of the position before it.
// A last, shorter window is scored when it has at least 2 tokens; a last window of 1 token has
// nothing to score and is dropped (docs/decisions.md, "Perplexity").
#pragma once
#include <csignal>
#include <cstddef>
#include <vector>

#include "gen/backend.h"

namespace gen {

struct Window {
  size_t start = 0;  // index of its first token in the sequence
  int len = 0;       // 2..context tokens; len - 1 are scored
};

// The windows of n tokens cut every `context` tokens (see above). Throws InputError when context < 2
// or n < 2.
std::vector<Window> plan_windows(size_t n, int context);

struct PerplexityResult {
  double nll_sum = 0;  // total negative log-likelihood of the scored tokens, nats
  long tokens_scored = 0;
  int windows = 0;  // windows scored
  int windows_planned = 0;
  bool interrupted = false;  // `stop` was set: only the first `windows` were scored
  double nll() const { return tokens_scored > 0 ? nll_sum / double(tokens_scored) : 0.0; }  // mean, nats
  double ppl() const;                                                                       // exp(nll())
};

// Scores `tokens` with the backend's forward_all, several windows per call as long as a call's
// logits (tokens x vocab floats) stay within `max_logits` floats (0: 64 Mi floats = 256 MiB), its
// tokens within max(context, 4096) and its windows within 4096 / n_positions; one window per call at
// least. Log-softmax in double. `stop` is
// read before each call: when it is set the result says `interrupted` and holds the windows done.
// Throws InputError for a context outside 2..n_positions, fewer than 2 tokens, or an id outside the
// vocabulary.
PerplexityResult perplexity(Backend& backend, const std::vector<int>& tokens, int context,
                            const volatile std::sig_atomic_t* stop = nullptr, size_t max_logits = 0);

// The log-probability of each token of `tokens` but the first given the ones before it, with the `top`
// most likely ids at its position (gen serve's echo with logprobs): [tokens.size() - 1] entries, entry i
// for token i + 1. One pass with a cache of tokens.size() positions, `chunk` positions per forward_all
// call (their logits on the host). The tokens must fit the model's n_positions.
std::vector<TokenLogprob> prompt_logprobs(Backend& backend, const std::vector<int>& tokens, int top, int chunk = 64);

// Negative log-likelihood of `target` under softmax(logits), in double: logsumexp(logits) - logits[target].
double token_nll(const float* logits, int V, int target);

}  // namespace gen
