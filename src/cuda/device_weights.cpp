#include "cuda/device_weights.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "cuda_kernels.h"

namespace gen::cuda {

template <typename Elem>
DeviceWeights<Elem>::DeviceWeights(const Weights& host, cudaStream_t stream) {
  const std::vector<float>& src = host.data;
  const size_t C = size_t(host.cfg.n_embd), V = size_t(host.cfg.vocab_size);
  lm_rows_ = lm_head_rows(host.cfg.vocab_size);
  // Host elements [0, pad_at) keep their offsets, [pad_at, n) move up by `pad`: the zero rows after wte.
  const size_t n = src.size(), chunk = size_t(16) << 20;
  const size_t pad_at = size_t(host.wte - src.data()) + V * C, pad = (size_t(lm_rows_) - V) * C;
  ensure_fits((n + pad) * sizeof(Elem) + chunk * sizeof(float), "the weights");
  data_ = DeviceBuffer<Elem>(n + pad);
  auto dev_offset = [&](size_t i) { return i < pad_at ? i : i + pad; };
  // fp32 host -> fp32 staging -> Elem on the GPU, a chunk at a time; a chunk does not cross pad_at.
  DeviceBuffer<float> staging(std::min(n, chunk));
  for (size_t i = 0; i < n;) {
    const size_t m = std::min(chunk, (i < pad_at ? pad_at : n) - i);
    CUDA_CHECK(
        cudaMemcpyAsync(staging.get(), src.data() + i, m * sizeof(float), cudaMemcpyHostToDevice, stream));
    convert_from_f32<Elem>(data_.get() + dev_offset(i), staging.get(), m, stream);
    i += m;
  }
  CUDA_CHECK(cudaMemsetAsync(data_.get() + pad_at, 0, pad * sizeof(Elem), stream));  // 0.0 in every Elem
  CUDA_CHECK(cudaStreamSynchronize(stream));
  auto dev = [&](const float* p) -> const Elem* { return data_.get() + dev_offset(size_t(p - src.data())); };
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
