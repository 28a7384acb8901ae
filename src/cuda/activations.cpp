#include "cuda/activations.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <string>

namespace gen::cuda {

// ---- StepIO ---------------------------------------------------------------------------------------------

void StepIO::release() {
  cudaFreeHost(h_ints_);
  cudaFreeHost(h_params_);
  cudaFreeHost(h_tokens_);
  h_ints_ = h_tokens_ = nullptr;
  h_params_ = nullptr;
}

void StepIO::reserve(int T, int B) {
  if (T <= t_cap_ && B <= b_cap_) return;
  T = std::max(T, t_cap_);
  B = std::max(B, b_cap_);
  release();
  t_cap_ = b_cap_ = 0;  // until every allocation below has succeeded (a throw leaves an empty StepIO)
  const size_t n_ints = ints_used(T, B);
  CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&h_ints_), n_ints * sizeof(int)));
  CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&h_params_), B * sizeof(SampleParams)));
  CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&h_tokens_), B * sizeof(int)));
  ints_ = DeviceBuffer<int>(n_ints);
  params_ = DeviceBuffer<SampleParams>(B);
  tokens_ = DeviceBuffer<int>(B);
  t_cap_ = T;
  b_cap_ = B;
}

void StepIO::fill(const std::vector<SeqInput>& batch, bool with_cache, int T) {
  int* h = h_ints_;
  int r = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const SeqInput& s = batch[i];
    for (size_t t = 0; t < s.tokens.size(); ++t, ++r) {
      h[tokens_at(T) + r] = s.tokens[t];
      h[positions_at(T) + r] = s.pos0 + int(t);
      h[slot_at(T) + r] = with_cache ? s.slot : int(i);
    }
    h[last_at(T) + i] = r - 1;
  }
}

void StepIO::set_draws(const std::vector<DrawParams>& draws) {
  for (size_t i = 0; i < draws.size(); ++i) {
    const DrawParams& d = draws[i];
    h_params_[i] = {d.sampling.temperature, d.sampling.top_k, d.sampling.top_p, d.seed, d.step};
  }
}

void StepIO::enqueue_upload(int T, int B, bool with_params, cudaStream_t stream) const {
  CUDA_CHECK(
      cudaMemcpyAsync(ints_.get(), h_ints_, ints_used(T, B) * sizeof(int), cudaMemcpyHostToDevice, stream));
  if (with_params) {
    CUDA_CHECK(
        cudaMemcpyAsync(params_.get(), h_params_, B * sizeof(SampleParams), cudaMemcpyHostToDevice, stream));
  }
}

void StepIO::enqueue_download_tokens(int B, cudaStream_t stream) const {
  CUDA_CHECK(cudaMemcpyAsync(h_tokens_, tokens_.get(), B * sizeof(int), cudaMemcpyDeviceToHost, stream));
}

// ---- Activations --------------------------------------------------------------------------------------

template <typename Elem>
size_t StepBuffers<Elem>::bytes() const {
  size_t n = logits.bytes() + attn_ws.bytes();
  for (const auto* b : {&x, &h, &qkv, &att, &tmp, &f, &last, &lastn}) n += b->bytes();
  return n;
}

template <typename Elem>
Activations<Elem>::Activations(const ModelConfig& cfg, int Vp)
    : C_(cfg.n_embd), H_(cfg.n_head), D_(cfg.head_dim()), Vp_(Vp), P_(cfg.n_positions) {}

template <typename Elem>
void Activations<Elem>::reserve(int T, int B, DecodeGraphs& graphs) {
  if (T <= t_cap_ && B <= b_cap_) return;
  T = std::max(T, t_cap_);
  B = std::max(B, b_cap_);
  // Every call has synchronized, so the old buffers can go now; the graphs that hold them go first.
  graphs.clear();
  ++generation_;
  t_cap_ = b_cap_ = 0;
  step_ = StepBuffers<Elem>();
  const size_t C = C_, V = Vp_;
  const size_t ws = attention_workspace_floats(std::min(T, kSplitRows), H_, D_, kDecodeSplits);
  const size_t need =
      (T * C * 5 + T * 3 * C + T * 4 * C + 2 * B * C) * sizeof(Elem) + (B * V + ws) * sizeof(float);
  ensure_fits(need, "activations of " + std::to_string(T) + " tokens");
  for (auto* buf : {&step_.x, &step_.h, &step_.att, &step_.tmp}) *buf = DeviceBuffer<Elem>(T * C);
  step_.qkv = DeviceBuffer<Elem>(T * 3 * C);
  step_.f = DeviceBuffer<Elem>(T * 4 * C);
  step_.last = DeviceBuffer<Elem>(B * C);
  step_.lastn = DeviceBuffer<Elem>(B * C);
  step_.logits = DeviceBuffer<float>(B * V);
  step_.attn_ws = DeviceBuffer<float>(ws);
  io_.reserve(T, B);
  t_cap_ = T;
  b_cap_ = B;
}

template <typename Elem>
float* Activations<Elem>::logits_all(int T) {
  const size_t n = size_t(T) * Vp_;
  if (logits_all_.size() < n) {
    logits_all_ = DeviceBuffer<float>();  // free the old one first
    ensure_fits(n * sizeof(float), "the logits of " + std::to_string(T) + " positions");
    logits_all_ = DeviceBuffer<float>(n);
  }
  return logits_all_.get();
}

template <typename Elem>
CacheLayer<Elem> Activations<Elem>::nocache_layer(int B) {
  if (B > nocache_slots_) {  // grows with the batch only: the no-cache loop reuses it every step
    const size_t n = size_t(B) * P_ * C_;
    nocache_k_ = DeviceBuffer<Elem>();  // the old pair first: the check and the peak count the new one only
    nocache_v_ = DeviceBuffer<Elem>();
    nocache_slots_ = 0;
    ensure_fits(2 * n * sizeof(Elem), "the no-cache attention scratch");
    nocache_k_ = DeviceBuffer<Elem>(n);
    nocache_v_ = DeviceBuffer<Elem>(n);
    nocache_slots_ = B;
  }
  return {nocache_k_.get(), nocache_v_.get(), P_};
}

template <typename Elem>
size_t Activations<Elem>::bytes() const {
  return step_.bytes() + logits_all_.bytes() + nocache_k_.bytes() + nocache_v_.bytes();
}

template struct StepBuffers<float>;
template struct StepBuffers<__half>;
template struct StepBuffers<__nv_bfloat16>;
template class Activations<float>;
template class Activations<__half>;
template class Activations<__nv_bfloat16>;

}  // namespace gen::cuda
