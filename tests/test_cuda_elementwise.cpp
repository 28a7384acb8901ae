// kernels/elementwise.cu against the CPU twins (cpu/cpu_ops.h) on random inputs at awkward sizes, for
// fp32, fp16 and bf16 storage. Inputs are rounded to T on the host first, so the twin sees exactly what
// the kernel sees; outputs are poisoned (NaN bytes) before the launch, and a guard past the end of every
// output must stay poisoned.
#include <catch2/catch.hpp>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cpu/cpu_ops.h"
#include "cuda/cuda_common.h"
#include "cuda_kernels.h"
#include "cuda_test_util.h"
#include "gen/error.h"
#include "test_util.h"

using gen::cuda::DeviceBuffer;
using gen::test::check_close;
using gen::test::DeviceTensor;
using gen::test::poisoned_tensor;
using gen::test::random_ids;
using gen::test::random_tensor;
using gen::test::round_t;
using gen::test::upload_ints;

namespace {

const int kRows[] = {1, 31, 64, 1000, 1025};
const int kCols[] = {13, 20, 64, 768, 1600};  // 13 and 20 (not multiples of 8) take the scalar paths

template <typename T>
struct Tol {  // about one rounding of an O(1) result to T, plus fp32 noise
  static constexpr double atol = 1e-5, rtol = 1e-5;
};
template <>
struct Tol<__half> {
  static constexpr double atol = 1e-2, rtol = 1e-2;
};
template <>
struct Tol<__nv_bfloat16> {
  static constexpr double atol = 2e-2, rtol = 2e-2;
};

template <typename T>
void require_close(const DeviceTensor<T>& got, const std::vector<float>& ref, double atol, double rtol) {
  REQUIRE(ref.size() == got.n);
  const std::vector<float> g = got.download();
  const std::string err = check_close(g.data(), ref.data(), g.size(), atol, rtol);
  INFO(err);
  REQUIRE(err.empty());
  REQUIRE(got.guard_intact());
}

void sync() { CUDA_CHECK(cudaDeviceSynchronize()); }

}  // namespace

TEMPLATE_TEST_CASE("convert_from_f32 and convert_to_f32 round like the host", "[cuda][elementwise]", float,
                   __half, __nv_bfloat16) {
  std::mt19937 rng(1);
  for (size_t n : {size_t(1), size_t(31), size_t(1000), size_t(1025), size_t(100003)}) {
    for (size_t offset : {size_t(0), size_t(1)}) {  // 1: misaligned, the scalar path
      INFO("n " << n << " offset " << offset);
      DeviceTensor<float> src = random_tensor<float>(n + offset, rng, 0.0f, 10.0f);
      DeviceTensor<TestType> mid = poisoned_tensor<TestType>(n + offset);
      gen::cuda::convert_from_f32(mid.get() + offset, src.get() + offset, n, nullptr);
      DeviceTensor<float> back = poisoned_tensor<float>(n + offset);
      gen::cuda::convert_to_f32(back.get() + offset, mid.get() + offset, n, nullptr);
      sync();
      std::vector<float> ref(n + offset, NAN);
      for (size_t i = offset; i < n + offset; ++i) ref[i] = round_t<TestType>(src.host[i]);
      const std::vector<float> got = back.download();
      REQUIRE(check_close(got.data() + offset, ref.data() + offset, n, 0, 0).empty());  // exact
      REQUIRE(std::isnan(got[0]) == (offset == 1));  // the element before stays untouched
      REQUIRE(mid.guard_intact());
      REQUIRE(back.guard_intact());
    }
  }
  gen::cuda::convert_from_f32<TestType>(nullptr, nullptr, 0, nullptr);  // n == 0: no launch
  sync();
}

namespace {

// N rows of random tokens at random positions through embed, against the twin row by row.
template <typename T>
void check_embed(const DeviceTensor<T>& wte, const DeviceTensor<T>& wpe, int vocab, int n_pos, int N, int C,
                 std::mt19937& rng) {
  INFO("N " << N << " C " << C);
  std::vector<int> tok(N), pos(N);
  for (int r = 0; r < N; ++r) tok[r] = int(rng() % vocab), pos[r] = int(rng() % n_pos);
  DeviceBuffer<int> d_tok = upload_ints(tok), d_pos = upload_ints(pos);
  DeviceTensor<T> out = poisoned_tensor<T>(size_t(N) * C);
  gen::cuda::embed(out.get(), d_tok.get(), d_pos.get(), N, wte.get(), wpe.get(), C, nullptr);
  sync();
  std::vector<float> ref(size_t(N) * C);
  for (int r = 0; r < N; ++r) {
    gen::cpu::embed(ref.data() + size_t(r) * C, &tok[r], 1, pos[r], wte.host.data(), wpe.host.data(), C);
  }
  for (float& v : ref) v = round_t<T>(v);
  require_close(out, ref, Tol<T>::atol, Tol<T>::rtol);
}

}  // namespace

TEMPLATE_TEST_CASE("embed adds token and position rows", "[cuda][elementwise]", float, __half,
                   __nv_bfloat16) {
  std::mt19937 rng(2);
  const int vocab = 97, n_pos = 1100;
  for (int C : kCols) {
    DeviceTensor<TestType> wte = random_tensor<TestType>(size_t(vocab) * C, rng);
    DeviceTensor<TestType> wpe = random_tensor<TestType>(size_t(n_pos) * C, rng, 0.0f, 0.5f);
    for (int N : kRows) check_embed(wte, wpe, vocab, n_pos, N, C, rng);
  }
}

namespace {

// x += y + bias (when y), then out = layernorm(x) * w + b, against the twin on the rounded residual.
template <typename T>
void check_add_layernorm(int N, int C, bool with_y, bool with_bias, size_t offset, std::mt19937& rng,
                         float mean = 0.0f) {
  INFO("N " << N << " C " << C << " y " << with_y << " bias " << with_bias << " offset " << offset << " mean "
            << mean);
  const size_t n = size_t(N) * C;
  const float eps = 1e-5f;
  DeviceTensor<T> x = random_tensor<T>(n + offset, rng, mean, 1.0f);
  DeviceTensor<T> y = random_tensor<T>(n + offset, rng, 0.0f, 0.5f);
  DeviceTensor<T> bias = random_tensor<T>(C + offset, rng, 0.0f, 0.1f);
  DeviceTensor<T> w = random_tensor<T>(C + offset, rng, 1.0f, 0.2f);
  DeviceTensor<T> b = random_tensor<T>(C + offset, rng, 0.0f, 0.2f);
  DeviceTensor<T> out = poisoned_tensor<T>(n + offset);
  gen::cuda::add_layernorm(x.get() + offset, with_y ? y.get() + offset : nullptr,
                           with_bias ? bias.get() + offset : nullptr, out.get() + offset, w.get() + offset,
                           b.get() + offset, N, C, eps, nullptr);
  sync();
  std::vector<float> x_ref(x.host.begin() + offset, x.host.end());
  if (with_y) {
    for (size_t i = 0; i < n; ++i) {
      const float bb = with_bias ? bias.host[offset + i % C] : 0.0f;
      x_ref[i] = round_t<T>(x_ref[i] + (y.host[offset + i] + bb));  // the kernel's order of the adds
    }
  }
  std::vector<float> out_ref(n);
  gen::cpu::layernorm(out_ref.data(), x_ref.data(), w.host.data() + offset, b.host.data() + offset, N, C,
                      eps);
  for (float& v : out_ref) v = round_t<T>(v);
  x_ref.insert(x_ref.begin(), x.host.begin(), x.host.begin() + offset);
  out_ref.insert(out_ref.begin(), offset, NAN);
  const std::vector<float> x_got = x.download(), out_got = out.download();
  REQUIRE(check_close(x_got.data(), x_ref.data(), n + offset, 0, 0)
              .empty());  // the same fp32 adds, rounded alike
  const std::string err =
      check_close(out_got.data() + offset, out_ref.data() + offset, n, Tol<T>::atol, Tol<T>::rtol);
  INFO(err);
  REQUIRE(err.empty());
  REQUIRE((offset == 0 || std::isnan(out_got[0])));
  REQUIRE(x.guard_intact());
  REQUIRE(out.guard_intact());
}

}  // namespace

TEMPLATE_TEST_CASE("add_layernorm adds the residual and normalizes each row", "[cuda][elementwise]", float,
                   __half, __nv_bfloat16) {
  std::mt19937 rng(3);
  for (int C : kCols) {
    for (int N : kRows) {
      check_add_layernorm<TestType>(N, C, true, true, 0, rng);
      check_add_layernorm<TestType>(N, C, false, false, 0, rng);  // plain layernorm, x untouched
    }
  }
  for (int C : {1024, 1280}) check_add_layernorm<TestType>(31, C, true, true, 0, rng);  // gpt2-medium, -large
  check_add_layernorm<TestType>(31, 768, true, false, 0, rng);  // no bias
  check_add_layernorm<TestType>(31, 768, true, true, 1, rng);   // misaligned pointers: the scalar path
  check_add_layernorm<TestType>(31, 1600, false, false, 1, rng);
  gen::cuda::add_layernorm<TestType>(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0, 768, 1e-5f,
                                     nullptr);
  sync();
}

TEMPLATE_TEST_CASE("add_layernorm runs at its widest rows or refuses them by name", "[cuda][elementwise]", float,
                   __half) {
  // Its fp32 row copy and its static reduction slots pass the 48 KB of shared memory a block gets by
  // default at 12225 columns: from there the launcher opts in (cudaFuncSetAttribute). Every width up to
  // 16384 must launch (no CUDA "invalid argument"), a wider one must get the launcher's error.
  std::mt19937 rng(8);
  check_add_layernorm<TestType>(3, 8192, true, true, 0, rng);
  for (int C : {12224, 12240, 12288, 12289, 16000, 16384}) {
    INFO("C " << C);
    check_add_layernorm<TestType>(3, C, true, true, 0, rng);
    check_add_layernorm<TestType>(2, C, false, false, 1, rng);  // the scalar kernel opts in on its own
  }
  try {
    check_add_layernorm<TestType>(3, 16385, true, true, 0, rng);
    FAIL("16385 columns were accepted");
  } catch (const gen::Error& e) {
    const std::string what = e.what();
    INFO(what);
    REQUIRE(what.rfind("cuda::add_layernorm: n_embd", 0) == 0);
  }
}

TEST_CASE("add_layernorm keeps its accuracy on rows with a large mean", "[cuda][elementwise]") {
  // fp32 statistics of 1600 values near 100 would lose digits without the kernel's shift.
  std::mt19937 rng(4);
  for (int C : {768, 1600}) check_add_layernorm<float>(64, C, true, true, 0, rng, 100.0f);
  check_add_layernorm<float>(64, 1600, false, false, 0, rng, 100.0f);
}

namespace {

// x = gelu(x + bias) over N rows of cols (bias and gelu each optional), against the twin.
template <typename T>
void check_bias_act(int N, int cols, bool gelu, bool with_bias, std::mt19937& rng) {
  INFO("N " << N << " cols " << cols << " gelu " << gelu << " bias " << with_bias);
  const size_t n = size_t(N) * cols;
  DeviceTensor<T> x = random_tensor<T>(n, rng, 0.0f, 2.0f);
  DeviceTensor<T> bias = random_tensor<T>(cols, rng, 0.0f, 0.5f);
  gen::cuda::bias_act(x.get(), with_bias ? bias.get() : nullptr, N, cols, gelu, nullptr);
  sync();
  std::vector<float> ref(n);
  for (size_t i = 0; i < n; ++i) ref[i] = x.host[i] + (with_bias ? bias.host[i % cols] : 0.0f);
  if (gelu) gen::cpu::gelu_inplace(ref.data(), n);
  for (float& v : ref) v = round_t<T>(v);
  require_close(x, ref, Tol<T>::atol, Tol<T>::rtol);
}

}  // namespace

TEMPLATE_TEST_CASE("bias_act adds the bias and applies gelu_new", "[cuda][elementwise]", float, __half,
                   __nv_bfloat16) {
  std::mt19937 rng(5);
  std::vector<int> cols_list(std::begin(kCols), std::end(kCols));
  for (int cols : {2304, 3072, 6400}) cols_list.push_back(cols);  // 3 x 768, 4 x 768, 4 x 1600
  for (int cols : cols_list) {
    for (int N : kRows) {
      for (int mode = 0; mode < 3; ++mode) {  // 0: bias + gelu, 1: bias only, 2: gelu without bias
        check_bias_act<TestType>(N, cols, mode != 1, mode != 2, rng);
      }
    }
  }
}

TEMPLATE_TEST_CASE("add_bias_residual adds the projection and its bias to the residual",
                   "[cuda][elementwise]", float, __half, __nv_bfloat16) {
  std::mt19937 rng(6);
  for (int C : kCols) {
    for (int N : kRows) {
      for (bool with_bias : {true, false}) {
        INFO("N " << N << " C " << C << " bias " << with_bias);
        const size_t n = size_t(N) * C;
        DeviceTensor<TestType> x = random_tensor<TestType>(n, rng);
        DeviceTensor<TestType> y = random_tensor<TestType>(n, rng);
        DeviceTensor<TestType> bias = random_tensor<TestType>(C, rng, 0.0f, 0.5f);
        gen::cuda::add_bias_residual(x.get(), y.get(), with_bias ? bias.get() : nullptr, N, C, nullptr);
        sync();
        std::vector<float> yb(n), ref = x.host;
        for (size_t i = 0; i < n; ++i) yb[i] = y.host[i] + (with_bias ? bias.host[i % C] : 0.0f);
        gen::cpu::add_inplace(ref.data(), yb.data(), n);
        for (float& v : ref) v = round_t<TestType>(v);
        require_close(x, ref, 0, 0);  // the same fp32 adds, rounded alike
      }
    }
  }
}

TEMPLATE_TEST_CASE("gather_rows copies the chosen rows", "[cuda][elementwise]", float, __half,
                   __nv_bfloat16) {
  std::mt19937 rng(7);
  for (int C : kCols) {
    for (int N : kRows) {
      for (int B : {1, 7, 64}) {
        INFO("N " << N << " C " << C << " B " << B);
        DeviceTensor<TestType> x = random_tensor<TestType>(size_t(N) * C, rng);
        const std::vector<int> rows = random_ids(B, N, rng);
        DeviceBuffer<int> d_rows = upload_ints(rows);
        DeviceTensor<TestType> out = poisoned_tensor<TestType>(size_t(B) * C);
        gen::cuda::gather_rows(out.get(), x.get(), d_rows.get(), B, C, nullptr);
        sync();
        std::vector<float> ref(size_t(B) * C);
        for (int i = 0; i < B; ++i) {
          std::memcpy(&ref[size_t(i) * C], &x.host[size_t(rows[i]) * C], sizeof(float) * C);
        }
        require_close(out, ref, 0, 0);
      }
    }
  }
}

TEMPLATE_TEST_CASE("grid-stride kernels cover tensors larger than their grid", "[cuda][elementwise]", float,
                   __half, __nv_bfloat16) {
  // The launchers cap the grid at 8192 blocks of 256 threads (2^21 threads); these sizes give every
  // thread several packs (or elements), so the `v += thread_stride()` steps run.
  std::mt19937 rng(9);
  {  // convert: a weight-upload chunk (16M floats) plus a tail of 3
    const size_t n = (size_t(16) << 20) + 3;
    DeviceTensor<float> src = random_tensor<float>(n, rng, 0.0f, 10.0f);
    DeviceTensor<TestType> mid = poisoned_tensor<TestType>(n);
    DeviceTensor<float> back = poisoned_tensor<float>(n);
    gen::cuda::convert_from_f32(mid.get(), src.get(), n, nullptr);
    gen::cuda::convert_to_f32(back.get(), mid.get(), n, nullptr);
    sync();
    std::vector<float> ref(n);
    for (size_t i = 0; i < n; ++i) ref[i] = round_t<TestType>(src.host[i]);
    require_close(back, ref, 0, 0);
    REQUIRE(mid.guard_intact());
  }
  check_bias_act<TestType>(2700, 6400, true, true, rng);   // packed
  check_bias_act<TestType>(200000, 13, true, true, rng);   // scalar
  {  // embed: rows found by division of the pack index
    const int vocab = 97, n_pos = 1024, C = 1600;
    DeviceTensor<TestType> wte = random_tensor<TestType>(size_t(vocab) * C, rng);
    DeviceTensor<TestType> wpe = random_tensor<TestType>(size_t(n_pos) * C, rng, 0.0f, 0.5f);
    check_embed(wte, wpe, vocab, n_pos, 11000, C, rng);
  }
}
