// Sampling: pure functions over one sequence's logits, with an explicit seeded RNG.
#pragma once
#include <cstdint>
#include <vector>

namespace gen {

struct SamplingParams {
  float temperature = 1.0f;  // 0: greedy (argmax, ties to the lowest id)
  int top_k = 0;             // 0: off
  float top_p = 1.0f;        // 1: off
};

// SplitMix64-seeded xoshiro256**: portable, so a seed gives the same draws on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next();
  double uniform();  // [0, 1)

 private:
  uint64_t s_[4];
};

int argmax(const float* logits, int n);
// Scratch reused across calls, so the generation loop does not allocate once it has grown.
struct SampleScratch {
  std::vector<std::pair<float, int>> cand;  // (logit / T, id)
  std::vector<double> probs;
};
// temperature, then top-k, then top-p over the survivors (Hugging Face's warper order), then a draw.
int sample(const float* logits, int n, const SamplingParams& p, Rng& rng, SampleScratch& scratch);

}  // namespace gen
