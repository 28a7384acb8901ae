// --prompt-cache FILE for a single prompt, as llama.cpp's flag: when FILE holds the K/V of a prefix of
// this prompt, for the same model and dtype, they are loaded and only the rest is prefilled; after the
// run the prompt's K/V are saved to FILE (atomically), unless FILE already held this very prompt.
#pragma once
#include <string>
#include <vector>

#include "gen/backend.h"
#include "gen/config.h"
#include "gen/fingerprint.h"
#include "gen/generator.h"

namespace gen {

class PromptCache {
 public:
  // Before the model loads: refuses a FILE that could not be written (InputError).
  explicit PromptCache(std::string path);
  // The session the run starts from: FILE's ids and K/V as far as they equal the prompt's (all but the
  // prompt's last token, which must be computed for its logits), or an empty session when FILE does
  // not exist. A FILE of another model, dtype or kind, or a truncated or corrupted one, is InputError.
  Session load(Backend& backend, const std::string& model_dir, const ModelConfig& cfg,
               const std::vector<int>& prompt, int max_ctx);
  double load_ms() const { return load_ms_; }  // fingerprint, read, checks and upload
  // After the run: saves the prompt's K/V when the session holds them all.
  void save(Backend& backend, const std::vector<int>& prompt, const Session& session);
  std::string summary() const;  // one line for stderr: what was reused and saved

 private:
  std::string path_;
  std::string model_dir_;
  ModelConfig cfg_;
  ModelFingerprint model_;
  bool have_model_ = false;
  std::vector<int> file_tokens_;  // what FILE held (empty: no file)
  int reused_ = 0, saved_ = 0;
  bool rewrite_needless_ = false;
  double load_ms_ = 0;
};

}  // namespace gen
