// Sampling: pure functions over one sequence's logits. The draw is stateless: token number `step` of a
// sequence depends only on (seed, step, logits), with the algorithm of engine/sample_rng.h, the exact
// twin of the CUDA kernel gen::cuda::sample.
#pragma once
#include <cstdint>
#include <vector>

namespace gen {

struct SamplingParams {
  float temperature = 1.0f;  // 0: greedy (argmax, ties to the lowest id)
  int top_k = 0;             // 0: off
  float top_p = 1.0f;        // 1: off
};

int argmax(const float* logits, int n);
// False when some logit of [0, n) is NaN or +-Inf. The CPU twin of the check gen::cuda::sample makes
// with check_finite (a model whose numbers overflowed must stop, not draw from NaN).
bool logits_finite(const float* logits, int n);
// Scratch reused across calls, so the generation loop does not allocate once it has grown.
struct SampleScratch {
  std::vector<float> z;     // [n] logit / T
  std::vector<float> kept;  // z values that survive top-k, for top-k's selection and top-p's sort
};
// Temperature, then top-k, then top-p over the survivors (Hugging Face's warper order), then a Gumbel-max
// draw from the stream of (seed, step). See engine/sample_rng.h for the exact definition.
// One token's log-probability and, most likely first (ties: the lower id), the top ids'.
struct TokenLogprob {
  int token = 0;
  float logprob = 0;
  std::vector<std::pair<int, float>> top;
};
// The log-softmax of logits[0, n) (summed in double) at `token`, and the `top` most likely ids (0: none).
TokenLogprob token_logprob(const float* logits, int n, int token, int top);

int sample(const float* logits, int n, const SamplingParams& p, uint64_t seed, int step,
           SampleScratch& scratch);

}  // namespace gen
