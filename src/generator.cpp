#include "gen/generator.h"

#include <chrono>

#include "gen/error.h"

namespace gen {

namespace {
using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}
}  // namespace

int effective_context(const ModelConfig& cfg, int requested) {
  if (requested < 0 || requested > cfg.n_positions) {
    throw InputError("--ctx " + std::to_string(requested) + " is outside 1.." + std::to_string(cfg.n_positions),
                     "the model's n_positions");
  }
  return requested == 0 ? cfg.n_positions : requested;
}

std::vector<int> Generator::encode_prompt(const std::string& text, int max_ctx) const {
  std::vector<int> ids = tok_.encode(text);
  if (ids.empty()) {
    if (tok_.eos_id() < 0) throw InputError("empty prompt, and the vocabulary has no <|endoftext|> to start from", "prompt");
    ids.push_back(tok_.eos_id());
  }
  if (int(ids.size()) > max_ctx) {
    throw InputError("prompt is " + std::to_string(ids.size()) + " tokens, longer than the context of " +
                         std::to_string(max_ctx),
                     "prompt");
  }
  return ids;
}

GenResult Generator::generate(const std::vector<int>& prompt, const GenOptions& opt, const TextCallback& on_text) {
  const auto t_start = Clock::now();
  const ModelConfig& cfg = backend_.config();
  const int max_ctx = effective_context(cfg, opt.max_ctx);
  if (prompt.empty()) throw Error("generate: empty prompt");
  if (int(prompt.size()) > max_ctx) {
    throw InputError("prompt is " + std::to_string(prompt.size()) + " tokens, longer than the context of " +
                         std::to_string(max_ctx),
                     "prompt");
  }
  GenResult res;
  res.prompt_tokens = prompt;
  const int eos = opt.ignore_eos ? -1 : cfg.eos_token_id;
  // Everything the loop touches is allocated here, before the first token.
  std::unique_ptr<KVCache> cache = opt.use_cache ? backend_.make_cache(1, max_ctx) : nullptr;
  backend_.reserve(opt.use_cache ? int(prompt.size()) : max_ctx);
  std::vector<int> seq = prompt;  // the no-cache path feeds the whole sequence each step
  seq.reserve(max_ctx);
  res.tokens.reserve(opt.max_new_tokens > 0 ? size_t(opt.max_new_tokens) : 0);
  std::vector<SeqInput> batch(1);
  batch[0].tokens.reserve(max_ctx);
  std::vector<DrawParams> draws = {DrawParams{opt.sampling, opt.seed, 0}};
  int next = 0;
  Utf8Stream stream;
  auto emit = [&](const std::string& s) {
    if (s.empty()) return;
    res.text += s;
    if (on_text) on_text(s);
  };

  res.finish_reason = "length";
  if (opt.max_new_tokens > 0 && int(prompt.size()) >= max_ctx) res.finish_reason = "context";
  auto t_step = Clock::now();
  for (int step = 0; step < opt.max_new_tokens && int(seq.size()) < max_ctx; ++step) {
    if (opt.stop && *opt.stop) {
      res.finish_reason = "interrupted";
      break;
    }
    t_step = Clock::now();
    if (opt.use_cache) {
      batch[0].tokens.assign(step == 0 ? seq.begin() : seq.end() - 1, seq.end());
      batch[0].pos0 = int(seq.size() - batch[0].tokens.size());
    } else {
      batch[0].tokens.assign(seq.begin(), seq.end());
      batch[0].pos0 = 0;
    }
    draws[0].step = step;  // the draw of token `step` depends only on (seed, step, logits)
    backend_.forward_sample(batch, cache.get(), draws, &next);
    if (step == 0) res.timing.prefill_ms = ms_since(t_step);
    res.tokens.push_back(next);
    seq.push_back(next);
    if (step == 0) {
      res.timing.ttft_ms = ms_since(t_start);
      res.timing.prefill_tokens = int(prompt.size());
    } else {
      res.timing.decode_ms += ms_since(t_step);
      ++res.timing.decode_steps;
    }
    if (next == eos) {
      res.finish_reason = "eos";
      break;
    }
    emit(stream.push(tok_.token_bytes(next)));
    if (int(seq.size()) >= max_ctx && step + 1 < opt.max_new_tokens) res.finish_reason = "context";
  }
  emit(stream.flush());
  res.kv_bytes_allocated = cache ? cache->bytes() : 0;
  res.kv_bytes_used = cache ? cache->bytes_used() : 0;
  res.timing.total_ms = ms_since(t_start);
  return res;
}

}  // namespace gen
