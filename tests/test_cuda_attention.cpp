// kv_write and attention (kernels/attention.cu) against their CPU twins (cpu/cpu_ops.h) on random
// inputs at awkward sizes, for float, __half and __nv_bfloat16 storage. The 16-bit cases feed the CPU
// twin the same rounded inputs. Outputs start as NaN so that an unwritten element cannot pass.
// The CUDA cache is [slot][H][max_ctx][D]: one slot's slice is the CPU twin's [H][ctx][D] with
// ctx = max_ctx, so the reference reads the very same host arrays.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <type_traits>
#include <vector>

#include "cpu/cpu_ops.h"
#include "cuda/cuda_common.h"
#include "cuda_kernels.h"
#include "cuda_test_util.h"
#include "test_util.h"

using gen::cuda::AttentionWorkspace;
using gen::cuda::CacheLayer;
using gen::cuda::DeviceBuffer;
using gen::test::check_close;
using gen::test::DeviceTensor;
using gen::test::download;
using gen::test::poison;
using gen::test::random_ids;
using gen::test::random_tensor;
using gen::test::upload_ints;

namespace {

template <typename T>
struct Tol {  // fp32: the house tolerance; 16-bit: the output is rounded to T
  static constexpr double atol = std::is_same_v<T, float> ? 1e-5 : 1e-2;
  static constexpr double rtol = std::is_same_v<T, float> ? 1e-4 : 1e-2;
};

// ---- kv_write -----------------------------------------------------------------------------------------

template <typename T>
void check_kv_write(int N, int H, int D, uint32_t seed) {
  const int S = 4, ctx = 300, C = H * D;  // S * ctx >= N: every row gets its own (slot, pos)
  const size_t cache_n = size_t(S) * H * ctx * D;
  auto k = random_tensor<T>(cache_n, seed), v = random_tensor<T>(cache_n, seed + 1);
  auto qkv = random_tensor<T>(size_t(N) * 3 * C, seed + 2);
  std::vector<int> pairs(S * ctx);
  for (int i = 0; i < S * ctx; ++i) pairs[i] = i;
  std::shuffle(pairs.begin(), pairs.end(), std::mt19937(seed + 3));
  std::vector<int> slot(N), pos(N);
  for (int r = 0; r < N; ++r) slot[r] = pairs[r] / ctx, pos[r] = pairs[r] % ctx;
  auto d_slot = upload_ints(slot), d_pos = upload_ints(pos);

  std::vector<float> want_k = k.host, want_v = v.host;  // untouched positions keep their values
  for (int r = 0; r < N; ++r)
    for (int h = 0; h < H; ++h)
      for (int d = 0; d < D; ++d) {
        const size_t dst = ((size_t(slot[r]) * H + h) * ctx + pos[r]) * D + d;
        want_k[dst] = qkv.host[size_t(r) * 3 * C + C + h * D + d];
        want_v[dst] = qkv.host[size_t(r) * 3 * C + 2 * C + h * D + d];
      }
  gen::cuda::kv_write<T>(CacheLayer<T>{k.dev.get(), v.dev.get(), ctx}, qkv.dev.get(), d_slot.get(),
                         d_pos.get(), N, H, D, nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  INFO("N " << N << ", H " << H << ", D " << D);
  REQUIRE(check_close(k.download().data(), want_k.data(), cache_n, 1e-12, 0) == "");  // exact copies
  REQUIRE(check_close(v.download().data(), want_v.data(), cache_n, 1e-12, 0) == "");
}

// ---- attention ------------------------------------------------------------------------------------

// A cache full of random K and V (also past each row's position, which attention must not read),
// rows of random queries, each with its slot and position.
template <typename T>
struct AttnCase {
  int H, D, n_slots, max_ctx;
  std::vector<int> slot, pos;
  DeviceTensor<T> k, v, qkv;
  DeviceBuffer<int> d_slot, d_pos;
  int N() const { return int(slot.size()); }
  CacheLayer<T> cache() const { return {k.dev.get(), v.dev.get(), max_ctx}; }
};

template <typename T>
AttnCase<T> make_case(int H, int D, int n_slots, int max_ctx, std::vector<int> slot, std::vector<int> pos,
                      uint32_t seed) {
  const size_t cache_n = size_t(n_slots) * H * max_ctx * D, qkv_n = slot.size() * 3 * H * D;
  // q at scale 2 makes the softmax peaky, so the running-max rescaling matters.
  AttnCase<T> c{H, D, n_slots, max_ctx, std::move(slot), std::move(pos), {}, {}, {}, {}, {}};
  c.k = random_tensor<T>(cache_n, seed);
  c.v = random_tensor<T>(cache_n, seed + 1);
  c.qkv = random_tensor<T>(qkv_n, seed + 2, 0.0f, 2.0f);
  c.d_slot = upload_ints(c.slot);
  c.d_pos = upload_ints(c.pos);
  return c;
}

// Decode-like: rows spread over min(rows, 8) slots at random positions, one at the last position.
template <typename T>
AttnCase<T> decode_case(int rows, int ctx, int H, int D, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int> slot(rows), pos = random_ids(rows, ctx, rng);
  for (int r = 0; r < rows; ++r) slot[r] = r % std::min(rows, 8);
  pos[0] = ctx - 1;
  return make_case<T>(H, D, std::min(rows, 8), ctx, slot, pos, seed + 10);
}

// Prefill-like: the T tokens 0..T-1 of slot 1 (slot 0 is there so that the slot offset matters).
template <typename T>
AttnCase<T> prefill_case(int T_, int H, int D, uint32_t seed) {
  std::vector<int> slot(T_, 1), pos(T_);
  for (int t = 0; t < T_; ++t) pos[t] = t;
  return make_case<T>(H, D, 2, T_ + 7, slot, pos, seed);
}

template <typename T>
std::vector<float> reference(const AttnCase<T>& c) {
  const int C = c.H * c.D;
  std::vector<float> out(size_t(c.N()) * C), scores(c.max_ctx);
  const size_t slot_n = size_t(c.H) * c.max_ctx * c.D;
  for (int r = 0; r < c.N(); ++r)
    gen::cpu::attention(out.data() + size_t(r) * C, c.qkv.host.data() + size_t(r) * 3 * C,
                        c.k.host.data() + c.slot[r] * slot_n, c.v.host.data() + c.slot[r] * slot_n, c.max_ctx,
                        1, c.pos[r], c.H, c.D, scores.data(), 1);
  return out;
}

// Runs attention into a NaN-poisoned output; *split_ran says whether the NaN-poisoned workspace was
// written, i.e. whether the split + merge path ran; *ws_out receives the workspace [N, H, max_splits, D + 2].
template <typename T>
std::vector<float> run_attention(const AttnCase<T>& c, int max_splits, bool* split_ran = nullptr,
                                 std::vector<float>* ws_out = nullptr) {
  DeviceBuffer<T> out(size_t(c.N()) * c.H * c.D);
  poison(out);
  DeviceBuffer<float> partial(gen::cuda::attention_workspace_floats(c.N(), c.H, c.D, max_splits));
  poison(partial);
  gen::cuda::attention<T>(out.get(), c.qkv.dev.get(), c.cache(), c.d_slot.get(), c.d_pos.get(), c.N(), c.H,
                          c.D, AttentionWorkspace{partial.get(), max_splits}, nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  if (split_ran || ws_out) {
    auto ws = download(partial);
    if (split_ran) *split_ran = std::any_of(ws.begin(), ws.end(), [](float x) { return !std::isnan(x); });
    if (ws_out) *ws_out = std::move(ws);
  }
  return download(out);
}

template <typename T>
void check_attention(const AttnCase<T>& c, int max_splits) {
  const auto ref = reference(c);
  const auto got = run_attention(c, max_splits);
  INFO("rows " << c.N() << ", max_ctx " << c.max_ctx << ", H " << c.H << ", D " << c.D << ", max_splits "
               << max_splits);
  REQUIRE(check_close(got.data(), ref.data(), ref.size(), Tol<T>::atol, Tol<T>::rtol) == "");
}

}  // namespace

TEMPLATE_TEST_CASE("kv_write puts each row's K and V at its slot and position", "[cuda][attention]", float,
                   __half, __nv_bfloat16) {
  uint32_t seed = 1;
  for (int N : {1, 31, 64, 1000, 1025}) check_kv_write<TestType>(N, 3, 64, seed += 10);
  check_kv_write<TestType>(31, 5, 40, 77);  // D/8 = 5 vectors per head: no power of two
  check_kv_write<TestType>(64, 2, 256, 78);
}

TEMPLATE_TEST_CASE("decode attention equals the CPU twin", "[cuda][attention]", float, __half,
                   __nv_bfloat16) {
  uint32_t seed = 100;
  for (int rows : {1, 8, 64})
    for (int ctx : {1, 31, 64, 1000, 1024})
      check_attention(decode_case<TestType>(rows, ctx, 4, 64, seed += 10), 32);
  check_attention(decode_case<TestType>(8, 1000, 25, 64, seed += 10), 32);  // GPT-2 XL's 25 heads
}

TEMPLATE_TEST_CASE("attention handles odd head sizes", "[cuda][attention]", float, __half, __nv_bfloat16) {
  // D = 8: one lane per key; 40: 5 or 10 vectors in 8 or 16 lanes; 256 float: 2 vectors per lane.
  uint32_t seed = 300;
  for (int D : {8, 40, 256})
    for (int rows : {1, 8}) check_attention(decode_case<TestType>(rows, 1000, 3, D, seed += 10), 32);
}

TEMPLATE_TEST_CASE("prefill attention equals the CPU twin", "[cuda][attention]", float, __half,
                   __nv_bfloat16) {
  check_attention(prefill_case<TestType>(31, 4, 64, 500), 32);
  check_attention(prefill_case<TestType>(1025, 4, 64, 510), 32);
  check_attention(prefill_case<TestType>(1025, 4, 64, 520), 1);
}

// One step as the backend batches it: the 31 prompt rows of slot 1 continuing at position 969 (row t
// attends 0..969+t), then decode rows of other slots at 999, 64 (65 keys: a second chunk of one key),
// 63 (exactly one chunk) and 0. 34 rows x 4 heads cannot fill the GPU, so the long rows are split.
TEMPLATE_TEST_CASE("a mixed prompt and decode batch equals the CPU twin", "[cuda][attention]", float, __half,
                   __nv_bfloat16) {
  std::vector<int> slot(31, 1), pos(31);
  for (int t = 0; t < 31; ++t) pos[t] = 969 + t;
  slot.insert(slot.end(), {0, 2, 3, 4});
  pos.insert(pos.end(), {999, 64, 63, 0});
  const auto c = make_case<TestType>(4, 64, 5, 1000, slot, pos, 800);
  bool split_ran = false;
  const auto got = run_attention(c, 32, &split_ran);
  const auto ref = reference(c);
  CHECK(split_ran);
  REQUIRE(check_close(got.data(), ref.data(), ref.size(), Tol<TestType>::atol, Tol<TestType>::rtol) == "");
}

// max_ctx 4096, 2 rows x 2 heads: with 64 SMs or more (every sm_90 part) the launcher cuts 64 chunks of
// 64 keys, so the merge weighs more splits than its warp has lanes (and the workspace's last split is used).
TEMPLATE_TEST_CASE("attention merges up to 64 splits", "[cuda][attention]", float, __half, __nv_bfloat16) {
  const int H = 2, D = 64, max_splits = 64;
  const auto c = make_case<TestType>(H, D, 2, 4096, {0, 1}, {4095, 2047}, 900);
  std::vector<float> ws;
  const auto got = run_attention(c, max_splits, nullptr, &ws);
  const auto ref = reference(c);
  REQUIRE(check_close(got.data(), ref.data(), ref.size(), Tol<TestType>::atol, Tol<TestType>::rtol) == "");
  int dev = 0, sms = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  INFO(sms << " SMs");
  const size_t last_split = size_t(max_splits - 1) * (D + 2);  // row 0, head 0, split 63
  if (sms >= 64) CHECK_FALSE(std::isnan(ws[last_split]));
}

TEMPLATE_TEST_CASE("split and unsplit attention agree", "[cuda][attention]", float, __half, __nv_bfloat16) {
  for (int rows : {1, 3}) {  // 12 or 36 blocks: too few for any GPU of 10 SMs or more
    const auto c = decode_case<TestType>(rows, 1000, 12, 64, 600 + rows);
    bool unsplit_wrote_ws = true, split_wrote_ws = false;
    const auto whole = run_attention(c, 1, &unsplit_wrote_ws);
    const auto split = run_attention(c, 64, &split_wrote_ws);
    const auto ref = reference(c);
    INFO("rows " << rows);
    CHECK_FALSE(unsplit_wrote_ws);  // max_splits 1: the workspace stays untouched
    CHECK(split_wrote_ws);          // max_splits 64: the context is split
    REQUIRE(check_close(split.data(), whole.data(), ref.size(), Tol<TestType>::atol, Tol<TestType>::rtol) ==
            "");
    REQUIRE(check_close(whole.data(), ref.data(), ref.size(), Tol<TestType>::atol, Tol<TestType>::rtol) ==
            "");
    REQUIRE(check_close(split.data(), ref.data(), ref.size(), Tol<TestType>::atol, Tol<TestType>::rtol) ==
            "");
  }
  // Without a workspace the launcher must not split, whatever max_splits says.
  const auto c = decode_case<TestType>(1, 1000, 4, 64, 650);
  DeviceBuffer<TestType> out(size_t(4) * 64);
  poison(out);
  gen::cuda::attention<TestType>(out.get(), c.qkv.dev.get(), c.cache(), c.d_slot.get(), c.d_pos.get(), 1, 4,
                                 64, AttentionWorkspace{nullptr, 16}, nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  const auto ref = reference(c);
  REQUIRE(check_close(download(out).data(), ref.data(), ref.size(), Tol<TestType>::atol,
                      Tol<TestType>::rtol) == "");
}

TEMPLATE_TEST_CASE("kv_write skips rows outside the cache", "[cuda][attention]", float, __half, __nv_bfloat16) {
  const int H = 2, D = 16, ctx = 8, S = 2;
  auto k = random_tensor<TestType>(size_t(S) * H * ctx * D, 41), v = random_tensor<TestType>(k.host.size(), 42);
  auto qkv = random_tensor<TestType>(size_t(3) * 3 * H * D, 43);
  auto d_slot = upload_ints({-1, 0, 1}), d_pos = upload_ints({0, ctx, -1});  // pos == max_ctx: one past the end
  gen::cuda::kv_write<TestType>(CacheLayer<TestType>{k.dev.get(), v.dev.get(), ctx}, qkv.dev.get(), d_slot.get(),
                                d_pos.get(), 3, H, D, nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  REQUIRE(check_close(k.download().data(), k.host.data(), k.host.size(), 0, 0) == "");
  REQUIRE(check_close(v.download().data(), v.host.data(), v.host.size(), 0, 0) == "");
}

TEST_CASE("attention launchers reject bad shapes", "[cuda][attention]") {
  DeviceBuffer<float> buf(4096);
  DeviceBuffer<int> idx(4);
  CacheLayer<float> cache{buf.get(), buf.get(), 4};
  AttentionWorkspace ws{};
  auto attn = [&](int N, int H, int D) {
    gen::cuda::attention<float>(buf.get(), buf.get(), cache, idx.get(), idx.get(), N, H, D, ws, nullptr);
  };
  CHECK_THROWS_AS(attn(1, 2, 12), gen::Error);   // D not a multiple of 8
  CHECK_THROWS_AS(attn(1, 1, 264), gen::Error);  // D > 256
  CHECK_THROWS_AS(attn(-1, 2, 16), gen::Error);
  CHECK_THROWS_AS(attn(1, 0, 16), gen::Error);
  CHECK_NOTHROW(attn(0, 2, 16));  // nothing to do
  CHECK_THROWS_AS(gen::cuda::kv_write<float>(cache, buf.get(), idx.get(), idx.get(), 1, 2, 20, nullptr),
                  gen::Error);
  CHECK_THROWS_AS(gen::cuda::kv_write<float>(cache, buf.get() + 1, idx.get(), idx.get(), 1, 2, 16, nullptr),
                  gen::Error);  // qkv not 16-byte aligned
  CHECK(gen::cuda::attention_workspace_floats(3, 12, 64, 8) == size_t(3) * 12 * 8 * 66);
  CUDA_CHECK(cudaDeviceSynchronize());
}
