#include "cli/prompt_cache.h"

#include <algorithm>
#include <chrono>

#include "cli/cli_common.h"
#include "gen/error.h"
#include "gen/generator.h"
#include "gen/kv_file.h"
#include "gen/session_file.h"

namespace gen {

namespace {
using Clock = std::chrono::steady_clock;
}  // namespace

PromptCache::PromptCache(std::string path) : path_(std::move(path)) {
  check_kv_file_writable(path_, "prompt cache");
}

Session PromptCache::load(Backend& backend, const std::string& model_dir, const ModelConfig& cfg,
                          const std::vector<int>& prompt, int max_ctx) {
  const auto t0 = Clock::now();
  model_dir_ = model_dir;
  cfg_ = cfg;
  Session session;
  if (path_exists(path_)) {
    model_ = model_fingerprint(model_dir, cfg);
    have_model_ = true;
    const KvFile f = read_kv_file(path_, "prompt cache");
    check_kv_file_matches(f, "prompt", model_, backend.dtype(), backend.kv_dtype(), path_);
    file_tokens_ = f.tokens;
    // All but the prompt's last token at most: its logits must be computed (the Generator's rule).
    const size_t n = common_prefix(f.tokens, prompt, std::min<size_t>(prompt.size() - 1, size_t(max_ctx)));
    load_session_kv(backend, f, int(n), max_ctx, &session);
    reused_ = int(n);
  }
  load_ms_ = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  return session;
}

void PromptCache::save(Backend& backend, const std::vector<int>& prompt, const Session& session) {
  const int n = int(prompt.size());
  rewrite_needless_ = file_tokens_ == prompt;
  if (!session.cache || int(session.tokens.size()) < n || rewrite_needless_) return;
  if (!std::equal(prompt.begin(), prompt.end(), session.tokens.begin())) throw Error("prompt cache: the session is not this prompt's");
  if (!have_model_) model_ = model_fingerprint(model_dir_, cfg_);
  have_model_ = true;
  KvFile f = kv_file_for(backend, "prompt", model_);
  save_session_kv(backend, session, n, &f);
  write_kv_file(path_, f);
  saved_ = n;
}

std::string PromptCache::summary() const {
  std::string s = "[gen] prompt cache " + path_ + ": ";
  s += file_tokens_.empty() ? "new" : std::to_string(reused_) + " tokens reused (" + std::to_string(int(load_ms_)) + " ms)";
  if (saved_ > 0) {
    s += ", saved " + std::to_string(saved_) + " tokens";
  } else {
    s += rewrite_needless_ ? ", not rewritten (it holds this prompt)" : ", nothing saved (no K/V computed)";
  }
  return s + "\n";
}

}  // namespace gen
