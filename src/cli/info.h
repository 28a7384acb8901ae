// gen info: what a model needs in memory (weights, KV cache) and whether this machine can hold it.
// Everything comes from config.json (or a built-in GPT-2 shape; vocab.json's size tells a padded
// vocabulary): no weights are read, so it answers for models that are not downloaded and for contexts
// and batches nobody has tried yet.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "gen/config.h"
#include "gen/device.h"
#include "gen/model.h"

namespace gen {

// The config `gen info` reports on and where it came from.
struct ModelSource {
  std::string model;        // --model as given
  std::string config_path;  // the config.json read; empty when `cfg` is a built-in shape
  ModelConfig cfg;
};
// A directory (or a known name found complete where `gen --model NAME` looks) with its config.json;
// else a known name's built-in shape (an empty or partial models/NAME counts as not downloaded); else
// InputError. Reads config.json, and vocab.json's size to tell a padded vocabulary (cfg.tokenizer_vocab).
ModelSource find_model_source(const std::string& model_arg);

// Bytes per element of "fp32" (4), "fp16", "bf16" (2); InputError for anything else.
size_t dtype_bytes(const std::string& dtype);

// KV cache sizes for one dtype: 2 (K and V) x layers x heads x head_dim x bytes per token, times the
// context per sequence, times the batch for the whole cache (gen's layout, see KVCache::bytes_for).
struct KvBytes {
  std::string dtype;
  size_t elem = 0;
  uint64_t per_token = 0;
  uint64_t per_sequence = 0;
  uint64_t batch = 0;
  std::string factors;  // "2 x B x T x L x H x D x bytes" with the numbers filled in; product: `batch`
};

// Need against have. `known` false: the machine's figure is not available (no GPU, no /proc/meminfo).
struct MemoryFit {
  bool known = false;
  uint64_t weights = 0, kv = 0, need = 0;  // need = weights + kv
  uint64_t free = 0, total = 0;            // total 0: only a free figure exists (host MemAvailable)
  const char* verdict() const;             // "fits", "fits only when the device is idle", ...
  bool fits_free() const { return known && need <= free; }
};

struct InfoReport {
  ModelSource src;
  int ctx = 0;    // the context asked for (may exceed n_positions: then `warnings` says so)
  int batch = 1;
  std::string dtype;  // the CUDA dtype the GPU fit is computed at
  int64_t params = 0;
  uint64_t weight_bytes_fp32 = 0, weight_bytes_16 = 0;  // fp16 and bf16 are both 2 bytes
  // The CPU's int8: the layers' matrices and the tied LM head as int8 codes with one fp32 scale per
  // output column, the embeddings' positions, layer norms and biases fp32 (what a decode step reads).
  uint64_t weight_bytes_int8 = 0;
  std::vector<KvBytes> kv;  // `dtype` first, then fp32 when `dtype` is not fp32
  std::vector<std::string> warnings;
  GpuMemory gpu;
  MemoryFit gpu_fit;   // weights and KV cache at `dtype` vs the GPU's free and total memory
  MemoryFit host_fit;  // fp32 weights and fp32 KV cache (the CPU backend) vs MemAvailable
};

// The machine-independent numbers. Throws InputError for ctx or batch < 1, a bad dtype, or sizes
// beyond 64 bits. A ctx beyond n_positions is allowed (a what-if) and adds a warning.
InfoReport make_info_report(ModelSource src, int ctx, int batch, const std::string& dtype);
// Fills gpu, gpu_fit and host_fit from a device query and MemAvailable (0: unknown); kept apart so
// that tests can give any machine and bad flags fail before a device is touched.
void check_fit(InfoReport& r, GpuMemory gpu, size_t host_available);
std::string info_text(const InfoReport& r);
std::string info_json(const InfoReport& r);  // one line, no trailing newline

}  // namespace gen
