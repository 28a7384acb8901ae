// libFuzzer target: arbitrary bytes as config.json text to gen::ModelConfig::parse.
// InputError is the contract for bad input; any other exception escapes and aborts (a finding).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "gen/config.h"
#include "gen/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    gen::ModelConfig cfg = gen::ModelConfig::parse(text, "fuzz");
    // An accepted config must satisfy the documented invariants.
    if (cfg.n_layer <= 0 || cfg.n_head <= 0 || cfg.n_embd <= 0 || cfg.n_positions <= 0 ||
        cfg.vocab_size <= 0)
      abort();
    if (cfg.n_embd % cfg.n_head != 0) abort();
    (void)cfg.head_dim();
    (void)cfg.n_params();
  } catch (const gen::InputError&) {
    return 0;
  }
  return 0;
}
