#include "cuda/device_weights.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "cuda_kernels.h"

namespace gen::cuda {

template <typename Elem>
DeviceWeights<Elem>::DeviceWeights(const Weights& host, cudaStream_t stream) {
  const std::vector<float>& src = host.data;
  const size_t n = src.size(), chunk = size_t(16) << 20;
  ensure_fits(n * sizeof(Elem) + chunk * sizeof(float), "the weights");
  data_ = DeviceBuffer<Elem>(n);
  // fp32 host -> fp32 staging -> Elem on the GPU, a chunk at a time.
  DeviceBuffer<float> staging(std::min(n, chunk));
  for (size_t i = 0; i < n; i += chunk) {
    const size_t m = std::min(chunk, n - i);
    CUDA_CHECK(
        cudaMemcpyAsync(staging.get(), src.data() + i, m * sizeof(float), cudaMemcpyHostToDevice, stream));
    convert_from_f32<Elem>(data_.get() + i, staging.get(), m, stream);
  }
  CUDA_CHECK(cudaStreamSynchronize(stream));
  auto dev = [&](const float* p) -> const Elem* { return data_.get() + (p - src.data()); };
  wte_ = dev(host.wte);
  wpe_ = dev(host.wpe);
  lnf_w_ = dev(host.lnf_w);
  lnf_b_ = dev(host.lnf_b);
  for (const LayerWeights& L : host.layers) {
    layers_.push_back({dev(L.ln1_w), dev(L.ln1_b), dev(L.qkv_w), dev(L.qkv_b), dev(L.proj_w), dev(L.proj_b),
                       dev(L.ln2_w), dev(L.ln2_b), dev(L.fc_w), dev(L.fc_b), dev(L.fcproj_w),
                       dev(L.fcproj_b)});
  }
}

template class DeviceWeights<float>;
template class DeviceWeights<__half>;
template class DeviceWeights<__nv_bfloat16>;

}  // namespace gen::cuda
