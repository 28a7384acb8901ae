// Writes random-weight GPT-2 checkpoints in the Hugging Face layout (config.json, model.safetensors,
// optionally the tokenizer files), so that tests and benchmarks run without downloading anything.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "gen/config.h"
#include "model/safetensors.h"

namespace gen {

struct MakeModelSpec {
  ModelConfig cfg;
  DType dtype = DType::F32;
  uint64_t seed = 1;
  float init_std = 0.02f;      // matrices ~ N(0, std), layer-norm weights ~ 1 + N(0, 0.1), biases ~ N(0, 0.1)
  bool prefix = true;          // "transformer." names, as GPT2LMHeadModel saves them
  std::string tokenizer_dir;   // copy vocab.json and merges.txt from here; empty: byte_level_tokenizer
  int tokenizer_vocab = 0;     // byte_level_tokenizer's ids (0: vocab_size); fewer pads the vocabulary
  int outliers = 0;            // residual channels driven into the thousands, as GPT-2's (0: none)
};

// --outliers: real GPT-2 carries a few residual channels in the thousands; random weights carry none.
// Each block's MLP adds magnitude / n_layer to each such channel through one hidden unit that is always
// on, so the residual after block l holds magnitude * (l + 1) / n_layer there. The layernorms' gains
// damp those channels and lift the others by the standard deviation the outliers add, so the rest of
// the stream keeps its usual scale after each norm and the logits still depend on the input.
// Magnitudes alternate in sign from 2000 by 1000 each, and the last one makes them sum to zero (two
// or more), so that the norms' mean is not moved. The random weights are drawn as without outliers.
struct OutlierChannel {
  int channel;      // in [0, n_embd)
  float magnitude;  // its value in the residual after the last block (sign included), give or take 10%
  int hidden;       // the MLP hidden unit that writes it, in [0, 4 n_embd)
};
std::vector<OutlierChannel> outlier_channels(const ModelConfig& cfg, int n);

// A stand-in GPT-2 tokenizer for a vocabulary of `vocab_size` (>= 257): ids 0..255 are the 256 byte
// tokens, 256..V-2 merges of two byte tokens, V-1 is <|endoftext|>. Returns {vocab.json, merges.txt}.
std::pair<std::string, std::string> byte_level_tokenizer(int vocab_size);

void make_random_model(const std::string& dir, const MakeModelSpec& spec);
// config.json text in Hugging Face's field names.
std::string config_json(const ModelConfig& cfg);

}  // namespace gen
