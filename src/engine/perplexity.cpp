#include "gen/perplexity.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "gen/error.h"

namespace gen {

namespace {

constexpr size_t kDefaultMaxLogits = size_t(64) << 20;  // floats per call: 256 MiB on the host (and device)
constexpr size_t kMaxCallTokens = 4096;                 // activations stay modest on either backend

// Windows [first, end) of one forward_all call: as many as the bounds allow, at least one. Tokens and
// logits bound the activations; the window count bounds the no-cache attention scratch, which the CUDA
// backend sizes at n_positions per sequence whatever its length.
size_t call_end(const std::vector<Window>& w, size_t first, size_t max_logits, const ModelConfig& cfg,
                int context) {
  const size_t max_tokens = std::max(kMaxCallTokens, size_t(context));
  const size_t max_windows = std::max<size_t>(1, kMaxCallTokens / size_t(cfg.n_positions));
  size_t tokens = 0, end = first;
  while (end < w.size()) {
    const size_t t = tokens + size_t(w[end].len);
    const bool full = t > max_tokens || t * size_t(cfg.vocab_size) > max_logits || end - first >= max_windows;
    if (end > first && full) break;
    tokens = t;
    ++end;
  }
  return end;
}

// Sum of the nll of every scored token of windows [first, end), whose logits are `logits`, rows in
// window order. Per-row values first (in parallel), then summed in order: the same total for any
// thread count.
double score_call(const std::vector<Window>& w, size_t first, size_t end, const std::vector<int>& tokens,
                  const std::vector<float>& logits, int V, std::vector<double>& row_nll) {
  // For row r of a window (its token r), the target is the window's token r + 1; the last row has none.
  std::vector<long> row_of, target_of;  // scored rows of the call and their targets
  long row0 = 0;
  for (size_t i = first; i < end; ++i) {
    for (int r = 0; r + 1 < w[i].len; ++r) {
      row_of.push_back(row0 + r);
      target_of.push_back(tokens[w[i].start + r + 1]);
    }
    row0 += w[i].len;
  }
  const long n = long(row_of.size());
  row_nll.assign(size_t(n), 0.0);
#pragma omp parallel for schedule(static)
  for (long k = 0; k < n; ++k) {
    row_nll[size_t(k)] = token_nll(&logits[size_t(row_of[size_t(k)]) * V], V, int(target_of[size_t(k)]));
  }
  double sum = 0;
  for (double x : row_nll) sum += x;
  return sum;
}

}  // namespace

double PerplexityResult::ppl() const { return std::exp(nll()); }

std::vector<Window> plan_windows(size_t n, int context) {
  if (context < 2)
    throw InputError("--context " + std::to_string(context) + " is too small: at least 2", "--context");
  if (n < 2) {
    throw InputError("the text has " + std::to_string(n) + " token" + (n == 1 ? "" : "s") +
                         ": at least 2 are needed to score one",
                     "");
  }
  std::vector<Window> w;
  for (size_t start = 0; start < n; start += size_t(context)) {
    const int len = int(std::min(size_t(context), n - start));
    if (len >= 2) w.push_back({start, len});  // a last window of 1 token has nothing to score
  }
  return w;
}

double token_nll(const float* logits, int V, int target) {
  double m = logits[0];
  for (int j = 1; j < V; ++j) m = std::max(m, double(logits[j]));
  double s = 0;
  for (int j = 0; j < V; ++j) s += std::exp(double(logits[j]) - m);
  return m + std::log(s) - double(logits[target]);
}

PerplexityResult perplexity(Backend& backend, const std::vector<int>& tokens, int context,
                            const volatile std::sig_atomic_t* stop, size_t max_logits) {
  const ModelConfig& cfg = backend.config();
  if (context < 2 || context > cfg.n_positions) {
    throw InputError("--context " + std::to_string(context) + " is outside 2.." +
                         std::to_string(cfg.n_positions) + " (the model's n_positions)",
                     "--context");
  }
  const int V = cfg.vocab_size;
  // Padded rows are never scored: forward_all gives them -inf, so the normaliser leaves them out too.
  const int ids = cfg.usable_vocab();
  for (size_t i = 0; i < tokens.size(); ++i) {  // all ids before any work: no partial result
    if (tokens[i] < 0 || tokens[i] >= ids) {
      throw InputError("token id " + std::to_string(tokens[i]) + " at " + std::to_string(i) +
                           " is outside [0, " + std::to_string(ids) + ")",
                       "");
    }
  }
  const std::vector<Window> w = plan_windows(tokens.size(), context);
  PerplexityResult res;
  res.windows_planned = int(w.size());
  if (max_logits == 0) max_logits = kDefaultMaxLogits;
  std::vector<SeqInput> batch;
  std::vector<float> logits;    // [call tokens, V]
  std::vector<double> row_nll;  // [scored rows of the call]
  for (size_t first = 0; first < w.size();) {
    if (stop && *stop) {
      res.interrupted = true;
      break;
    }
    const size_t end = call_end(w, first, max_logits, cfg, context);
    batch.clear();
    size_t n = 0;
    for (size_t i = first; i < end; ++i) {
      const auto b = tokens.begin() + long(w[i].start);
      batch.push_back(SeqInput{int(i - first), std::vector<int>(b, b + w[i].len), 0});
      n += size_t(w[i].len);
    }
    logits.resize(n * size_t(V));
    backend.forward_all(batch, nullptr, logits.data());  // no cache: each window from position 0
    res.nll_sum += score_call(w, first, end, tokens, logits, V, row_nll);
    for (size_t i = first; i < end; ++i) res.tokens_scored += w[i].len - 1;
    res.windows += int(end - first);
    first = end;
  }
  return res;
}

std::vector<TokenLogprob> prompt_logprobs(Backend& backend, const std::vector<int>& tokens, int top, int chunk) {
  const ModelConfig& cfg = backend.config();
  const int n = int(tokens.size());
  std::vector<TokenLogprob> out;
  if (n < 2) return out;
  if (n > cfg.n_positions) throw InputError("prompt_logprobs: more tokens than n_positions", "");
  const int V = cfg.vocab_size;
  chunk = std::max(1, chunk);
  auto cache = backend.make_cache(1, n);
  std::vector<SeqInput> batch(1);
  std::vector<float> logits(size_t(std::min(chunk, n)) * size_t(V));
  out.reserve(size_t(n - 1));
  for (int p = 0; p < n - 1; p += chunk) {  // the last token predicts nothing here
    const int len = std::min(chunk, n - 1 - p);
    batch[0].tokens.assign(tokens.begin() + p, tokens.begin() + p + len);
    batch[0].pos0 = p;
    backend.forward_all(batch, cache.get(), logits.data());
    for (int r = 0; r < len; ++r) {
      out.push_back(token_logprob(&logits[size_t(r) * size_t(V)], cfg.usable_vocab(), tokens[size_t(p + r + 1)], top));
    }
  }
  return out;
}

}  // namespace gen
