// A model's identity for gen's K/V files: what the K and V of a token depend on besides the token ids
// and the dtype. A file saved from one model is refused by another (gen/kv_file.h).
#pragma once
#include <string>

#include "gen/config.h"

namespace gen {

struct ModelFingerprint {
  // From config.json: the shape.
  int n_layer = 0, n_head = 0, n_embd = 0, n_positions = 0, vocab_size = 0;
  float layer_norm_epsilon = 0;
  // 16 lowercase hex digits each: XXH3-64 of the tensor list (every tensor's name, dtype and shape,
  // in name order, as the safetensors header gives them) and of model.safetensors' bytes.
  std::string tensors;
  std::string weights;
  bool operator==(const ModelFingerprint& o) const;
  bool operator!=(const ModelFingerprint& o) const { return !(*this == o); }
};

// The fingerprint of the model in `model_dir` (its config.json already parsed into `cfg`). Hashing
// model.safetensors reads all of it (GBs for gpt2-xl), so the hash is kept beside the model in
// "model.safetensors.gen-xxh3" with the file's size and modification time, and reused while they
// match. A directory that cannot hold that file is not an error: one note (gen::notify) says the hash
// is computed each run. Throws InputError when model.safetensors cannot be read.
ModelFingerprint model_fingerprint(const std::string& model_dir, const ModelConfig& cfg);

}  // namespace gen
