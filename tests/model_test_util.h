// Helpers for the tests of src/model (test_config, test_safetensors, test_weights): an InputError
// matcher and fp32 values packed to / unpacked from a dtype's bytes.
#pragma once
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "gen/error.h"
#include "model/safetensors.h"

namespace gen::test {

// Checks the exception type (InputError, not merely some exception) and a piece of its message.
struct MessageContains : Catch::MatcherBase<InputError> {
  std::string part;
  explicit MessageContains(std::string p) : part(std::move(p)) {}
  bool match(const InputError& e) const override {
    return std::string(e.what()).find(part) != std::string::npos;
  }
  std::string describe() const override { return "message contains \"" + part + "\""; }
};
#define REQUIRE_INPUT_ERROR(expr, part) \
  REQUIRE_THROWS_MATCHES(expr, gen::InputError, gen::test::MessageContains(part))

// v as the bytes of dtype t (rounded to nearest even for F16 and BF16).
inline std::vector<uint8_t> encode(const std::vector<float>& v, DType t) {
  std::vector<uint8_t> out(v.size() * dtype_size(t));
  for (size_t i = 0; i < v.size(); ++i) {
    if (t == DType::F32) {
      std::memcpy(&out[4 * i], &v[i], 4);
    } else {
      const uint16_t h = t == DType::F16 ? float_to_half(v[i]) : float_to_bf16(v[i]);
      std::memcpy(&out[2 * i], &h, 2);
    }
  }
  return out;
}

// Bytes of dtype t as fp32 values, through to_float.
inline std::vector<float> decode(const std::vector<uint8_t>& b, DType t) {
  std::vector<float> out(b.size() / dtype_size(t));
  to_float(t, b.data(), out.size(), out.data());
  return out;
}

}  // namespace gen::test
