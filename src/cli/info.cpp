// gen info's numbers and their two renderings (text for people, one JSON object for scripts).
#include "cli/info.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "gen/error.h"
#include "cli/output.h"
#include "gen/device.h"
#include "gen/prefix_cache.h"

namespace fs = std::filesystem;

namespace gen {
namespace {

uint64_t mul(uint64_t a, uint64_t b) {
  uint64_t r;
  // A what-if calculator takes any --ctx and --batch: say so rather than print a wrapped number.
  if (__builtin_mul_overflow(a, b, &r)) throw InputError("the sizes asked for overflow 64 bits", "--ctx, --batch");
  return r;
}

uint64_t add(uint64_t a, uint64_t b) {
  uint64_t r;
  if (__builtin_add_overflow(a, b, &r)) throw InputError("the sizes asked for overflow 64 bits", "--ctx, --batch");
  return r;
}

KvBytes kv_bytes(const ModelConfig& c, int ctx, int batch, const std::string& dtype) {
  KvBytes k;
  k.dtype = dtype;
  k.elem = dtype_bytes(dtype);
  k.per_token = mul(mul(mul(mul(2, c.n_layer), c.n_head), c.head_dim()), k.elem);
  k.per_sequence = mul(k.per_token, uint64_t(ctx));
  k.batch = mul(k.per_sequence, uint64_t(batch));
  std::ostringstream f;
  f << "2 x " << batch << " x " << ctx << " x " << c.n_layer << " x " << c.n_head << " x " << c.head_dim()
    << " x " << k.elem;
  k.factors = f.str();
  return k;
}

// 1234567 -> "1,234,567": byte counts this long are unreadable without separators.
std::string digits(uint64_t n) {
  std::string s = std::to_string(n);
  for (int i = int(s.size()) - 3; i > 0; i -= 3) s.insert(size_t(i), ",");
  return s;
}

std::string bytes(uint64_t n) { return digits(n) + " B (" + human_bytes(double(n)) + ")"; }

// Tokens of K/V that 1 GiB of prefix cache holds, in whole blocks (gen/prefix_cache.h).
uint64_t prefix_cache_tokens_per_gib(const KvBytes& k) {
  const uint64_t block = k.per_token * PrefixCache::kBlock;
  return block ? (uint64_t(1) << 30) / block * PrefixCache::kBlock : 0;
}

// The number of tokens in vocab.json, to tell a padded vocabulary; 0 when the file is absent or not a
// JSON object (gen itself reports a broken one: a calculator need not).
int vocab_json_ids(const std::string& path) {
  std::ifstream in(path);
  if (!in) return 0;
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  return j.is_object() ? int(j.size()) : 0;
}

}  // namespace

const char* MemoryFit::verdict() const {
  if (!known) return "unknown";
  if (need <= free) return total ? "fits in free memory" : "fits in available memory";
  if (total && need <= total) return "fits in total memory, not in what is free now";
  return "does not fit";
}

size_t dtype_bytes(const std::string& dtype) {
  if (dtype == "fp32") return 4;
  if (dtype == "fp16" || dtype == "bf16") return 2;
  throw InputError("--dtype must be fp32, fp16 or bf16 (got '" + dtype + "')", "--dtype");
}

ModelSource find_model_source(const std::string& model_arg) {
  if (model_arg.empty()) throw InputError("--model is empty", "--model");
  ModelSource s;
  s.model = model_arg;
  std::string dir;
  const std::string name = model_name(model_arg);
  if (is_known_model_name(name)) {
    try {
      dir = resolve_model_dir(model_arg);  // where `gen --model NAME` would find it, complete
    } catch (const InputError&) {
      // Not downloaded (absent, empty or partial): the published shape answers as well.
      s.cfg = ModelConfig::builtin(name);
      return s;
    }
  } else if (fs::is_directory(model_arg)) {
    dir = model_arg;
  } else {
    throw InputError("no model directory '" + model_arg +
                         "' and not a known name (gpt2, gpt2-medium, gpt2-large, gpt2-xl)",
                     "--model");
  }
  s.config_path = dir + "/config.json";
  s.cfg = ModelConfig::load(s.config_path);
  const int ids = vocab_json_ids(dir + "/vocab.json");
  if (ids > 0 && ids < s.cfg.vocab_size) s.cfg.tokenizer_vocab = ids;  // a padded vocabulary
  return s;
}

InfoReport make_info_report(ModelSource src, int ctx, int batch, const std::string& dtype) {
  InfoReport r;
  const ModelConfig& c = src.cfg;
  if (ctx < 1) throw InputError("--ctx " + std::to_string(ctx) + " is out of range: must be >= 1", "--ctx");
  if (batch < 1) throw InputError("--batch " + std::to_string(batch) + " is out of range: must be >= 1", "--batch");
  r.ctx = ctx;
  r.batch = batch;
  r.dtype = dtype;
  r.params = c.n_params();
  r.weight_bytes_fp32 = mul(uint64_t(r.params), 4);
  r.weight_bytes_16 = mul(uint64_t(r.params), 2);
  const uint64_t matrix = uint64_t(c.matrix_params()), scales = uint64_t(c.matrix_columns());
  r.weight_bytes_int8 = add(add(matrix, mul(scales, 4)), mul(uint64_t(r.params) - matrix, 4));
  r.kv.push_back(kv_bytes(c, ctx, batch, dtype));
  if (dtype != "fp32") r.kv.push_back(kv_bytes(c, ctx, batch, "fp32"));
  if (ctx > c.n_positions) {
    // A what-if is allowed here; a run is not (GPT-2's position embeddings stop at n_positions).
    r.warnings.push_back("context " + std::to_string(ctx) + " is beyond n_positions " +
                         std::to_string(c.n_positions) + ": gen refuses it when generating (GPT-2's positions are absolute)");
  }
  r.gpu_fit.weights = dtype == "fp32" ? r.weight_bytes_fp32 : r.weight_bytes_16;
  r.gpu_fit.kv = r.kv.front().batch;
  r.gpu_fit.need = add(r.gpu_fit.weights, r.gpu_fit.kv);
  // The CPU backend at its default fp32 holds the fp32 checkpoint and oneDNN's fp32 copy of the matrices
  // (docs/decisions.md, "CPU bf16 and int8"), and an fp32 cache.
  r.host_fit.weights = add(r.weight_bytes_fp32, mul(matrix, 4));
  r.host_fit.kv = r.kv.back().batch;         // fp32 is last whatever `dtype` is
  r.host_fit.need = add(r.host_fit.weights, r.host_fit.kv);
  r.src = std::move(src);
  return r;
}

void check_fit(InfoReport& r, GpuMemory gpu, size_t host_available) {
  r.gpu = std::move(gpu);
  r.gpu_fit.known = r.gpu.usable;
  r.gpu_fit.free = r.gpu.free_bytes;
  r.gpu_fit.total = r.gpu.total_bytes;
  r.host_fit.known = host_available > 0;
  r.host_fit.free = host_available;
}

std::string info_text(const InfoReport& r) {
  const ModelConfig& c = r.src.cfg;
  std::ostringstream o;
  o << "model       " << r.src.model << "  ("
    << (r.src.config_path.empty() ? "built-in shape: no model directory found" : r.src.config_path) << ")\n";
  o << "config      " << c.n_layer << " layers, " << c.n_head << " heads, n_embd " << c.n_embd << ", head_dim "
    << c.head_dim() << ", n_positions " << c.n_positions << ", vocab " << c.vocab_size;
  if (c.usable_vocab() < c.vocab_size) o << " (padded; the tokenizer has " << c.usable_vocab() << ")";
  o << "\n";
  o << "parameters  " << digits(uint64_t(r.params)) << "  (LM head tied to wte, counted once)\n";
  o << "weights     fp32 " << bytes(r.weight_bytes_fp32) << "   fp16 " << bytes(r.weight_bytes_16) << "   bf16 "
    << bytes(r.weight_bytes_16) << "   int8 (CPU) " << bytes(r.weight_bytes_int8) << "\n";
  for (const auto& w : r.warnings) o << "warning: " << w << "\n";
  o << "\nKV cache at context " << r.ctx << ", batch " << r.batch
    << ": 2 (K and V) x batch x context x layers x heads x head_dim x bytes\n";
  for (const KvBytes& k : r.kv) {
    o << "  " << k.dtype << "  per token     " << bytes(k.per_token) << "\n";
    o << "        per sequence  " << bytes(k.per_sequence) << "\n";
    o << "        prefix cache  " << digits(prefix_cache_tokens_per_gib(k)) << " tokens per GiB of --prefix-cache-mb\n";
    o << "        batch of " << r.batch << "    " << k.factors << " = " << bytes(k.batch) << "\n";
  }
  o << "\nmemory: weights + KV cache of the batch (activations, and on a GPU the CUDA context, come on top)\n";
  if (r.gpu.usable) {
    o << "  GPU  " << r.gpu.name << ": " << human_bytes(double(r.gpu.total_bytes)) << " total, "
      << human_bytes(double(r.gpu.free_bytes)) << " free\n";
  } else {
    o << "  GPU  none: " << r.gpu.why << "\n";
  }
  const MemoryFit& g = r.gpu_fit;
  o << "       " << r.dtype << " " << human_bytes(double(g.weights)) << " + " << human_bytes(double(g.kv)) << " = "
    << human_bytes(double(g.need)) << ": " << (g.known ? g.verdict() : "no GPU to check") << "\n";
  const MemoryFit& h = r.host_fit;
  // MemAvailable, capped by the memory cgroup's limit (a Slurm task's, a container's): gen::host_memory_available.
  o << "  CPU  available " << (h.known ? human_bytes(double(h.free)) : std::string("unknown (no /proc/meminfo)"))
    << "\n";
  o << "       fp32 " << human_bytes(double(h.weights)) << " + " << human_bytes(double(h.kv)) << " = "
    << human_bytes(double(h.need)) << ": " << h.verdict() << "\n";
  return o.str();
}

namespace {
nlohmann::json fit_json(const MemoryFit& f) {
  nlohmann::json j = {{"weights_bytes", f.weights}, {"kv_cache_bytes", f.kv}, {"need_bytes", f.need},
                      {"verdict", f.verdict()}};
  j["fits"] = f.known ? nlohmann::json(f.fits_free()) : nlohmann::json(nullptr);
  return j;
}
}  // namespace

std::string info_json(const InfoReport& r) {
  const ModelConfig& c = r.src.cfg;
  nlohmann::json j;
  j["model"] = r.src.model;
  j["config_source"] = r.src.config_path.empty() ? "builtin" : r.src.config_path;
  j["config"] = {{"n_layer", c.n_layer},         {"n_head", c.n_head},
                 {"n_embd", c.n_embd},           {"head_dim", c.head_dim()},
                 {"n_positions", c.n_positions}, {"vocab_size", c.vocab_size}};
  if (c.usable_vocab() < c.vocab_size) j["config"]["tokenizer_vocab"] = c.usable_vocab();  // padded
  j["params"] = r.params;
  j["weight_bytes"] = {{"fp32", r.weight_bytes_fp32},
                       {"fp16", r.weight_bytes_16},
                       {"bf16", r.weight_bytes_16},
                       {"int8", r.weight_bytes_int8}};
  j["context"] = r.ctx;
  j["batch"] = r.batch;
  j["dtype"] = r.dtype;
  j["context_beyond_n_positions"] = r.ctx > c.n_positions;
  j["warnings"] = r.warnings;
  for (const KvBytes& k : r.kv) {
    j["kv_cache"][k.dtype] = {{"bytes_per_token", k.per_token}, {"bytes_per_sequence", k.per_sequence},
                              {"prefix_cache_tokens_per_gib", prefix_cache_tokens_per_gib(k)},
                              {"bytes_batch", k.batch},
                              {"formula", k.factors + " = " + std::to_string(k.batch)}};
  }
  nlohmann::json gpu = fit_json(r.gpu_fit);
  gpu["available"] = r.gpu.usable;
  gpu["dtype"] = r.dtype;
  if (r.gpu.usable) {
    gpu["name"] = r.gpu.name;
    gpu["total_bytes"] = r.gpu.total_bytes;
    gpu["free_bytes"] = r.gpu.free_bytes;
  } else {
    gpu["reason"] = r.gpu.why;
  }
  j["gpu"] = gpu;
  nlohmann::json host = fit_json(r.host_fit);
  host["dtype"] = "fp32";
  host["mem_available_bytes"] = r.host_fit.known ? nlohmann::json(r.host_fit.free) : nlohmann::json(nullptr);
  j["host"] = host;
  return j.dump();
}

}  // namespace gen
