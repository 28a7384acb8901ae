// GPT-2 weights in the Hugging Face layout, checked against the config and converted to fp32 in one
// host allocation. Conv1D weights keep Hugging Face's [in, out] layout, so y = x @ W + b.
// Dimensions: C = n_embd, V = vocab_size, P = n_positions.
#pragma once
#include <string>
#include <vector>

#include "gen/config.h"
#include "model/safetensors.h"

namespace gen {

struct LayerWeights {
  const float* ln1_w;     // [C]
  const float* ln1_b;     // [C]
  const float* qkv_w;     // [C, 3C]  attn.c_attn (fused Q|K|V)
  const float* qkv_b;     // [3C]
  const float* proj_w;    // [C, C]   attn.c_proj
  const float* proj_b;    // [C]
  const float* ln2_w;     // [C]
  const float* ln2_b;     // [C]
  const float* fc_w;      // [C, 4C]  mlp.c_fc
  const float* fc_b;      // [4C]
  const float* fcproj_w;  // [4C, C]  mlp.c_proj
  const float* fcproj_b;  // [C]
};

// Name, shape and place of each tensor a GPT-2 checkpoint must hold, in file-independent order.
struct WeightSpec {
  std::string name;              // without the "transformer." prefix, e.g. "h.0.attn.c_attn.weight"
  std::vector<int64_t> shape;
};
std::vector<WeightSpec> gpt2_weight_specs(const ModelConfig& cfg);

// Finds each spec'd tensor (with or without the "transformer." prefix), checks its shape, and
// rejects tensors it does not know (mask buffers attn.bias / attn.masked_bias and lm_head.weight
// are allowed and skipped). Throws InputError naming the tensor and the file.
std::vector<const TensorView*> match_gpt2_tensors(const SafeTensors& st, const ModelConfig& cfg);

struct Weights {
  ModelConfig cfg;
  std::vector<float> data;  // the one allocation
  const float* wte = nullptr;   // [V, C]  also the LM head (tied)
  const float* wpe = nullptr;   // [P, C]
  const float* lnf_w = nullptr; // [C]
  const float* lnf_b = nullptr; // [C]
  std::vector<LayerWeights> layers;
  DType file_dtype = DType::F32;

  // The pointers above point into `data`: a copy would point into the original, so none is allowed.
  Weights() = default;
  Weights(const Weights&) = delete;
  Weights& operator=(const Weights&) = delete;
  Weights(Weights&&) = default;
  Weights& operator=(Weights&&) = default;

  static Weights load(const SafeTensors& st, const ModelConfig& cfg);
};

}  // namespace gen
