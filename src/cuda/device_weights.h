// The model's weights on the device: one allocation of Elem, laid out as the host Weights::data but for
// Vp - V zero rows right after wte, and the pointers into it. Uploaded once, never reallocated: captured
// graphs may hold these pointers for the life of the backend.
// Dimensions: C = n_embd, V = vocab_size, Vp = lm_head_rows(V), P = n_positions.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <vector>

#include "cuda/cuda_common.h"
#include "model/weights.h"

namespace gen::cuda {

// The LM head's rows on the device: V rounded up to a multiple of 64 (GPT-2's 50257 -> 50304), so that
// cuBLAS sees an aligned leading dimension and whole tiles. The padding rows are zero, and their
// logits are never drawn, scored or copied to the host.
constexpr int kLmHeadRowMultiple = 64;
inline int lm_head_rows(int V) {
  return (V + kLmHeadRowMultiple - 1) / kLmHeadRowMultiple * kLmHeadRowMultiple;
}

// One block's weights, pointers into DeviceWeights' allocation (Hugging Face's Conv1D [in, out] layout).
template <typename Elem>
struct DeviceLayer {
  const Elem* ln1_w;     // [C]
  const Elem* ln1_b;     // [C]
  const Elem* qkv_w;     // [C, 3C]
  const Elem* qkv_b;     // [3C]
  const Elem* proj_w;    // [C, C]
  const Elem* proj_b;    // [C]
  const Elem* ln2_w;     // [C]
  const Elem* ln2_b;     // [C]
  const Elem* fc_w;      // [C, 4C]
  const Elem* fc_b;      // [4C]
  const Elem* fcproj_w;  // [4C, C]
  const Elem* fcproj_b;  // [C]
};

template <typename Elem>
class DeviceWeights {
 public:
  DeviceWeights() = default;  // empty, until an upload is moved in
  // Checks the free memory, then converts the fp32 host weights to Elem on the GPU a chunk at a time;
  // returns after the upload has finished (synchronizes `stream`).
  DeviceWeights(const Weights& host, cudaStream_t stream);

  const Elem* wte() const { return wte_; }      // [V, C] the embedding
  const Elem* lm_head() const { return wte_; }  // [Vp, C] the same rows and the zero padding (tied)
  int lm_rows() const { return lm_rows_; }      // Vp
  const Elem* wpe() const { return wpe_; }      // [P, C]
  const Elem* lnf_w() const { return lnf_w_; }  // [C]
  const Elem* lnf_b() const { return lnf_b_; }  // [C]
  const DeviceLayer<Elem>& layer(int l) const { return layers_[size_t(l)]; }
  size_t bytes() const { return data_.bytes(); }

 private:
  DeviceBuffer<Elem> data_;  // the one allocation, [Weights::data.size() + (Vp - V) * C]
  const Elem *wte_ = nullptr, *wpe_ = nullptr, *lnf_w_ = nullptr, *lnf_b_ = nullptr;
  int lm_rows_ = 0;
  std::vector<DeviceLayer<Elem>> layers_;  // [n_layer]
};

}  // namespace gen::cuda
