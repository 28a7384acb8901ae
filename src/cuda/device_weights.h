// The model's weights on the device: one allocation of Elem, laid out as the host Weights::data, and the
// pointers into it. Uploaded once, never reallocated: captured graphs may hold these pointers for the
// life of the backend. Dimensions: C = n_embd, V = vocab_size, P = n_positions.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <vector>

#include "cuda/cuda_common.h"
#include "model/weights.h"

namespace gen::cuda {

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

  const Elem* wte() const { return wte_; }      // [V, C], also the LM head (tied)
  const Elem* wpe() const { return wpe_; }      // [P, C]
  const Elem* lnf_w() const { return lnf_w_; }  // [C]
  const Elem* lnf_b() const { return lnf_b_; }  // [C]
  const DeviceLayer<Elem>& layer(int l) const { return layers_[size_t(l)]; }
  size_t bytes() const { return data_.bytes(); }

 private:
  DeviceBuffer<Elem> data_;  // the one allocation, [Weights::data.size()]
  const Elem *wte_ = nullptr, *wpe_ = nullptr, *lnf_w_ = nullptr, *lnf_b_ = nullptr;
  std::vector<DeviceLayer<Elem>> layers_;  // [n_layer]
};

}  // namespace gen::cuda
