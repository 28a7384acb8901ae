// Writes random-weight GPT-2 checkpoints in the Hugging Face layout (config.json, model.safetensors,
// optionally the tokenizer files), so that tests and benchmarks run without downloading anything.
#pragma once
#include <cstdint>
#include <string>

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
};

// A stand-in GPT-2 tokenizer for a vocabulary of `vocab_size` (>= 257): ids 0..255 are the 256 byte
// tokens, 256..V-2 merges of two byte tokens, V-1 is <|endoftext|>. Returns {vocab.json, merges.txt}.
std::pair<std::string, std::string> byte_level_tokenizer(int vocab_size);

void make_random_model(const std::string& dir, const MakeModelSpec& spec);
// config.json text in Hugging Face's field names.
std::string config_json(const ModelConfig& cfg);

}  // namespace gen
