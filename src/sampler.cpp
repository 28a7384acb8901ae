#include "gen/sampler.h"

#include <algorithm>
#include <cmath>

namespace gen {

namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

Rng::Rng(uint64_t seed) {
  for (auto& s : s_) s = splitmix64(seed);
}

uint64_t Rng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform() { return double(next() >> 11) * 0x1.0p-53; }

int argmax(const float* logits, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i) {
    if (logits[i] > logits[best]) best = i;  // strict: ties keep the lowest id
  }
  return best;
}

int sample(const float* logits, int n, const SamplingParams& p, Rng& rng, SampleScratch& scratch) {
  if (p.temperature <= 0.0f) return argmax(logits, n);
  // (logit / T, id), highest first; ties by lowest id so the order is total and portable.
  auto& work = scratch.cand;
  work.resize(n);
  for (int i = 0; i < n; ++i) work[i] = {logits[i] / p.temperature, i};
  auto higher = [](const std::pair<float, int>& a, const std::pair<float, int>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  int keep = n;
  if (p.top_k > 0 && p.top_k < n) {
    keep = p.top_k;
    std::partial_sort(work.begin(), work.begin() + keep, work.end(), higher);
  } else {
    std::sort(work.begin(), work.end(), higher);
  }
  // Softmax over the survivors, in double so that top-p's cumulative sum is stable.
  const double mx = work[0].first;
  auto& probs = scratch.probs;
  probs.clear();
  double sum = 0;
  for (int i = 0; i < keep; ++i) {
    probs.push_back(std::exp(double(work[i].first) - mx));
    sum += probs.back();
  }
  if (p.top_p < 1.0f) {
    // Smallest prefix whose mass reaches top_p (at least one token), as Hugging Face's TopPLogitsWarper.
    double cum = 0;
    int cut = 0;
    while (cut < keep) {
      cum += probs[cut] / sum;
      ++cut;
      if (cum >= p.top_p) break;
    }
    keep = cut;
    sum = 0;
    for (int i = 0; i < keep; ++i) sum += probs[i];
  }
  double r = rng.uniform() * sum;
  for (int i = 0; i < keep; ++i) {
    r -= probs[i];
    if (r < 0) return work[i].second;
  }
  return work[keep - 1].second;
}

}  // namespace gen
