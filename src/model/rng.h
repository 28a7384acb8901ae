// The random numbers of the model maker's weights (and of tests that need a portable stream).
#pragma once
#include <cstdint>

namespace gen {

// SplitMix64-seeded xoshiro256**: portable, so a seed gives the same draws on every platform. (The
// sampler draws with the counter-based hash of engine/sample_rng.h instead.)
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next();
  double uniform();  // [0, 1)

 private:
  uint64_t s_[4];
};

}  // namespace gen
