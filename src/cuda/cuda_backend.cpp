// The CUDA backend's host side: the layer sequence of kernels and cuBLAS GEMMs, the forward calls and
// the factory. What it owns is beside it: device_weights.h (the weights), activations.h (per-call
// buffers and step inputs), decode_graphs.h (the captured decode steps), cuda_kv_cache.h (the cache).
// The kernels themselves are in kernels/. Dimensions: T = rows, B = sequences, C, H, D, V as there.
#include "cuda/cuda_backend.h"

#include <cublas_v2.h>

#include <cstring>
#include <type_traits>

#include "cuda/activations.h"
#include "cuda/cuda_common.h"
#include "cuda/cuda_kv_cache.h"
#include "cuda/decode_graphs.h"
#include "cuda/device_weights.h"
#include "cuda_kernels.h"
#include "gen/device.h"

namespace gen {

ComputeDType parse_compute_dtype(const std::string& s) {
  if (s.empty() || s == "fp16") return ComputeDType::fp16;
  if (s == "bf16") return ComputeDType::bf16;
  if (s == "fp32") return ComputeDType::fp32;
  throw InputError("--dtype must be fp32, fp16 or bf16 (got '" + s + "')", "--dtype");
}

namespace cuda {
namespace {

template <typename Elem>
cudaDataType_t cuda_type();
template <>
cudaDataType_t cuda_type<float>() {
  return CUDA_R_32F;
}
template <>
cudaDataType_t cuda_type<__half>() {
  return CUDA_R_16F;
}
template <>
cudaDataType_t cuda_type<__nv_bfloat16>() {
  return CUDA_R_16BF;
}

template <typename Elem>
const char* dtype_name() {
  return std::is_same_v<Elem, float> ? "fp32" : std::is_same_v<Elem, __half> ? "fp16" : "bf16";
}

constexpr size_t kBlasWorkspace = 32u << 20;

template <typename Elem>
class CudaBackend final : public Backend {
 public:
  CudaBackend(std::shared_ptr<const Weights> w, ComputeDType dt);
  ~CudaBackend() override;
  std::string name() const override { return "cuda"; }
  std::string dtype() const override { return dtype_name<Elem>(); }
  const ModelConfig& config() const override { return host_->cfg; }
  // Rows for max_tokens; the batch dimension (logits [B, V]) grows with the first batch that needs it.
  void reserve(int max_tokens) override { act_.reserve(max_tokens, 1, graphs_); }
  std::string memory_summary() const override;
  std::string kv_dtype() const override {
    return std::is_same_v<Elem, float> ? "f32" : std::is_same_v<Elem, __half> ? "f16" : "bf16";
  }
  size_t memory_available() const override;

 protected:
  std::unique_ptr<KVCache> new_cache(int slots, int max_ctx) override;
  void compute(const std::vector<SeqInput>& batch, KVCache* cache, float* logits_out, bool all_rows) override;
  void compute_sample(const std::vector<SeqInput>& batch, KVCache* cache,
                      const std::vector<DrawParams>& draws, int* tokens_out) override;
  void copy_kv_positions(const KVCache& src, int src_slot, int src_pos, KVCache& dst, int dst_slot, int dst_pos,
                         int n) override;
  void download_kv(const KVCache& cache, int slot, int n, void* host, int host_n) override;
  void upload_kv(KVCache& cache, int slot, const void* host, int host_n, int n) override;

 private:
  // One 2D copy per layer and K/V: H rows of n x D elements, each side with its own row pitch.
  void copy_heads(const CudaKVCache<Elem>* src, int src_slot, int src_pos, CudaKVCache<Elem>* dst, int dst_slot,
                  int dst_pos, int n, uint8_t* host, int host_n, cudaMemcpyKind kind);
  int prepare_inputs(const std::vector<SeqInput>& batch, const KVCache* cache);  // returns T
  // all_logits == nullptr: the last row of each sequence -> step().logits [B, V]; else every row ->
  // all_logits [T, V].
  void enqueue_model(int T, int B, CudaKVCache<Elem>* cache, float* all_logits = nullptr);
  void enqueue_layer(int l, int T, CacheLayer<Elem> kv, AttentionWorkspace ws);
  void lm_head(const Elem* X, float* logits, int rows);
  void enqueue_sample(int B);
  void gemm(const Elem* X, const Elem* W, Elem* Y, int M, int K, int N);

  std::shared_ptr<const Weights> host_;
  ModelConfig cfg_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  DeviceBuffer<uint8_t> blas_ws_;  // [kBlasWorkspace] bytes
  DeviceWeights<Elem> weights_;
  Activations<Elem> act_;
  DecodeGraphs graphs_;  // decode steps per batch size, keyed on (cache id, act_.generation())
};

template <typename Elem>
CudaBackend<Elem>::CudaBackend(std::shared_ptr<const Weights> w, ComputeDType)
    : host_(std::move(w)), cfg_(host_->cfg), act_(cfg_, lm_head_rows(cfg_.vocab_size)) {
  try {  // a throw skips the destructor: release the handles here (the buffers free themselves)
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&blas_));
    CUBLAS_CHECK(cublasSetStream(blas_, stream_));
    // Split-K partial sums in fp32 too, not in the output's fp16/bf16: accumulation is fp32 everywhere.
    cublasMath_t mode = CUBLAS_DEFAULT_MATH;
    CUBLAS_CHECK(cublasGetMathMode(blas_, &mode));
    CUBLAS_CHECK(
        cublasSetMathMode(blas_, cublasMath_t(mode | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));
    // A fixed workspace keeps cuBLAS from allocating while a graph is captured (after SetStream,
    // which resets the workspace to the default pool).
    blas_ws_ = DeviceBuffer<uint8_t>(kBlasWorkspace);
    CUBLAS_CHECK(cublasSetWorkspace(blas_, blas_ws_.get(), kBlasWorkspace));
    weights_ = DeviceWeights<Elem>(*host_, stream_);
  } catch (...) {
    if (blas_) cublasDestroy(blas_);
    if (stream_) cudaStreamDestroy(stream_);
    throw;
  }
}

template <typename Elem>
CudaBackend<Elem>::~CudaBackend() {
  graphs_.clear();
  if (blas_) cublasDestroy(blas_);
  if (stream_) cudaStreamDestroy(stream_);
}

template <typename Elem>
std::unique_ptr<KVCache> CudaBackend<Elem>::new_cache(int slots, int max_ctx) {
  return std::make_unique<CudaKVCache<Elem>>(cfg_, slots, max_ctx);
}

template <typename Elem>
int CudaBackend<Elem>::prepare_inputs(const std::vector<SeqInput>& batch, const KVCache* cache) {
  const int B = int(batch.size());
  int T = 0;
  for (const auto& s : batch) T += int(s.tokens.size());
  act_.reserve(T, B, graphs_);
  act_.io().fill(batch, cache != nullptr, T);
  return T;
}

template <typename Elem>
void CudaBackend<Elem>::gemm(const Elem* X, const Elem* W, Elem* Y, int M, int K, int N) {
  // Row-major Y[M,N] = X[M,K] W[K,N] is column-major Y^T = W^T X^T: W as the first operand, no transposes.
  const float alpha = 1.0f, beta = 0.0f;
  const cudaDataType_t t = cuda_type<Elem>();
  CUBLAS_CHECK(cublasGemmEx(blas_, CUBLAS_OP_N, CUBLAS_OP_N, N, M, K, &alpha, W, t, N, X, t, K, &beta, Y, t,
                            N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

// One transformer block over T rows: x += attn(ln_1 x); x += mlp(ln_2 x). On entry h holds ln_1 of x;
// on exit (but for the last layer) h holds the next layer's ln_1.
template <typename Elem>
void CudaBackend<Elem>::enqueue_layer(int l, int T, CacheLayer<Elem> kv, AttentionWorkspace ws) {
  const int C = cfg_.n_embd, H = cfg_.n_head, D = cfg_.head_dim();
  const float eps = cfg_.layer_norm_epsilon;
  const StepBuffers<Elem>& a = act_.step();
  const StepIO& io = act_.io();
  const DeviceLayer<Elem>& L = weights_.layer(l);
  gemm(a.h.get(), L.qkv_w, a.qkv.get(), T, C, 3 * C);
  bias_act<Elem>(a.qkv.get(), L.qkv_b, T, 3 * C, false, stream_);
  kv_write<Elem>(kv, a.qkv.get(), io.row_slot(T), io.positions(T), T, H, D, stream_);
  attention<Elem>(a.att.get(), a.qkv.get(), kv, io.row_slot(T), io.positions(T), T, H, D, ws, stream_);
  gemm(a.att.get(), L.proj_w, a.tmp.get(), T, C, C);
  // x += proj + bias, then ln_2 of x, in one pass.
  add_layernorm<Elem>(a.x.get(), a.tmp.get(), L.proj_b, a.h.get(), L.ln2_w, L.ln2_b, T, C, eps, stream_);
  gemm(a.h.get(), L.fc_w, a.f.get(), T, C, 4 * C);
  bias_act<Elem>(a.f.get(), L.fc_b, T, 4 * C, true, stream_);
  gemm(a.f.get(), L.fcproj_w, a.tmp.get(), T, 4 * C, C);
  if (l + 1 < cfg_.n_layer) {
    // x += mlp + bias, then the next layer's ln_1, in one pass.
    const DeviceLayer<Elem>& next = weights_.layer(l + 1);
    add_layernorm<Elem>(a.x.get(), a.tmp.get(), L.fcproj_b, a.h.get(), next.ln1_w, next.ln1_b, T, C, eps,
                        stream_);
  } else {
    add_bias_residual<Elem>(a.x.get(), a.tmp.get(), L.fcproj_b, T, C, stream_);
  }
}

template <typename Elem>
void CudaBackend<Elem>::enqueue_model(int T, int B, CudaKVCache<Elem>* cache, float* all_logits) {
  const int C = cfg_.n_embd;
  const float eps = cfg_.layer_norm_epsilon;
  const StepBuffers<Elem>& a = act_.step();
  const StepIO& io = act_.io();
  const AttentionWorkspace ws{a.attn_ws.get(), T <= kSplitRows ? kDecodeSplits : 1};
  CacheLayer<Elem> scratch{};
  if (!cache) scratch = act_.nocache_layer(B);

  embed<Elem>(a.x.get(), io.tokens(T), io.positions(T), T, weights_.wte(), weights_.wpe(), C, stream_);
  const DeviceLayer<Elem>& first = weights_.layer(0);
  add_layernorm<Elem>(a.x.get(), nullptr, nullptr, a.h.get(), first.ln1_w, first.ln1_b, T, C, eps, stream_);
  for (int l = 0; l < cfg_.n_layer; ++l) enqueue_layer(l, T, cache ? cache->layer(l) : scratch, ws);
  if (all_logits) {  // forward_all: every row through ln_f (into h, T rows) and the LM head
    add_layernorm<Elem>(a.x.get(), nullptr, nullptr, a.h.get(), weights_.lnf_w(), weights_.lnf_b(), T, C, eps,
                        stream_);
    lm_head(a.h.get(), all_logits, T);
    return;
  }
  // Only each sequence's last row reaches ln_f and the LM head.
  gather_rows<Elem>(a.last.get(), a.x.get(), io.last_rows(T), B, C, stream_);
  add_layernorm<Elem>(a.last.get(), nullptr, nullptr, a.lastn.get(), weights_.lnf_w(), weights_.lnf_b(), B, C,
                      eps, stream_);
  lm_head(a.lastn.get(), a.logits.get(), B);
}

template <typename Elem>
void CudaBackend<Elem>::lm_head(const Elem* X, float* logits, int rows) {
  // logits [rows, Vp] = X [rows, C] wte^T, fp32 output and accumulation (tied to wte, [Vp, C] on the
  // device: zero rows pad it to a multiple of 64, so that rows of logits start 256-byte aligned and
  // cuBLAS takes its fast paths; columns V.. are never read as logits).
  const int C = cfg_.n_embd, Vp = weights_.lm_rows();
  const float alpha = 1.0f, beta = 0.0f;
  CUBLAS_CHECK(cublasGemmEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, Vp, rows, C, &alpha, weights_.lm_head(),
                            cuda_type<Elem>(), C, X, cuda_type<Elem>(), C, &beta, logits, CUDA_R_32F, Vp,
                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

template <typename Elem>
void CudaBackend<Elem>::enqueue_sample(int B) {
  const StepIO& io = act_.io();
  // Padded ids (past the tokenizer's, and the LM head's own padding rows) are skipped; a row that is
  // not all finite comes back as -1.
  sample(io.drawn(), act_.step().logits.get(), io.params(), B, cfg_.usable_vocab(), stream_,
         weights_.lm_rows(), true);
  io.enqueue_download_tokens(B, stream_);
}

template <typename Elem>
CudaKVCache<Elem>* cuda_cache(KVCache* cache) {
  return static_cast<CudaKVCache<Elem>*>(cache);  // made by new_cache (Backend::forward* checks the owner)
}

template <typename Elem>
void CudaBackend<Elem>::compute(const std::vector<SeqInput>& batch, KVCache* cache, float* logits_out,
                                bool all_rows) {
  CudaKVCache<Elem>* c = cuda_cache<Elem>(cache);
  const int B = int(batch.size());
  const int T = prepare_inputs(batch, cache);
  const size_t rows = size_t(all_rows ? T : B), V = size_t(cfg_.vocab_size), Vp = size_t(weights_.lm_rows());
  float* logits = all_rows ? act_.logits_all(T) : act_.step().logits.get();
  act_.io().enqueue_upload(T, B, false, stream_);
  enqueue_model(T, B, c, all_rows ? logits : nullptr);
  // [rows, Vp] on the device to [rows, V] on the host: the LM head's padding columns stay behind.
  CUDA_CHECK(cudaMemcpy2DAsync(logits_out, V * sizeof(float), logits, Vp * sizeof(float), V * sizeof(float),
                               rows, cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

template <typename Elem>
void CudaBackend<Elem>::compute_sample(const std::vector<SeqInput>& batch, KVCache* cache,
                                       const std::vector<DrawParams>& draws, int* tokens_out) {
  CudaKVCache<Elem>* c = cuda_cache<Elem>(cache);
  const int B = int(batch.size());
  const int T = prepare_inputs(batch, cache);
  act_.io().set_draws(draws);
  auto enqueue_step = [&] {
    act_.io().enqueue_upload(T, B, true, stream_);
    enqueue_model(T, B, c);
    enqueue_sample(B);
  };
  // A decode step (one token per sequence, with a cache) replays the captured graph for this batch size;
  // the rest, and every step once graphs are off (or a capture failed), runs eagerly.
  if (!(c && T == B && graphs_.replay(B, GraphKey{c->id(), act_.generation()}, stream_, enqueue_step))) {
    enqueue_step();
  }
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  std::memcpy(tokens_out, act_.io().h_tokens(), B * sizeof(int));
}

template <typename Elem>
size_t CudaBackend<Elem>::memory_available() const {
  size_t free = 0, total = 0;
  return cudaMemGetInfo(&free, &total) == cudaSuccess ? free : 0;
}

// A slot's heads are H runs of max_ctx x D elements; the host layout [n_layer][2][H][host_n][D] has
// runs of host_n x D. Either side may be the host (src or dst nullptr: `host` stands for it).
template <typename Elem>
void CudaBackend<Elem>::copy_heads(const CudaKVCache<Elem>* src, int src_slot, int src_pos, CudaKVCache<Elem>* dst,
                                   int dst_slot, int dst_pos, int n, uint8_t* host, int host_n,
                                   cudaMemcpyKind kind) {
  const size_t D = size_t(cfg_.head_dim()), E = sizeof(Elem), H = size_t(cfg_.n_head);
  for (int l = 0; l < cfg_.n_layer; ++l) {
    for (int kv = 0; kv < 2; ++kv) {
      uint8_t* host_head = host ? host + (size_t(l) * 2 + kv) * H * size_t(host_n) * D * E : nullptr;
      const void* from = src ? static_cast<const void*>(src->slot_data(l, kv, src_slot) + size_t(src_pos) * D)
                             : host_head;
      void* to = dst ? static_cast<void*>(dst->slot_data(l, kv, dst_slot) + size_t(dst_pos) * D) : host_head;
      const size_t spitch = (src ? size_t(src->max_ctx()) : size_t(host_n)) * D * E;
      const size_t dpitch = (dst ? size_t(dst->max_ctx()) : size_t(host_n)) * D * E;
      CUDA_CHECK(cudaMemcpy2DAsync(to, dpitch, from, spitch, size_t(n) * D * E, H, kind, stream_));
    }
  }
}

template <typename Elem>
void CudaBackend<Elem>::copy_kv_positions(const KVCache& src, int src_slot, int src_pos, KVCache& dst,
                                          int dst_slot, int dst_pos, int n) {
  // Ordered on the stream before the next forward: no sync.
  copy_heads(static_cast<const CudaKVCache<Elem>*>(&src), src_slot, src_pos, static_cast<CudaKVCache<Elem>*>(&dst),
             dst_slot, dst_pos, n, nullptr, 0, cudaMemcpyDeviceToDevice);
}

template <typename Elem>
void CudaBackend<Elem>::download_kv(const KVCache& cache, int slot, int n, void* host, int host_n) {
  copy_heads(static_cast<const CudaKVCache<Elem>*>(&cache), slot, 0, nullptr, 0, 0, n, static_cast<uint8_t*>(host),
             host_n, cudaMemcpyDeviceToHost);
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

template <typename Elem>
void CudaBackend<Elem>::upload_kv(KVCache& cache, int slot, const void* host, int host_n, int n) {
  copy_heads(nullptr, 0, 0, static_cast<CudaKVCache<Elem>*>(&cache), slot, 0, n,
             const_cast<uint8_t*>(static_cast<const uint8_t*>(host)), host_n, cudaMemcpyHostToDevice);
  CUDA_CHECK(cudaStreamSynchronize(stream_));  // the host buffer may go once this returns
}

template <typename Elem>
std::string CudaBackend<Elem>::memory_summary() const {
  size_t free = 0, total = 0;
  CUDA_CHECK(cudaMemGetInfo(&free, &total));
  const size_t act = act_.bytes() + blas_ws_.bytes();
  return "GPU memory: weights " + human_bytes(double(weights_.bytes())) + ", activations " +
         human_bytes(double(act)) + "; device " + human_bytes(double(total - free)) + " used of " +
         human_bytes(double(total));
}

}  // namespace
}  // namespace cuda

std::unique_ptr<Backend> make_cuda_backend(std::shared_ptr<const Weights> weights, ComputeDType dtype) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) throw Error("no usable CUDA device");
  switch (dtype) {
    case ComputeDType::fp32:
      return std::make_unique<cuda::CudaBackend<float>>(std::move(weights), dtype);
    case ComputeDType::bf16:
      return std::make_unique<cuda::CudaBackend<__nv_bfloat16>>(std::move(weights), dtype);
    case ComputeDType::fp16:
    default:
      return std::make_unique<cuda::CudaBackend<__half>>(std::move(weights), dtype);
  }
}

}  // namespace gen
