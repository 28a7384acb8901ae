#include "cpu/cpu_backend.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "cpu/cpu_ops.h"
#include "gen/device.h"
#include "gen/error.h"

extern "C" void openblas_set_num_threads(int);

namespace gen {

CpuKVCache::CpuKVCache(const ModelConfig& cfg, int slots, int max_ctx)
    : KVCache(cfg, slots, max_ctx, sizeof(float)), n_head_(cfg.n_head), head_dim_(cfg.head_dim()),
      storage_(bytes()), k_(static_cast<float*>(storage_.data())), v_(k_ + bytes() / sizeof(float) / 2) {}

namespace {
cpu::Linear conv1d(const float* w, int in, int out, cpu::Precision dt) { return cpu::Linear({w, in, out, false}, dt); }
}  // namespace

CpuBackend::CpuBackend(std::shared_ptr<const Weights> weights, int threads, cpu::Precision dtype)
    : w_(std::move(weights)), threads_(threads > 0 ? threads : omp_get_num_procs()), dtype_(dtype),
      lm_head_({w_->wte, w_->cfg.n_embd, w_->cfg.vocab_size, true}, dtype) {
  omp_set_num_threads(threads_);
  openblas_set_num_threads(threads_);
  const int C = w_->cfg.n_embd;
  for (const LayerWeights& L : w_->layers) {
    linears_.push_back({conv1d(L.qkv_w, C, 3 * C, dtype), conv1d(L.proj_w, C, C, dtype),
                        conv1d(L.fc_w, C, 4 * C, dtype), conv1d(L.fcproj_w, 4 * C, C, dtype)});
  }
}

namespace {
// Refuses, before allocating, what would not fit in the memory the system has available (a failed
// allocation later, or the OOM killer, gives the user far less to go on).
void check_host_fits(double bytes, const std::string& what, const char* flags) {
  const size_t avail = host_memory_available();  // 0: cannot tell
  if (avail > 0 && bytes > double(avail)) {
    throw InputError(what + " needs " + human_bytes(bytes) + ", more than the " + human_bytes(double(avail)) +
                         " of memory available; lower " + flags,
                     "MemAvailable");
  }
}
}  // namespace

std::unique_ptr<KVCache> CpuBackend::new_cache(int slots, int max_ctx) {
  check_host_fits(double(KVCache::bytes_for(w_->cfg.n_layer, w_->cfg.n_embd, slots, max_ctx, sizeof(float))),
                  "the KV cache for " + std::to_string(slots) + " sequences x " + std::to_string(max_ctx) +
                      " positions",
                  "--batch-size or --ctx");
  return std::make_unique<CpuKVCache>(w_->cfg, slots, max_ctx);
}

void CpuBackend::reserve(int T) {
  if (T <= reserved_) return;
  const size_t C = w_->cfg.n_embd;
  // x, ln, qkv(3), att, mlp(4), tmp, last, kv_k, kv_v: 14 floats per token per channel
  check_host_fits(14.0 * T * C * sizeof(float), "scratch for " + std::to_string(T) + " tokens per step",
                  "--batch-size or --ctx (without the cache every step holds whole sequences)");
  x_.resize(T * C);
  ln_.resize(T * C);
  qkv_.resize(T * 3 * C);
  att_.resize(T * C);
  mlp_.resize(T * 4 * C);
  tmp_.resize(T * C);
  last_.resize(T * C);
  scores_.resize(cpu::attention_scratch_floats(T, w_->cfg.n_positions, threads_));
  kv_k_.resize(T * C);
  kv_v_.resize(T * C);
  reserved_ = T;
}

void CpuBackend::layer_forward(int l, const std::vector<SeqInput>& batch, CpuKVCache* cache, int T) {
  const auto& c = w_->cfg;
  const auto& L = w_->layers[l];
  LayerLinears& M = linears_[l];
  const int C = c.n_embd, H = c.n_head, D = c.head_dim();
  cpu::layernorm(ln_.data(), x_.data(), L.ln1_w, L.ln1_b, T, C, c.layer_norm_epsilon);
  M.qkv.apply(qkv_.data(), ln_.data(), L.qkv_b, T);
  attn_.clear();
  for (size_t i = 0; i < batch.size(); ++i) {
    const auto& s = batch[i];
    const int n = int(s.tokens.size()), r0 = row0_[i];
    // Without a cache the sequence's own K and V live in scratch, [H][n][D], for this layer only.
    float* K = cache ? cache->k(l, s.slot) : kv_k_.data() + size_t(r0) * C;
    float* V = cache ? cache->v(l, s.slot) : kv_v_.data() + size_t(r0) * C;
    const int ctx = cache ? cache->max_ctx() : n;
    const float* qkv = qkv_.data() + size_t(r0) * 3 * C;
    cpu::kv_write(K, V, ctx, qkv, n, s.pos0, H, D);
    float* out = att_.data() + size_t(r0) * C;
    const int q0 = plan_.first_query(i);
    if (q0 < 0) {
      attn_.push_back({out, qkv, K, V, ctx, n, s.pos0});
      continue;
    }
    for (int t = 0; t < n; ++t) {
      dec_q_[size_t(q0 + t)] = {out + size_t(t) * C, qkv + size_t(t) * 3 * C, K, V, ctx, s.pos0 + t + 1};
    }
  }
  if (!attn_.empty()) cpu::attention_batch(attn_, H, D, scores_.data(), threads_, &attn_items_);
  if (!dec_q_.empty()) {
    cpu::attention_decode(dec_q_, plan_.groups(), H, D, dec_scratch_.data(), threads_, &dec_items_,
                          cpu::plain_forced());
  }
  M.proj.apply(tmp_.data(), att_.data(), L.proj_b, T);
  cpu::add_inplace(x_.data(), tmp_.data(), size_t(T) * C);
  cpu::layernorm(ln_.data(), x_.data(), L.ln2_w, L.ln2_b, T, C, c.layer_norm_epsilon);
  M.fc.apply(mlp_.data(), ln_.data(), L.fc_b, T);
  cpu::gelu_inplace(mlp_.data(), size_t(T) * 4 * C);
  M.fcproj.apply(tmp_.data(), mlp_.data(), L.fcproj_b, T);
  cpu::add_inplace(x_.data(), tmp_.data(), size_t(T) * C);
}

void CpuBackend::compute(const std::vector<SeqInput>& batch, KVCache* cache, float* logits_out, bool all_rows) {
  auto* cpu_cache = static_cast<CpuKVCache*>(cache);  // made by new_cache (Backend::forward checks)
  const auto& c = w_->cfg;
  const int C = c.n_embd, B = int(batch.size());
  row0_.resize(B);
  int T = 0;
  for (int i = 0; i < B; ++i) {
    row0_[i] = T;
    T += int(batch[i].tokens.size());
  }
  reserve(std::max(T, B));
  for (int i = 0; i < B; ++i) {
    const auto& s = batch[i];
    cpu::embed(x_.data() + size_t(row0_[i]) * C, s.tokens.data(), int(s.tokens.size()), s.pos0,
               w_->wte, w_->wpe, C);
  }
  plan_attention(batch, cache);
  for (int l = 0; l < c.n_layer; ++l) layer_forward(l, batch, cpu_cache, T);
  if (all_rows) {  // every row through ln_f and the LM head: last_ holds T rows (reserve(T))
    cpu::layernorm(last_.data(), x_.data(), w_->lnf_w, w_->lnf_b, T, C, c.layer_norm_epsilon);
    lm_head_.apply(logits_out, last_.data(), nullptr, T);
  } else {
    // Only the last position of each sequence reaches ln_f and the LM head.
    for (int i = 0; i < B; ++i) {
      const int last = row0_[i] + int(batch[i].tokens.size()) - 1;
      cpu::layernorm(last_.data() + size_t(i) * C, x_.data() + size_t(last) * C, w_->lnf_w, w_->lnf_b, 1, C,
                     c.layer_norm_epsilon);
    }
    lm_head_.apply(logits_out, last_.data(), nullptr, B);
  }
}

void CpuBackend::plan_attention(const std::vector<SeqInput>& batch, const KVCache* cache) {
  plan_.build(batch, cache);
  dec_q_.resize(size_t(plan_.queries()));
  const size_t need = size_t(threads_) * cpu::decode_scratch_floats(std::min(plan_.largest_group(), cpu::kDecodeChunk),
                                                                     plan_.most_positions(), w_->cfg.head_dim());
  if (dec_scratch_.size() < need) dec_scratch_.resize(need);
}

size_t CpuBackend::memory_available() const { return host_memory_available(); }

// K and V of a layer and slot are [H][max_ctx][D]: n positions of a head are n x D contiguous floats.
void CpuBackend::copy_kv_positions(const KVCache& src, int src_slot, int src_pos, KVCache& dst, int dst_slot,
                                   int dst_pos, int n) {
  const auto& s = static_cast<const CpuKVCache&>(src);  // checked by Backend::copy_kv
  auto& d = static_cast<CpuKVCache&>(dst);
  const int H = w_->cfg.n_head, D = w_->cfg.head_dim();
  const size_t bytes = size_t(n) * D * sizeof(float);
  for (int l = 0; l < w_->cfg.n_layer; ++l) {
    for (int h = 0; h < H; ++h) {
      const size_t from = (size_t(h) * s.max_ctx() + src_pos) * D, to = (size_t(h) * d.max_ctx() + dst_pos) * D;
      std::memmove(d.k(l, dst_slot) + to, s.k(l, src_slot) + from, bytes);
      std::memmove(d.v(l, dst_slot) + to, s.v(l, src_slot) + from, bytes);
    }
  }
}

namespace {
// Host layout [n_layer][2: K, V][H][host_n][D]: fn(the cache's head, the host's head) for every head of
// every layer's K and V, each a run of positions x D floats.
template <typename Cache, typename Host, typename Fn>
void each_kv_head(Cache& c, int slot, Host* host, int host_n, const ModelConfig& cfg, Fn fn) {
  const int H = cfg.n_head, D = cfg.head_dim();
  for (int l = 0; l < cfg.n_layer; ++l) {
    for (int kv = 0; kv < 2; ++kv) {
      auto* base = kv == 0 ? c.k(l, slot) : c.v(l, slot);
      for (int h = 0; h < H; ++h) {
        fn(base + size_t(h) * c.max_ctx() * D, host + ((size_t(l) * 2 + kv) * H + h) * size_t(host_n) * D);
      }
    }
  }
}
}  // namespace

void CpuBackend::download_kv(const KVCache& cache, int slot, int n, void* host, int host_n) {
  const size_t bytes = size_t(n) * w_->cfg.head_dim() * sizeof(float);
  each_kv_head(static_cast<const CpuKVCache&>(cache), slot, static_cast<float*>(host), host_n, w_->cfg,
               [&](const float* head, float* out) { std::memcpy(out, head, bytes); });
}

void CpuBackend::upload_kv(KVCache& cache, int slot, const void* host, int host_n, int n) {
  const size_t bytes = size_t(n) * w_->cfg.head_dim() * sizeof(float);
  each_kv_head(static_cast<CpuKVCache&>(cache), slot, static_cast<const float*>(host), host_n, w_->cfg,
               [&](float* head, const float* in) { std::memcpy(head, in, bytes); });
}

}  // namespace gen
