// GPT-2 weights: match the checkpoint's tensors to the config, then convert them all to fp32 into one
// allocation.
#include "model/weights.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>
#include <unordered_set>

#include "gen/error.h"

namespace gen {
namespace {

const std::string kPrefix = "transformer.";  // names saved from GPT2LMHeadModel carry it
constexpr size_t kPerLayer = 12;             // tensors per block, in gpt2_weight_specs order

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Names come from the file: keep error messages on one line and of bounded length.
std::string quoted(const std::string& s) {
  constexpr size_t kMax = 120;
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < kMax; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + (s.size() > kMax ? "...'" : "'");
}

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

// "h.<i>.<rest>" -> i (decimal, no leading zeros) and rest; false for anything else.
bool split_layer(const std::string& name, int64_t* layer, std::string* rest) {
  if (!starts_with(name, "h.")) return false;
  size_t i = 2;
  int64_t v = 0;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9' && i < 12) v = v * 10 + (name[i++] - '0');
  if (i == 2 || i >= name.size() || name[i] != '.' || (name[2] == '0' && i > 3)) return false;
  *layer = v;
  *rest = name.substr(i + 1);
  return true;
}

const TensorView* find_spec(const SafeTensors& st, const std::string& name) {
  const TensorView* plain = st.find(name);
  const TensorView* prefixed = st.find(kPrefix + name);
  if (plain && prefixed) {
    throw InputError("tensor '" + name + "' appears both with and without the '" + kPrefix + "' prefix",
                     st.path());
  }
  if (!plain && !prefixed) throw InputError("missing tensor '" + name + "'", st.path());
  return plain ? plain : prefixed;
}

// Tensors a GPT-2 checkpoint may hold beyond the specs; anything else means a different model.
void check_extra(const TensorView& t, const ModelConfig& cfg, const std::string& where) {
  const std::string& name = t.name;
  if (name == "lm_head.weight") {  // tied to wte; Hugging Face sometimes saves it anyway
    const std::vector<int64_t> want = {cfg.vocab_size, cfg.n_embd};
    if (t.shape != want) {
      throw InputError(
          "tensor 'lm_head.weight' has shape " + shape_str(t.shape) + ", expected " + shape_str(want), where);
    }
    return;
  }
  const std::string bare = starts_with(name, kPrefix) ? name.substr(kPrefix.size()) : name;
  int64_t layer = 0;
  std::string rest;
  const bool in_block = split_layer(bare, &layer, &rest);
  if (in_block && layer < cfg.n_layer && (rest == "attn.bias" || rest == "attn.masked_bias")) {
    return;  // causal-mask buffers: gen builds its own mask
  }
  std::string hint;
  if (in_block && layer >= cfg.n_layer) {
    hint = " (the config says n_layer " + std::to_string(cfg.n_layer) + ")";
  }
  throw InputError("unexpected tensor " + quoted(name) + hint, where);
}

// Conversion work split into pieces so that OpenMP balances big and small tensors alike.
struct Piece {
  const TensorView* t;
  size_t begin;  // element index within the tensor
  size_t count;
  size_t dst;  // index of the tensor's first element in the allocation
};

// The index of the first NaN or Inf in v[0, n), or n when all are finite.
size_t first_non_finite(const float* v, size_t n) {
  uint32_t worst = 0;  // the largest magnitude's bits: a branch-free pass that vectorizes
  for (size_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, v + i, sizeof u);
    worst = std::max(worst, u & 0x7fffffffu);
  }
  if (worst < 0x7f800000u) return n;
  size_t i = 0;
  while (std::isfinite(v[i])) ++i;
  return i;
}

// Converts every piece, checking each for NaN and Inf while it is still in cache: a checkpoint that
// holds one is refused here rather than generating "!!!!" (NaN logits) later.
void convert_all(const std::vector<Piece>& pieces, float* base, const std::string& where) {
  const long n = static_cast<long>(pieces.size());
  std::vector<size_t> bad(pieces.size());  // [pieces] first non-finite element, or the piece's count
#pragma omp parallel for schedule(dynamic)
  for (long i = 0; i < n; ++i) {
    const Piece& p = pieces[static_cast<size_t>(i)];
    float* dst = base + p.dst + p.begin;
    to_float(p.t->dtype, p.t->data + p.begin * dtype_size(p.t->dtype), p.count, dst);
    bad[size_t(i)] = first_non_finite(dst, p.count);
  }
  for (size_t i = 0; i < pieces.size(); ++i) {  // the first in file-independent order, as a serial load
    const Piece& p = pieces[i];
    if (bad[i] == p.count) continue;
    const float v = base[p.dst + p.begin + bad[i]];
    throw InputError("tensor " + quoted(p.t->name) + " holds " + (std::isnan(v) ? "a NaN" : "an Inf") +
                         " at element " + std::to_string(p.begin + bad[i]),
                     where);
  }
}

}  // namespace

std::vector<WeightSpec> gpt2_weight_specs(const ModelConfig& cfg) {
  const int64_t C = cfg.n_embd, V = cfg.vocab_size, P = cfg.n_positions;
  std::vector<WeightSpec> s;
  s.reserve(4 + kPerLayer * static_cast<size_t>(cfg.n_layer > 0 ? cfg.n_layer : 0));
  s.push_back({"wte.weight", {V, C}});
  s.push_back({"wpe.weight", {P, C}});
  for (int i = 0; i < cfg.n_layer; ++i) {
    const std::string h = "h." + std::to_string(i) + ".";
    s.push_back({h + "ln_1.weight", {C}});
    s.push_back({h + "ln_1.bias", {C}});
    s.push_back({h + "attn.c_attn.weight", {C, 3 * C}});
    s.push_back({h + "attn.c_attn.bias", {3 * C}});
    s.push_back({h + "attn.c_proj.weight", {C, C}});
    s.push_back({h + "attn.c_proj.bias", {C}});
    s.push_back({h + "ln_2.weight", {C}});
    s.push_back({h + "ln_2.bias", {C}});
    s.push_back({h + "mlp.c_fc.weight", {C, 4 * C}});
    s.push_back({h + "mlp.c_fc.bias", {4 * C}});
    s.push_back({h + "mlp.c_proj.weight", {4 * C, C}});
    s.push_back({h + "mlp.c_proj.bias", {C}});
  }
  s.push_back({"ln_f.weight", {C}});
  s.push_back({"ln_f.bias", {C}});
  return s;
}

std::vector<const TensorView*> match_gpt2_tensors(const SafeTensors& st, const ModelConfig& cfg) {
  const std::vector<WeightSpec> specs = gpt2_weight_specs(cfg);
  std::vector<const TensorView*> out;
  out.reserve(specs.size());
  std::unordered_set<const TensorView*> matched;
  for (const WeightSpec& spec : specs) {
    const TensorView* t = find_spec(st, spec.name);
    if (t->shape != spec.shape) {
      throw InputError("tensor " + quoted(t->name) + " has shape " + shape_str(t->shape) + ", expected " +
                           shape_str(spec.shape),
                       st.path());
    }
    out.push_back(t);
    matched.insert(t);
  }
  for (const auto& kv : st.tensors()) {
    if (!matched.count(&kv.second)) check_extra(kv.second, cfg, st.path());
  }
  return out;
}

Weights Weights::load(const SafeTensors& st, const ModelConfig& cfg) {
  const std::vector<const TensorView*> views = match_gpt2_tensors(st, cfg);
  constexpr size_t kPiece = size_t(1) << 20;
  std::vector<size_t> offsets(views.size());
  std::vector<Piece> pieces;
  size_t total = 0;
  for (size_t i = 0; i < views.size(); ++i) {
    offsets[i] = total;
    const size_t n = static_cast<size_t>(views[i]->numel());
    for (size_t b = 0; b < n; b += kPiece) pieces.push_back({views[i], b, std::min(kPiece, n - b), total});
    total += n;
  }

  Weights w;
  w.cfg = cfg;
  try {
    w.data.resize(total);
  } catch (const std::bad_alloc&) {
    throw Error("out of memory: cannot allocate " + std::to_string(total * 4) + " bytes for the weights");
  }
  const float* base = w.data.data();
  convert_all(pieces, w.data.data(), st.path());

  // Pointers follow gpt2_weight_specs order: wte, wpe, 12 per layer, ln_f.
  std::vector<const float*> at(views.size());
  for (size_t i = 0; i < views.size(); ++i) at[i] = base + offsets[i];
  w.wte = at[0];
  w.wpe = at[1];
  w.layers.resize(static_cast<size_t>(cfg.n_layer));
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const float* const* p = at.data() + 2 + kPerLayer * l;
    w.layers[l] = LayerWeights{p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11]};
  }
  w.lnf_w = at[views.size() - 2];
  w.lnf_b = at[views.size() - 1];
  w.file_dtype = views[0]->dtype;
  return w;
}

}  // namespace gen
