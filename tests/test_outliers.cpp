// gen-make-model --outliers: the residual stream of the checkpoint really holds a few channels in the
// thousands (as real GPT-2's does) and the rest at its usual scale, block after block, while the logits
// still depend on the input. The residual is observed through the CPU twins in the CPU backend's order
// of ops, and the logits so computed equal the backend's own, so what is observed is what runs. The
// GPU side (fp16 and bf16 against the CPU on this checkpoint) is in test_cuda_backend.cpp.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>

#include "cpu/cpu_backend.h"
#include "cpu/cpu_ops.h"
#include "fixture_model.h"
#include "model/model_maker.h"
#include "random_inputs.h"
#include "test_util.h"

using namespace gen;
using namespace gen::test;

namespace {

MakeModelSpec outlier_spec(int outliers) {
  MakeModelSpec spec;
  spec.cfg.n_layer = 4;
  spec.cfg.n_head = 4;
  spec.cfg.n_embd = 128;
  spec.cfg.n_positions = 64;
  spec.cfg.vocab_size = 300;
  spec.cfg.eos_token_id = 299;
  spec.outliers = outliers;
  return spec;
}

// The residual of one sequence without a cache: [L + 1] x [T, C] (the embeddings, then after each
// block), and the logits of every row [T, V].
std::vector<std::vector<float>> residuals(const Weights& w, const std::vector<int>& ids,
                                          std::vector<float>& logits) {
  const ModelConfig& c = w.cfg;
  const int T = int(ids.size()), C = c.n_embd, H = c.n_head, D = c.head_dim(), V = c.vocab_size;
  const float eps = c.layer_norm_epsilon;
  const size_t n = size_t(T) * C;
  std::vector<float> x(n), ln(n), qkv(3 * n), att(n), mlp(4 * n), tmp(n), K(n), Vc(n);
  std::vector<float> scores(cpu::attention_scratch_floats(T, 0, 1));
  std::vector<std::vector<float>> out;
  cpu::embed(x.data(), ids.data(), T, 0, w.wte, w.wpe, C);
  out.push_back(x);
  for (const LayerWeights& L : w.layers) {  // cpu_backend.cpp's layer_forward, one sequence
    cpu::layernorm(ln.data(), x.data(), L.ln1_w, L.ln1_b, T, C, eps);
    cpu::matmul(qkv.data(), ln.data(), L.qkv_w, L.qkv_b, T, C, 3 * C);
    cpu::kv_write(K.data(), Vc.data(), T, qkv.data(), T, 0, H, D);
    cpu::attention(att.data(), qkv.data(), K.data(), Vc.data(), T, T, 0, H, D, scores.data(), 1);
    cpu::matmul(tmp.data(), att.data(), L.proj_w, L.proj_b, T, C, C);
    cpu::add_inplace(x.data(), tmp.data(), n);
    cpu::layernorm(ln.data(), x.data(), L.ln2_w, L.ln2_b, T, C, eps);
    cpu::matmul(mlp.data(), ln.data(), L.fc_w, L.fc_b, T, C, 4 * C);
    cpu::gelu_inplace(mlp.data(), 4 * n);
    cpu::matmul(tmp.data(), mlp.data(), L.fcproj_w, L.fcproj_b, T, 4 * C, C);
    cpu::add_inplace(x.data(), tmp.data(), n);
    out.push_back(x);
  }
  cpu::layernorm(ln.data(), x.data(), w.lnf_w, w.lnf_b, T, C, eps);
  logits.resize(size_t(T) * V);
  cpu::matmul_transposed(logits.data(), ln.data(), w.wte, T, C, V);
  return out;
}

double rms(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += double(x) * x;
  return std::sqrt(s / double(v.size()));
}

}  // namespace

TEST_CASE("outlier_channels: spread over the channels, in the thousands, summing to zero", "[outliers]") {
  ModelConfig cfg = outlier_spec(0).cfg;
  CHECK(outlier_channels(cfg, 0).empty());
  const auto one = outlier_channels(cfg, 1);
  REQUIRE(one.size() == 1);
  CHECK((one[0].channel == 64 && one[0].magnitude == 2000.0f && one[0].hidden == 256));
  const auto three = outlier_channels(cfg, 3);
  REQUIRE(three.size() == 3);
  CHECK((three[0].channel == 21 && three[1].channel == 64 && three[2].channel == 106));
  CHECK((three[0].magnitude == 2000.0f && three[1].magnitude == -3000.0f && three[2].magnitude == 1000.0f));
  CHECK_THROWS(outlier_channels(cfg, 33));  // more than n_embd / 4
}

TEST_CASE("a checkpoint made with --outliers holds channels in the thousands in its residual stream",
          "[outliers]") {
  TempDir dir;
  auto w = make_random_weights(dir / "m", outlier_spec(3));
  auto plain = make_random_weights(dir / "plain", outlier_spec(0));
  const ModelConfig& cfg = w->cfg;
  const int C = cfg.n_embd, L = cfg.n_layer, V = cfg.vocab_size, T = 24;
  const auto out = outlier_channels(cfg, 3);
  const std::vector<int> ids = random_ids(T, V, 7);
  std::vector<float> logits, plain_logits;
  const auto res = residuals(*w, ids, logits);
  const auto plain_res = residuals(*plain, ids, plain_logits);

  for (int l = 1; l <= L; ++l) {
    std::vector<float> others;  // every other channel of every row
    for (int t = 0; t < T; ++t) {
      for (int c = 0; c < C; ++c) {
        const float v = res[size_t(l)][size_t(t) * C + c];
        const auto o =
            std::find_if(out.begin(), out.end(), [&](const OutlierChannel& k) { return k.channel == c; });
        if (o == out.end()) {
          others.push_back(v);
          continue;
        }
        const double want = double(o->magnitude) * l / L;  // each block's MLP adds its share
        INFO("after block " << l - 1 << " row " << t << " channel " << c << ": " << v << ", want about "
                            << want);
        REQUIRE(std::abs(v - want) <= 0.1 * std::abs(want));
      }
    }
    const float top = std::max(*std::max_element(others.begin(), others.end()),
                               -*std::min_element(others.begin(), others.end()));
    INFO("after block " << l - 1 << ": other channels rms " << rms(others) << ", largest " << top);
    REQUIRE(rms(others) < 3.0);  // the usual scale: the outliers stand 1000x above it at the end
    REQUIRE(top < 20.0f);
  }
  // In the thousands after the last block, as GPT-2's.
  for (const auto& o : out) REQUIRE(std::abs(res[size_t(L)][size_t(T - 1) * C + o.channel]) >= 900.0f);
  CHECK(rms(plain_res[size_t(L)]) < 3.0);  // and none without --outliers

  // What was observed is what the CPU backend runs: its logits, every row.
  CpuBackend cpu(w, 2);
  std::vector<float> got(size_t(T) * V);
  cpu.forward_all({SeqInput{0, ids, 0}}, nullptr, got.data());
  for (int t = 0; t < T; ++t) {
    INFO("row " << t);
    REQUIRE(check_logits_row(&got[size_t(t) * V], &logits[size_t(t) * V], V, 1e-4) == "");
  }
  // The logits still depend on the input: rows differ by as much as they do without outliers, about.
  auto spread = [&](const std::vector<float>& lg) {
    std::vector<float> d(static_cast<size_t>(V));
    for (int v = 0; v < V; ++v) d[size_t(v)] = lg[size_t(T - 1) * V + v] - lg[size_t(T - 2) * V + v];
    return rms(d);
  };
  INFO("last two rows differ by rms " << spread(logits) << " (without outliers " << spread(plain_logits)
                                      << ")");
  CHECK(spread(logits) > 0.2 * spread(plain_logits));
  CHECK(spread(logits) < 5.0 * spread(plain_logits));
}
