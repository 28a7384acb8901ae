// libFuzzer target: arbitrary bytes as a safetensors file image to gen::parse_safetensors.
// InputError is the contract for bad input; any other exception escapes and aborts (a finding).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "gen/error.h"
#include "model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto tensors = gen::parse_safetensors(data, size, "fuzz");
    // Whatever was accepted must lie inside the input and agree with its own description, and the
    // tensors must cover the data section exactly (no gap, no tail): their bytes add up to it.
    uint64_t header = 0;
    std::memcpy(&header, data, 8);
    size_t covered = 0;
    for (const auto& [name, t] : tensors) covered += t.nbytes;
    if (covered != size - 8 - header) abort();
    for (const auto& [name, t] : tensors) {
      if (name != t.name) abort();
      if (t.data < data || t.nbytes > size || t.data + t.nbytes > data + size) abort();
      if (t.numel() < 0 || size_t(t.numel()) * gen::dtype_size(t.dtype) != t.nbytes) abort();
      // Touch the bytes so ASan checks the range.
      volatile uint8_t sink = 0;
      for (size_t i = 0; i < t.nbytes; ++i) sink ^= t.data[i];
      (void)sink;
    }
  } catch (const gen::InputError&) {
    return 0;
  }
  return 0;
}
