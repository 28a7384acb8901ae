// gen-make-model: writes a random-weight GPT-2 checkpoint in the Hugging Face layout, for tests and
// benchmarks on machines that cannot download one.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "gen/device.h"
#include "gen/error.h"
#include "model/model_maker.h"

int main(int argc, char** argv) {
  gen::MakeModelSpec spec;
  auto& c = spec.cfg;
  c.n_layer = 2;
  c.n_head = 4;
  c.n_embd = 64;
  c.n_positions = 256;
  c.vocab_size = 50257;
  std::string out, dtype = "F32";
  CLI::App app{"gen-make-model: a random GPT-2 checkpoint in the Hugging Face layout"};
  app.add_option("--out", out, "output directory")->required();
  app.add_option("--layers", c.n_layer);
  app.add_option("--heads", c.n_head);
  app.add_option("--embd", c.n_embd);
  app.add_option("--positions", c.n_positions);
  app.add_option("--vocab", c.vocab_size);
  app.add_option("--eos", c.eos_token_id, "EOS id (default 50256)");
  app.add_option("--dtype", dtype)->check(CLI::IsMember({"F32", "F16", "BF16"}));
  app.add_option("--seed", spec.seed);
  app.add_option("--std", spec.init_std, "standard deviation of the weight matrices");
  app.add_option("--tokenizer", spec.tokenizer_dir, "copy vocab.json and merges.txt from this directory");
  app.add_option("--tokenizer-vocab", spec.tokenizer_vocab,
                 "ids of the stand-in tokenizer (default --vocab); fewer pads the vocabulary, as nanoGPT's 50304");
  app.add_flag("--outliers{3}", spec.outliers,
               "residual channels in the thousands, as real GPT-2 has (--outliers: 3; --outliers=N: N)");
  bool bare = false;
  app.add_flag("--no-prefix", bare, "tensor names without 'transformer.'");
  CLI11_PARSE(app, argc, argv);
  spec.prefix = !bare;
  spec.dtype = dtype == "F16" ? gen::DType::F16 : dtype == "BF16" ? gen::DType::BF16 : gen::DType::F32;
  const int ids = spec.tokenizer_vocab > 0 ? spec.tokenizer_vocab : c.vocab_size;
  if (c.eos_token_id >= ids) c.eos_token_id = ids - 1;  // the stand-in tokenizer's <|endoftext|>
  try {
    gen::set_cpu_threads(0);  // not the environment's OMP_NUM_THREADS
    gen::ModelConfig::parse(gen::config_json(c), "gen-make-model flags");  // same checks as loading
    gen::outlier_channels(c, spec.outliers);                               // --outliers in range
    gen::make_random_model(out, spec);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  return 0;
}
