// The CUDA backend's K/V moves (device-to-device copies, and to and from the host for the K/V files)
// against the CPU backend, and the prefix cache on the GPU: the same tokens as without it.
#include <catch2/catch.hpp>

#include <cstring>
#include <map>
#include <random>

#include "cpu/cpu_backend.h"
#include "cuda/cuda_backend.h"
#include "fixture_model.h"
#include "gen/generator.h"
#include "gen/prefix_cache.h"
#include "gen/session_file.h"
#include "prefix_test_util.h"
#include "test_util.h"

using namespace gen;
using namespace gen::test;

namespace {

constexpr ComputeDType kDtypes[] = {ComputeDType::fp32, ComputeDType::fp16, ComputeDType::bf16};

// The tests' model (prefix_model_spec), made for each test, and its stand-in tokenizer.
struct Rig {
  TempDir dir;
  std::shared_ptr<const Weights> w = make_random_weights(dir.path(), prefix_model_spec());
  Tokenizer tok = tiny_tokenizer(320);
};

std::vector<uint8_t> read_all(Backend& be, const KVCache& cache, int slot, int n) {
  std::vector<uint8_t> host(cache.bytes_for_positions(size_t(n)));
  be.read_kv(cache, slot, n, host.data(), n);
  return host;
}

// Positions [from, from + n) of every head of a host copy [L][2][H][host_n][D] of `elem`-byte values.
std::vector<uint8_t> heads(const std::vector<uint8_t>& host, const ModelConfig& c, size_t elem, int host_n, int from,
                           int n) {
  std::vector<uint8_t> out;
  const size_t row = size_t(c.head_dim()) * elem;
  for (int head = 0; head < c.n_layer * 2 * c.n_head; ++head) {
    const uint8_t* p = host.data() + (size_t(head) * host_n + from) * row;
    out.insert(out.end(), p, p + size_t(n) * row);
  }
  return out;
}

std::vector<float> forward_one(Backend& be, KVCache& cache, int slot, std::vector<int> tokens, int pos0) {
  std::vector<float> logits(size_t(be.config().vocab_size));
  be.forward({SeqInput{slot, std::move(tokens), pos0}}, &cache, logits.data());
  return logits;
}

}  // namespace

TEST_CASE("CUDA K/V moves are exact, and a copied slot continues as the original", "[cuda][prefix]") {
  Rig rig;
  const auto& w = rig.w;
  std::mt19937 rng{8};
  const std::vector<int> prompt = random_ids(rng, 50);
  for (ComputeDType dt : kDtypes) {
    auto gpu = make_cuda_backend(w, dt);
    const ModelConfig& c = gpu->config();
    const size_t elem = dt == ComputeDType::fp32 ? 4 : 2;
    INFO("dtype " << gpu->dtype() << ", K/V " << gpu->kv_dtype());
    REQUIRE(gpu->kv_dtype() == (dt == ComputeDType::fp32 ? "f32" : dt == ComputeDType::fp16 ? "f16" : "bf16"));
    auto cache = gpu->make_cache(3, 96);
    forward_one(*gpu, *cache, 0, prompt, 0);
    const std::vector<uint8_t> a = read_all(*gpu, *cache, 0, 50);

    gpu->copy_kv(*cache, 0, 0, *cache, 1, 0, 50);
    REQUIRE(read_all(*gpu, *cache, 1, 50) == a);
    auto pool = gpu->make_cache(2, PrefixCache::kBlock);
    gpu->copy_kv(*cache, 0, 16, *pool, 1, 0, PrefixCache::kBlock);
    REQUIRE(heads(read_all(*gpu, *pool, 1, 16), c, elem, 16, 0, 16) == heads(a, c, elem, 50, 16, 16));
    gpu->write_kv(*cache, 2, a.data(), 50, 24);
    REQUIRE(cache->length(2) == 24);
    REQUIRE(heads(read_all(*gpu, *cache, 2, 24), c, elem, 24, 0, 24) == heads(a, c, elem, 50, 0, 24));

    const auto next0 = forward_one(*gpu, *cache, 0, {7}, 50);
    const auto next1 = forward_one(*gpu, *cache, 1, {7}, 50);
    REQUIRE(std::memcmp(next0.data(), next1.data(), next0.size() * sizeof(float)) == 0);

    if (dt == ComputeDType::fp32) {  // the GPU's K/V are the CPU's, within fp32's tolerance
      CpuBackend cpu(w, 2);
      auto ccache = cpu.make_cache(1, 96);
      forward_one(cpu, *ccache, 0, prompt, 0);
      const auto ref = read_all(cpu, *ccache, 0, 50);
      REQUIRE(check_close(reinterpret_cast<const float*>(a.data()), reinterpret_cast<const float*>(ref.data()),
                          a.size() / 4, 1e-4, 1e-4) == "");
    }
  }
}

TEST_CASE("CUDA with the prefix cache gives each prompt its tokens without it, computing shared blocks once",
          "[cuda][prefix][batch]") {
  Rig rig;
  for (ComputeDType dt : kDtypes) {
    auto gpu = make_cuda_backend(rig.w, dt);
    Generator g(*gpu, rig.tok);
    std::mt19937 rng{40};
    const auto reqs = sharing_requests(rng, 0.9f);
    const auto reference = run_all(g, reqs, 4);
    for (int batch : {1, 3, 8}) {
      PrefixCache pc(*gpu, size_t(16) << 20);
      g.set_prefix_cache(&pc);
      const auto got = run_all(g, reqs, batch);
      g.set_prefix_cache(nullptr);
      for (size_t i = 0; i < reqs.size(); ++i) {
        INFO(gpu->dtype() << ", batch " << batch << ", request " << i);
        REQUIRE(got.at(int(i)).tokens == reference.at(int(i)).tokens);
        REQUIRE(got.at(int(i)).timing.cached_tokens == expected_reuse(reqs, i));
      }
    }
  }
}

TEST_CASE("A CUDA session's K/V saved to a K/V file's fields load into a new session that continues alike",
          "[cuda][prefix]") {
  Rig rig;
  for (ComputeDType dt : kDtypes) {
    auto gpu = make_cuda_backend(rig.w, dt);
    Generator g(*gpu, rig.tok);
    std::mt19937 rng{41};
    const std::vector<int> prompt = random_ids(rng, 60);
    GenOptions opt;
    opt.max_new_tokens = 10;
    opt.sampling.temperature = 0;
    Session first;
    const GenResult a = g.generate(prompt, opt, {}, &first);
    KvFile f = kv_file_for(*gpu, "prompt", ModelFingerprint{});
    REQUIRE(f.kv_dtype == gpu->kv_dtype());
    save_session_kv(*gpu, first, int(prompt.size()), &f);
    Session second;
    load_session_kv(*gpu, f, int(prompt.size()) - 1, 256, &second);
    const GenResult b = g.generate(prompt, opt, {}, &second);
    INFO(gpu->dtype());
    REQUIRE(b.timing.cached_tokens == int(prompt.size()) - 1);
    REQUIRE(b.tokens == a.tokens);
  }
}
