// The CPU backend: fp32, GEMMs through OpenBLAS, everything else with OpenMP. The reference for CUDA.
#pragma once
#include <memory>
#include <vector>

#include "cpu/attention_plan.h"
#include "cpu/cpu_ops.h"
#include "cpu/decode_attention.h"
#include "cpu/huge_pages.h"
#include "cpu/linear.h"
#include "cpu/no_init.h"
#include "gen/backend.h"
#include "model/weights.h"

namespace gen {

// K and V as [layer][slot][head][max_ctx][head_dim] fp32.
class CpuKVCache : public KVCache {
 public:
  CpuKVCache(const ModelConfig& cfg, int slots, int max_ctx);
  float* k(int layer, int slot) { return k_ + offset(layer, slot); }  // [H][max_ctx][D]
  float* v(int layer, int slot) { return v_ + offset(layer, slot); }
  const float* k(int layer, int slot) const { return k_ + offset(layer, slot); }
  const float* v(int layer, int slot) const { return v_ + offset(layer, slot); }

 private:
  size_t offset(int layer, int slot) const {
    return (size_t(layer) * slots() + slot) * size_t(n_head_) * max_ctx() * head_dim_;
  }
  int n_head_, head_dim_;
  cpu::HugePageBuffer storage_;  // K then V; written before read, never zero-filled
  float *k_, *v_;
};

class CpuBackend : public Backend {
 public:
  // `threads` <= 0: all cores. The matrices are converted to `dtype` here, once.
  CpuBackend(std::shared_ptr<const Weights> weights, int threads, cpu::Precision dtype = cpu::Precision::fp32);
  std::string name() const override { return "cpu"; }
  std::string dtype() const override { return cpu::dtype_name(dtype_); }
  const ModelConfig& config() const override { return w_->cfg; }
  void reserve(int max_tokens) override;
  std::string kv_dtype() const override { return "f32"; }
  size_t memory_available() const override;

 protected:
  std::unique_ptr<KVCache> new_cache(int slots, int max_ctx) override;
  // The one forward pass: logits of each sequence's last row ([B, V]) or of every row ([T, V]).
  void compute(const std::vector<SeqInput>& batch, KVCache* cache, float* logits_out, bool all_rows) override;
  void copy_kv_positions(const KVCache& src, int src_slot, int src_pos, KVCache& dst, int dst_slot, int dst_pos,
                         int n) override;
  void download_kv(const KVCache& cache, int slot, int n, void* host, int host_n) override;
  void upload_kv(KVCache& cache, int slot, const void* host, int host_n, int n) override;

 private:
  void layer_forward(int l, const std::vector<SeqInput>& batch, CpuKVCache* cache, int T);
  void plan_attention(const std::vector<SeqInput>& batch, const KVCache* cache);

  // A layer's four matrices in the run's dtype (fp32: views of the Weights themselves).
  struct LayerLinears {
    cpu::Linear qkv, proj, fc, fcproj;
  };

  std::shared_ptr<const Weights> w_;
  int threads_;
  cpu::Precision dtype_;
  std::vector<LayerLinears> linears_;  // [n_layer]
  cpu::Linear lm_head_;                // the tied wte [V, C], as x @ wte^T
  int reserved_ = 0;  // tokens the scratch holds
  // Scratch, T = rows: the new tokens of the whole batch (uninitialized: each step writes what it reads):
  cpu::Floats x_;       // [T, C]   residual stream
  cpu::Floats ln_;      // [T, C]
  cpu::Floats qkv_;     // [T, 3C]
  cpu::Floats att_;     // [T, C]
  cpu::Floats mlp_;     // [T, 4C]
  cpu::Floats tmp_;     // [T, C]
  cpu::Floats last_;    // [B, C]  final-layernormed last rows ([T, C] for forward_all)
  cpu::Floats scores_;  // [threads, min(T, 64), T + n_positions] attention scores
  cpu::Floats kv_k_, kv_v_;  // no-cache path: one layer's K, V [H][n][D] per sequence
  std::vector<int> row0_;      // first row of each sequence in the batch
  std::vector<cpu::AttentionSeq> attn_;  // [B] this layer's attention of each sequence
  std::vector<int> attn_items_;          // [B + 1] attention_batch's scratch
  // The step's rows that attention_decode takes (decode rows, and the rows of prompts that share cached
  // blocks), in the plan's groups; the others go to attention_batch.
  cpu::AttentionPlan plan_;
  std::vector<cpu::DecodeQuery> dec_q_;     // [plan_.queries()] this layer's
  std::vector<cpu::DecodeItem> dec_items_;  // attention_decode's scratch
  std::vector<float> dec_scratch_;          // [threads][decode_scratch_floats]
};

}  // namespace gen
