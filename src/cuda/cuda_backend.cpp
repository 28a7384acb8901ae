// The CUDA backend's host side: device weights, buffers, the layer sequence of kernels and cuBLAS
// GEMMs, and the decode-step CUDA graphs. The kernels themselves are in kernels/.
#include "cuda/cuda_backend.h"

#include <cublas_v2.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>

#include "cuda/cuda_common.h"
#include "cuda_kernels.h"
#include "gen/device.h"

namespace gen {

ComputeDType parse_compute_dtype(const std::string& s) {
  if (s.empty() || s == "fp16") return ComputeDType::fp16;
  if (s == "bf16") return ComputeDType::bf16;
  if (s == "fp32") return ComputeDType::fp32;
  throw InputError("--dtype must be fp32, fp16 or bf16 (got '" + s + "')", "--dtype");
}

namespace {

#define CUBLAS_CHECK(call)                                                                             \
  do {                                                                                                 \
    cublasStatus_t st_ = (call);                                                                       \
    if (st_ != CUBLAS_STATUS_SUCCESS)                                                                  \
      throw Error(std::string("cuBLAS error ") + cublasGetStatusString(st_) + " in " #call " (" + \
                  __FILE__ + ":" + std::to_string(__LINE__) + ")");                                    \
  } while (0)

template <typename T>
cudaDataType_t cuda_type();
template <>
cudaDataType_t cuda_type<float>() { return CUDA_R_32F; }
template <>
cudaDataType_t cuda_type<__half>() { return CUDA_R_16F; }
template <>
cudaDataType_t cuda_type<__nv_bfloat16>() { return CUDA_R_16BF; }

constexpr int kMaxSplits = 16;          // context splits for decode attention
constexpr int kSplitRows = 256;         // rows up to which attention may split (workspace bound)
constexpr size_t kBlasWorkspace = 32u << 20;
constexpr size_t kMemoryMargin = 256u << 20;  // left free for the CUDA context and cuBLAS

// Throws when `bytes` more would not fit in the free device memory (with a margin).
void ensure_fits(size_t bytes, const std::string& what) {
  size_t free = 0, total = 0;
  CUDA_CHECK(cudaMemGetInfo(&free, &total));
  if (bytes + kMemoryMargin > free) {
    throw Error("not enough GPU memory for " + what + ": need " + human_bytes(double(bytes)) + " (+" +
                human_bytes(double(kMemoryMargin)) + " margin), free " + human_bytes(double(free)) + " of " +
                human_bytes(double(total)));
  }
}

// K and V of every layer: [layer][slot][H][max_ctx][D] of T.
template <typename T>
class CudaKVCache : public KVCache {
 public:
  CudaKVCache(const ModelConfig& cfg, int slots, int max_ctx)
      : KVCache(cfg, slots, max_ctx, sizeof(T)), layer_elems_(size_t(slots) * max_ctx * cfg.n_embd) {
    ensure_fits(bytes(), "the KV cache");
    k_ = cuda::DeviceBuffer<T>(layer_elems_ * cfg.n_layer);
    v_ = cuda::DeviceBuffer<T>(layer_elems_ * cfg.n_layer);
  }
  cuda::CacheLayer<T> layer(int l) {
    return {k_.get() + l * layer_elems_, v_.get() + l * layer_elems_, max_ctx()};
  }
  // Unique per cache ever made: a graph captured for one cache must never replay on another, even
  // one that reuses the same host address.
  uint64_t id() const { return id_; }

 private:
  static inline uint64_t next_id_ = 0;
  uint64_t id_ = ++next_id_;
  size_t layer_elems_;
  cuda::DeviceBuffer<T> k_, v_;
};

template <typename T>
struct DeviceLayer {
  const T *ln1_w, *ln1_b, *qkv_w, *qkv_b, *proj_w, *proj_b, *ln2_w, *ln2_b, *fc_w, *fc_b, *fcproj_w, *fcproj_b;
};

// Pinned host inputs of one forward call and their device mirrors; one memcpy each way.
struct StepIO {
  int* h_ints = nullptr;  // [tokens N | positions N | row_slot N | row_pos N | last_rows B]
  cuda::SampleParams* h_params = nullptr;  // [B]
  int* h_tokens = nullptr;                 // [B] drawn ids
  cuda::DeviceBuffer<int> ints, tokens;
  cuda::DeviceBuffer<cuda::SampleParams> params;
  int n_cap = 0, b_cap = 0;
  ~StepIO() { release(); }
  void release() {
    cudaFreeHost(h_ints);
    cudaFreeHost(h_params);
    cudaFreeHost(h_tokens);
    h_ints = h_tokens = nullptr;
    h_params = nullptr;
  }
  void reserve(int N, int B) {
    if (N <= n_cap && B <= b_cap) return;
    N = std::max(N, n_cap);
    B = std::max(B, b_cap);
    release();
    n_cap = b_cap = 0;  // until every allocation below has succeeded (a throw leaves an empty StepIO)
    const size_t n_ints = 4 * size_t(N) + B;
    CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&h_ints), n_ints * sizeof(int)));
    CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&h_params), B * sizeof(cuda::SampleParams)));
    CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&h_tokens), B * sizeof(int)));
    ints = cuda::DeviceBuffer<int>(n_ints);
    params = cuda::DeviceBuffer<cuda::SampleParams>(B);
    tokens = cuda::DeviceBuffer<int>(B);
    n_cap = N;
    b_cap = B;
  }
  // Offsets of the five int arrays for a call with N rows, packed by N: a step copies 4N + B ints,
  // not the capacity. A decode graph has N = B fixed, so its offsets and copy size stay valid.
  static size_t tokens_at(int) { return 0; }
  static size_t positions_at(int N) { return size_t(N); }
  static size_t slot_at(int N) { return 2 * size_t(N); }
  static size_t pos_at(int N) { return 3 * size_t(N); }
  static size_t last_at(int N) { return 4 * size_t(N); }
  static size_t ints_used(int N, int B) { return 4 * size_t(N) + size_t(B); }
};

template <typename T>
class CudaBackend final : public Backend {
 public:
  CudaBackend(std::shared_ptr<const Weights> w, ComputeDType dt);
  ~CudaBackend() override;
  std::string name() const override { return "cuda"; }
  const ModelConfig& config() const override { return host_->cfg; }
  // Rows for max_tokens; the batch dimension (logits [B, V]) grows with the first batch that needs it.
  void reserve(int max_tokens) override { reserve_rows(max_tokens, 1); }
  std::string memory_summary() const override;

 protected:
  std::unique_ptr<KVCache> new_cache(int slots, int max_ctx) override;
  void compute(const std::vector<SeqInput>& batch, KVCache* cache, float* logits_out, bool all_rows) override;
  void compute_sample(const std::vector<SeqInput>& batch, KVCache* cache, const std::vector<DrawParams>& draws,
                      int* tokens_out) override;

 private:
  void upload_weights();
  void reserve_rows(int N, int B);
  int fill_inputs(const std::vector<SeqInput>& batch, const KVCache* cache);  // returns N
  void enqueue_inputs(int N, int B, bool with_params);
  // all_logits == nullptr: the last row of each sequence -> logits_ [B, V]; else every row ->
  // all_logits [N, V].
  void enqueue_model(int N, int B, CudaKVCache<T>* cache, float* all_logits = nullptr);
  void lm_head(const T* X, float* logits, int rows);
  void enqueue_sample(int B);
  void gemm(const T* X, const T* W, T* Y, int M, int K, int N);
  cuda::CacheLayer<T> nocache_layer(int B);
  void run_decode_graph(int B, CudaKVCache<T>* cache);

  std::shared_ptr<const Weights> host_;
  ModelConfig cfg_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  cuda::DeviceBuffer<uint8_t> blas_ws_;
  cuda::DeviceBuffer<T> weights_;  // the one allocation, laid out as the host Weights::data
  const T *wte_ = nullptr, *wpe_ = nullptr, *lnf_w_ = nullptr, *lnf_b_ = nullptr;
  std::vector<DeviceLayer<T>> layers_;
  // Activations for N rows / B sequences (see reserve_rows).
  int n_cap_ = 0, b_cap_ = 0;
  cuda::DeviceBuffer<T> x_, h_, qkv_, att_, tmp_, f_, last_, lastn_;
  cuda::DeviceBuffer<float> logits_, attn_ws_;
  // forward_all's [N, V] logits, grown on demand; apart from logits_ so that the decode graphs, which
  // bake logits_, stay valid.
  cuda::DeviceBuffer<float> logits_all_;
  cuda::DeviceBuffer<T> nocache_k_, nocache_v_;  // one layer's K, V when there is no cache
  int nocache_slots_ = 0;
  StepIO io_;
  std::map<int, cudaGraphExec_t> graphs_;  // decode step per batch size, for the cache graph_cache_id_
  uint64_t graph_cache_id_ = 0;
  bool use_graphs_ = true;
};

template <typename T>
CudaBackend<T>::CudaBackend(std::shared_ptr<const Weights> w, ComputeDType) : host_(std::move(w)), cfg_(host_->cfg) {
  try {  // a throw skips the destructor: release the handles here (the buffers free themselves)
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&blas_));
    CUBLAS_CHECK(cublasSetStream(blas_, stream_));
    // A fixed workspace keeps cuBLAS from allocating while a graph is captured (after SetStream,
    // which resets the workspace to the default pool).
    blas_ws_ = cuda::DeviceBuffer<uint8_t>(kBlasWorkspace);
    CUBLAS_CHECK(cublasSetWorkspace(blas_, blas_ws_.get(), kBlasWorkspace));
    const char* sync = std::getenv("GEN_SYNC_CHECK");
    const char* nograph = std::getenv("GEN_NO_GRAPH");
    use_graphs_ = !(sync && std::strcmp(sync, "1") == 0) && !(nograph && std::strcmp(nograph, "1") == 0);
    upload_weights();
  } catch (...) {
    if (blas_) cublasDestroy(blas_);
    if (stream_) cudaStreamDestroy(stream_);
    throw;
  }
}

template <typename T>
CudaBackend<T>::~CudaBackend() {
  for (auto& [b, g] : graphs_) cudaGraphExecDestroy(g);
  if (blas_) cublasDestroy(blas_);
  if (stream_) cudaStreamDestroy(stream_);
}

template <typename T>
void CudaBackend<T>::upload_weights() {
  const std::vector<float>& src = host_->data;
  const size_t n = src.size(), chunk = size_t(16) << 20;
  ensure_fits(n * sizeof(T) + chunk * sizeof(float), "the weights");
  weights_ = cuda::DeviceBuffer<T>(n);
  // fp32 host -> fp32 staging -> T on the GPU, a chunk at a time.
  cuda::DeviceBuffer<float> staging(std::min(n, chunk));
  for (size_t i = 0; i < n; i += chunk) {
    const size_t m = std::min(chunk, n - i);
    CUDA_CHECK(cudaMemcpyAsync(staging.get(), src.data() + i, m * sizeof(float), cudaMemcpyHostToDevice, stream_));
    cuda::convert_from_f32<T>(weights_.get() + i, staging.get(), m, stream_);
  }
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  auto dev = [&](const float* p) { return weights_.get() + (p - src.data()); };
  wte_ = dev(host_->wte);
  wpe_ = dev(host_->wpe);
  lnf_w_ = dev(host_->lnf_w);
  lnf_b_ = dev(host_->lnf_b);
  for (const LayerWeights& L : host_->layers) {
    layers_.push_back({dev(L.ln1_w), dev(L.ln1_b), dev(L.qkv_w), dev(L.qkv_b), dev(L.proj_w), dev(L.proj_b),
                       dev(L.ln2_w), dev(L.ln2_b), dev(L.fc_w), dev(L.fc_b), dev(L.fcproj_w), dev(L.fcproj_b)});
  }
}

template <typename T>
std::unique_ptr<KVCache> CudaBackend<T>::new_cache(int slots, int max_ctx) {
  return std::make_unique<CudaKVCache<T>>(cfg_, slots, max_ctx);
}

template <typename T>
void CudaBackend<T>::reserve_rows(int N, int B) {
  if (N <= n_cap_ && B <= b_cap_) return;
  N = std::max(N, n_cap_);
  B = std::max(B, b_cap_);
  // Captured graphs hold the old pointers: drop them before any buffer is replaced. The old buffers
  // go first (every call has synchronized), so the check and the peak count only the new ones, and
  // the capacity stays 0 until every allocation has succeeded.
  for (auto& [b, g] : graphs_) cudaGraphExecDestroy(g);
  graphs_.clear();
  n_cap_ = b_cap_ = 0;
  for (auto* buf : {&x_, &h_, &qkv_, &att_, &tmp_, &f_, &last_, &lastn_}) *buf = cuda::DeviceBuffer<T>();
  logits_ = cuda::DeviceBuffer<float>();
  attn_ws_ = cuda::DeviceBuffer<float>();
  const size_t C = cfg_.n_embd, H = cfg_.n_head, D = cfg_.head_dim(), V = cfg_.vocab_size;
  const size_t ws = cuda::attention_workspace_floats(std::min(N, kSplitRows), int(H), int(D), kMaxSplits);
  const size_t need = (N * C * 5 + N * 3 * C + N * 4 * C + 2 * B * C) * sizeof(T) + (B * V + ws) * sizeof(float);
  ensure_fits(need, "activations of " + std::to_string(N) + " tokens");
  for (auto* buf : {&x_, &h_, &att_, &tmp_}) *buf = cuda::DeviceBuffer<T>(N * C);
  qkv_ = cuda::DeviceBuffer<T>(N * 3 * C);
  f_ = cuda::DeviceBuffer<T>(N * 4 * C);
  last_ = cuda::DeviceBuffer<T>(B * C);
  lastn_ = cuda::DeviceBuffer<T>(B * C);
  logits_ = cuda::DeviceBuffer<float>(B * V);
  attn_ws_ = cuda::DeviceBuffer<float>(ws);
  io_.reserve(N, B);
  n_cap_ = N;
  b_cap_ = B;
}

template <typename T>
int CudaBackend<T>::fill_inputs(const std::vector<SeqInput>& batch, const KVCache* cache) {
  const int B = int(batch.size());
  int N = 0;
  for (const auto& s : batch) N += int(s.tokens.size());
  reserve_rows(N, B);
  int* h = io_.h_ints;
  int r = 0;
  for (int i = 0; i < B; ++i) {
    const SeqInput& s = batch[i];
    for (size_t t = 0; t < s.tokens.size(); ++t, ++r) {
      h[StepIO::tokens_at(N) + r] = s.tokens[t];
      h[StepIO::positions_at(N) + r] = s.pos0 + int(t);
      // Without a cache, sequence i uses slot i of a one-layer scratch cache.
      h[StepIO::slot_at(N) + r] = cache ? s.slot : i;
      h[StepIO::pos_at(N) + r] = s.pos0 + int(t);
    }
    h[StepIO::last_at(N) + i] = r - 1;
  }
  return N;
}

template <typename T>
void CudaBackend<T>::enqueue_inputs(int N, int B, bool with_params) {
  // The used part of the pinned block in one copy; a captured graph (N = B) replays the same copy of
  // the same pinned bytes with the step's new contents.
  CUDA_CHECK(cudaMemcpyAsync(io_.ints.get(), io_.h_ints, StepIO::ints_used(N, B) * sizeof(int), cudaMemcpyHostToDevice,
                             stream_));
  if (with_params) {
    CUDA_CHECK(cudaMemcpyAsync(io_.params.get(), io_.h_params, B * sizeof(cuda::SampleParams), cudaMemcpyHostToDevice,
                               stream_));
  }
}

template <typename T>
void CudaBackend<T>::gemm(const T* X, const T* W, T* Y, int M, int K, int N) {
  // Row-major Y[M,N] = X[M,K] W[K,N] is column-major Y^T = W^T X^T: W as the first operand, no transposes.
  const float alpha = 1.0f, beta = 0.0f;
  CUBLAS_CHECK(cublasGemmEx(blas_, CUBLAS_OP_N, CUBLAS_OP_N, N, M, K, &alpha, W, cuda_type<T>(), N, X, cuda_type<T>(), K,
                            &beta, Y, cuda_type<T>(), N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

template <typename T>
cuda::CacheLayer<T> CudaBackend<T>::nocache_layer(int B) {
  if (B > nocache_slots_) {  // grows with the batch only: the no-cache loop reuses it every step
    const size_t n = size_t(B) * cfg_.n_positions * cfg_.n_embd;
    nocache_k_ = cuda::DeviceBuffer<T>();  // the old pair first: the check and the peak count the new one only
    nocache_v_ = cuda::DeviceBuffer<T>();
    nocache_slots_ = 0;
    ensure_fits(2 * n * sizeof(T), "the no-cache attention scratch");
    nocache_k_ = cuda::DeviceBuffer<T>(n);
    nocache_v_ = cuda::DeviceBuffer<T>(n);
    nocache_slots_ = B;
  }
  return {nocache_k_.get(), nocache_v_.get(), cfg_.n_positions};
}

template <typename T>
void CudaBackend<T>::enqueue_model(int N, int B, CudaKVCache<T>* cache, float* all_logits) {
  const int C = cfg_.n_embd, H = cfg_.n_head, D = cfg_.head_dim();
  const float eps = cfg_.layer_norm_epsilon;
  const int* ints = io_.ints.get();
  const int *tokens = ints + StepIO::tokens_at(N), *positions = ints + StepIO::positions_at(N);
  const int *row_slot = ints + StepIO::slot_at(N), *row_pos = ints + StepIO::pos_at(N);
  const int* last_rows = ints + StepIO::last_at(N);
  const cuda::AttentionWorkspace ws{attn_ws_.get(), N <= kSplitRows ? kMaxSplits : 1};
  cuda::CacheLayer<T> scratch{};
  if (!cache) scratch = nocache_layer(B);

  cuda::embed<T>(x_.get(), tokens, positions, N, wte_, wpe_, C, stream_);
  cuda::add_layernorm<T>(x_.get(), nullptr, nullptr, h_.get(), layers_[0].ln1_w, layers_[0].ln1_b, N, C, eps, stream_);
  for (int l = 0; l < cfg_.n_layer; ++l) {
    const DeviceLayer<T>& L = layers_[l];
    const cuda::CacheLayer<T> kv = cache ? cache->layer(l) : scratch;
    gemm(h_.get(), L.qkv_w, qkv_.get(), N, C, 3 * C);
    cuda::bias_act<T>(qkv_.get(), L.qkv_b, N, 3 * C, false, stream_);
    cuda::kv_write<T>(kv, qkv_.get(), row_slot, row_pos, N, H, D, stream_);
    cuda::attention<T>(att_.get(), qkv_.get(), kv, row_slot, row_pos, N, H, D, ws, stream_);
    gemm(att_.get(), L.proj_w, tmp_.get(), N, C, C);
    // x += proj + bias, then ln_2 of x, in one pass.
    cuda::add_layernorm<T>(x_.get(), tmp_.get(), L.proj_b, h_.get(), L.ln2_w, L.ln2_b, N, C, eps, stream_);
    gemm(h_.get(), L.fc_w, f_.get(), N, C, 4 * C);
    cuda::bias_act<T>(f_.get(), L.fc_b, N, 4 * C, true, stream_);
    gemm(f_.get(), L.fcproj_w, tmp_.get(), N, 4 * C, C);
    if (l + 1 < cfg_.n_layer) {
      // x += mlp + bias, then the next layer's ln_1, in one pass.
      const DeviceLayer<T>& next = layers_[l + 1];
      cuda::add_layernorm<T>(x_.get(), tmp_.get(), L.fcproj_b, h_.get(), next.ln1_w, next.ln1_b, N, C, eps, stream_);
    } else {
      cuda::add_bias_residual<T>(x_.get(), tmp_.get(), L.fcproj_b, N, C, stream_);
    }
  }
  if (all_logits) {  // forward_all: every row through ln_f (into h_, N rows) and the LM head
    cuda::add_layernorm<T>(x_.get(), nullptr, nullptr, h_.get(), lnf_w_, lnf_b_, N, C, eps, stream_);
    lm_head(h_.get(), all_logits, N);
    return;
  }
  // Only each sequence's last row reaches ln_f and the LM head.
  cuda::gather_rows<T>(last_.get(), x_.get(), last_rows, B, C, stream_);
  cuda::add_layernorm<T>(last_.get(), nullptr, nullptr, lastn_.get(), lnf_w_, lnf_b_, B, C, eps, stream_);
  lm_head(lastn_.get(), logits_.get(), B);
}

template <typename T>
void CudaBackend<T>::lm_head(const T* X, float* logits, int rows) {
  // logits [rows, V] = X [rows, C] wte^T, fp32 output and accumulation (tied to wte [V, C]).
  const int C = cfg_.n_embd, V = cfg_.vocab_size;
  const float alpha = 1.0f, beta = 0.0f;
  CUBLAS_CHECK(cublasGemmEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, V, rows, C, &alpha, wte_, cuda_type<T>(), C, X,
                            cuda_type<T>(), C, &beta, logits, CUDA_R_32F, V, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

template <typename T>
void CudaBackend<T>::enqueue_sample(int B) {
  cuda::sample(io_.tokens.get(), logits_.get(), io_.params.get(), B, cfg_.vocab_size, stream_);
  CUDA_CHECK(cudaMemcpyAsync(io_.h_tokens, io_.tokens.get(), B * sizeof(int), cudaMemcpyDeviceToHost, stream_));
}

template <typename T>
CudaKVCache<T>* cuda_cache(KVCache* cache) {
  return static_cast<CudaKVCache<T>*>(cache);  // made by new_cache (Backend::forward* checks the owner)
}

template <typename T>
void CudaBackend<T>::compute(const std::vector<SeqInput>& batch, KVCache* cache, float* logits_out, bool all_rows) {
  CudaKVCache<T>* c = cuda_cache<T>(cache);
  const int B = int(batch.size());
  const int N = fill_inputs(batch, cache);
  const size_t n_logits = size_t(all_rows ? N : B) * cfg_.vocab_size;
  if (all_rows && logits_all_.size() < n_logits) {
    logits_all_ = cuda::DeviceBuffer<float>();  // free the old one first
    ensure_fits(n_logits * sizeof(float), "the logits of " + std::to_string(N) + " positions");
    logits_all_ = cuda::DeviceBuffer<float>(n_logits);
  }
  float* logits = all_rows ? logits_all_.get() : logits_.get();
  enqueue_inputs(N, B, false);
  enqueue_model(N, B, c, all_rows ? logits : nullptr);
  CUDA_CHECK(cudaMemcpyAsync(logits_out, logits, n_logits * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

template <typename T>
void CudaBackend<T>::run_decode_graph(int B, CudaKVCache<T>* cache) {
  if (graph_cache_id_ != cache->id()) {  // graphs bake the cache's pointers
    for (auto& [b, g] : graphs_) cudaGraphExecDestroy(g);
    graphs_.clear();
    graph_cache_id_ = cache->id();
  }
  auto it = graphs_.find(B);
  if (it == graphs_.end()) {
    cudaGraph_t graph = nullptr;
    CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    try {
      enqueue_inputs(B, B, true);
      enqueue_model(B, B, cache);
      enqueue_sample(B);
    } catch (...) {
      cudaStreamEndCapture(stream_, &graph);
      if (graph) cudaGraphDestroy(graph);
      throw;
    }
    CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
    cudaGraphExec_t exec = nullptr;
    const cudaError_t err = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    CUDA_CHECK(err);
    it = graphs_.emplace(B, exec).first;
  }
  CUDA_CHECK(cudaGraphLaunch(it->second, stream_));
}

template <typename T>
void CudaBackend<T>::compute_sample(const std::vector<SeqInput>& batch, KVCache* cache,
                                    const std::vector<DrawParams>& draws, int* tokens_out) {
  CudaKVCache<T>* c = cuda_cache<T>(cache);
  const int B = int(batch.size());
  const int N = fill_inputs(batch, cache);
  for (int i = 0; i < B; ++i) {
    const DrawParams& d = draws[i];
    io_.h_params[i] = {d.sampling.temperature, d.sampling.top_k, d.sampling.top_p, d.seed, d.step};
  }
  // A decode step (one token per sequence, with a cache) replays the captured graph for this batch size.
  if (c && N == B && use_graphs_) {
    run_decode_graph(B, c);
  } else {
    enqueue_inputs(N, B, true);
    enqueue_model(N, B, c);
    enqueue_sample(B);
  }
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  std::memcpy(tokens_out, io_.h_tokens, B * sizeof(int));
}

template <typename T>
std::string CudaBackend<T>::memory_summary() const {
  size_t free = 0, total = 0;
  CUDA_CHECK(cudaMemGetInfo(&free, &total));
  size_t act = logits_.bytes() + logits_all_.bytes() + attn_ws_.bytes() + nocache_k_.bytes() + nocache_v_.bytes() +
               blas_ws_.bytes();
  for (const auto* b : {&x_, &h_, &qkv_, &att_, &tmp_, &f_, &last_, &lastn_}) act += b->bytes();
  return "GPU memory: weights " + human_bytes(double(weights_.bytes())) + ", activations " + human_bytes(double(act)) +
         "; device " + human_bytes(double(total - free)) + " used of " + human_bytes(double(total));
}

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(std::shared_ptr<const Weights> weights, ComputeDType dtype) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) throw Error("no usable CUDA device");
  switch (dtype) {
    case ComputeDType::fp32:
      return std::make_unique<CudaBackend<float>>(std::move(weights), dtype);
    case ComputeDType::bf16:
      return std::make_unique<CudaBackend<__nv_bfloat16>>(std::move(weights), dtype);
    case ComputeDType::fp16:
    default:
      return std::make_unique<CudaBackend<__half>>(std::move(weights), dtype);
  }
}

}  // namespace gen
