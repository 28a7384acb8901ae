// Finding and loading a Hugging Face GPT-2 model directory.
#pragma once
#include <cstddef>
#include <memory>
#include <string>

#include "gen/config.h"
#include "gen/tokenizer.h"

namespace gen {

struct Weights;  // src/model/weights.h: the backends read it, front ends only pass it on

// The four GPT-2 sizes gen knows by name; `--model NAME` means models/NAME.
bool is_known_model_name(const std::string& name);
// `--model` without a leading "models/" (the default "models/gpt2" names gpt2 as well).
std::string model_name(const std::string& model_arg);

// The first of config.json, model.safetensors, vocab.json, merges.txt that `dir` lacks; nullptr when
// it has them all.
const char* missing_model_file(const std::string& dir);
// A directory as given, or a known name looked up in $GEN_MODELS_DIR, ./models and the models/
// folder next to the build directory. A known name's directory counts only when it holds all four
// files: an empty or partial one is "not downloaded" (the same hint as an absent one). Throws
// InputError saying how to get the model when absent.
std::string resolve_model_dir(const std::string& model_arg);

struct Model {
  std::string dir;
  ModelConfig cfg;
  std::shared_ptr<const Weights> weights;
  std::unique_ptr<Tokenizer> tokenizer;
};
// config.json, model.safetensors, vocab.json, merges.txt from `dir`; checks that the tokenizer has
// no more ids than the model's vocab_size. Fewer is a padded vocabulary: cfg.tokenizer_vocab (and the
// weights' cfg) records the tokenizer's size, and the backends never draw or score the padded rows.
Model load_model(const std::string& dir);

}  // namespace gen
