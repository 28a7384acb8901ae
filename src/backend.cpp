#include "gen/backend.h"

#include "gen/error.h"

namespace gen {

size_t KVCache::bytes_used() const {
  size_t positions = 0;
  for (int n : len_) positions += size_t(n);
  return size_t(2) * n_layer_ * positions * n_embd_ * elem_;
}

void Backend::forward_sample(const std::vector<SeqInput>& batch, KVCache* cache, const std::vector<DrawParams>& draws,
                             int* tokens_out) {
  if (draws.size() != batch.size()) throw Error("forward_sample: one DrawParams per sequence is needed");
  const int V = config().vocab_size;
  logits_.resize(batch.size() * size_t(V));
  forward(batch, cache, logits_.data());
  for (size_t i = 0; i < batch.size(); ++i) {
    const DrawParams& d = draws[i];
    tokens_out[i] = sample(&logits_[i * size_t(V)], V, d.sampling, d.seed, d.step, scratch_);
  }
}

}  // namespace gen
