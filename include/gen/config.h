// ModelConfig: the subset of a Hugging Face GPT-2 config.json that gen needs, validated.
#pragma once
#include <cstdint>
#include <string>

namespace gen {

struct ModelConfig {
  int n_layer = 0;      // L
  int n_head = 0;       // H
  int n_embd = 0;       // C = H * D
  int n_positions = 0;  // maximum context
  int vocab_size = 0;   // V
  float layer_norm_epsilon = 1e-5f;
  std::string activation_function = "gelu_new";
  int eos_token_id = 50256;  // -1: none (config without one and a vocabulary too small for 50256)
  // The tokenizer's ids when the vocabulary is padded past it (nanoGPT and llm.c export 50304 rows for
  // 50257 ids); set by load_model. 0: not padded. Rows at or past it are never drawn or scored.
  int tokenizer_vocab = 0;

  // Ids that can be drawn or scored: the tokenizer's when padded, else vocab_size.
  int usable_vocab() const {
    return tokenizer_vocab > 0 && tokenizer_vocab < vocab_size ? tokenizer_vocab : vocab_size;
  }

  int head_dim() const { return n_embd / n_head; }  // D
  // Number of parameters (the LM head is tied to wte, so not counted twice).
  int64_t n_params() const;
  // What the CPU's Linear layers hold: the layers' four matrices and the tied LM head (parameters), and
  // their output columns (one int8 scale each). The rest of n_params() is embeddings, norms and biases.
  int64_t matrix_params() const;
  int64_t matrix_columns() const;

  // Parses and validates config.json text. `where` names the file in error messages.
  // Throws InputError on malformed JSON, missing, mistyped or absurd fields (zero or negative sizes,
  // n_embd not divisible by n_head, products that overflow), and unsupported activation functions.
  static ModelConfig parse(const std::string& json_text, const std::string& where);
  static ModelConfig load(const std::string& path);  // reads the file, then parse()
  // The published shapes of gpt2, gpt2-medium, gpt2-large and gpt2-xl; throws InputError otherwise.
  static ModelConfig builtin(const std::string& name);
};

}  // namespace gen
