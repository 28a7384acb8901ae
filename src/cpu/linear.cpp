#include "cpu/linear.h"

#include <dnnl.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#include "cpu/cpu_ops.h"
#include "cpu/huge_pages.h"
#include "gen/error.h"

namespace gen::cpu {

Precision parse_dtype(const std::string& s) {
  if (s.empty() || s == "fp32") return Precision::fp32;
  if (s == "bf16") return Precision::bf16;
  if (s == "int8") return Precision::int8;
  throw InputError("--dtype " + s + " is not supported on the CPU (fp32, bf16 or int8)", "--dtype");
}

const char* dtype_name(Precision d) { return d == Precision::bf16 ? "bf16" : d == Precision::int8 ? "int8" : "fp32"; }

uint16_t to_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // NaN: quiet, keep the sign
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

float from_bf16(uint16_t b) {
  const uint32_t u = uint32_t(b) << 16;
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

float quantize_row(const float* x, int n, int8_t* q) {
  float m = 0;
  for (int i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
  const float scale = m > 0 ? m / 127.0f : 1.0f, inv = 1.0f / scale;
  for (int i = 0; i < n; ++i) q[i] = int8_t(std::clamp(std::nearbyint(x[i] * inv), -127.0f, 127.0f));
  return scale;
}

bool plain_forced() {
  static const bool forced = [] {
    const char* v = std::getenv("GEN_CPU_PLAIN");
    return v && std::strcmp(v, "1") == 0;
  }();
  return forced;
}

namespace {
dnnl::engine& cpu_engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

float weight_at(const WeightView& w, int k, int n) {
  return w.stored_transposed ? w.data[size_t(n) * w.K + k] : w.data[size_t(k) * w.N + n];
}
}  // namespace

// The oneDNN side: the weights in the blocked layout its kernel chose (one layout serves every row
// count), and a matmul per row count T (oneDNN's own primitive cache backs this map).
struct Linear::Dnnl {
  using md = dnnl::memory::desc;
  dnnl::memory::data_type src_dt;
  md w_desc;
  std::unique_ptr<HugePageBuffer> storage;  // backs `weights`
  dnnl::memory weights;
  dnnl::primitive_attr attr;
  dnnl::stream stream{cpu_engine()};
  std::map<int, dnnl::matmul> by_rows;

  dnnl::matmul::primitive_desc pd(int T, int K, int N, const md& w) const {
    using tag = dnnl::memory::format_tag;
    const md src({T, K}, src_dt, tag::ab), dst({T, N}, dnnl::memory::data_type::f32, tag::ab);
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, w, dst), attr, cpu_engine());
  }
  dnnl::matmul& for_rows(int T, int K, int N) {
    auto it = by_rows.find(T);
    if (it == by_rows.end()) {
      if (by_rows.size() >= 64) by_rows.clear();  // many prompt lengths: keep the map small
      it = by_rows.emplace(T, dnnl::matmul(pd(T, K, N, w_desc))).first;
    }
    return it->second;
  }
};

Linear::Linear(WeightView w, Precision dtype, bool plain) : w_(w), dtype_(dtype) {
  const int K = w.K, N = w.N;
  // The plain [N][K] copy in the run's dtype: the plain loop's weights and oneDNN's reorder source
  // (fp32 reorders from the Weights themselves and its plain path is OpenBLAS on them).
  if (dtype_ == Precision::bf16) {
    w16_.resize(size_t(N) * K);
#pragma omp parallel for if (size_t(N) * K >= kParallelMin)
    for (int n = 0; n < N; ++n)
      for (int k = 0; k < K; ++k) w16_[size_t(n) * K + k] = to_bf16(weight_at(w, k, n));
  } else if (dtype_ == Precision::int8) {
    w8_.resize(size_t(N) * K);
    scale_.resize(N);
#pragma omp parallel for if (size_t(N) * K >= kParallelMin)
    for (int n = 0; n < N; ++n) {
      std::vector<float> col(K);
      for (int k = 0; k < K; ++k) col[k] = weight_at(w, k, n);
      scale_[n] = quantize_row(col.data(), K, &w8_[size_t(n) * K]);
    }
  }
  plain_ = plain;
  if (plain_) return;
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  try {
    auto d = std::make_unique<Dnnl>();
    const dt wdt = dtype_ == Precision::fp32 ? dt::f32 : dtype_ == Precision::bf16 ? dt::bf16 : dt::s8;
    d->src_dt = wdt;
    if (dtype_ == Precision::int8) d->attr.set_output_scales(1 << 1, scale_);  // per output column
    d->w_desc = d->pd(1, K, N, dnnl::memory::desc({K, N}, wdt, tag::any)).weights_desc();
    // [N][K] is the {K, N} matrix in "ba" order; fp32 reads the Weights as they are stored.
    void* src = dtype_ == Precision::bf16 ? static_cast<void*>(w16_.data()) : static_cast<void*>(w8_.data());
    tag order = tag::ba;
    if (dtype_ == Precision::fp32) {
      src = const_cast<float*>(w.data);
      order = w.stored_transposed ? tag::ba : tag::ab;
    }
    dnnl::memory plain_w({{K, N}, wdt, order}, cpu_engine(), src);
    d->storage = std::make_unique<HugePageBuffer>(d->w_desc.get_size());
    d->weights = dnnl::memory(d->w_desc, cpu_engine(), d->storage->data());
    dnnl::reorder(plain_w, d->weights).execute(d->stream, plain_w, d->weights);
    d->stream.wait();
    dnnl_ = std::move(d);
    std::vector<uint16_t>().swap(w16_);  // oneDNN holds its own copy; scale_ stays (the output scales)
    std::vector<int8_t>().swap(w8_);
  } catch (const dnnl::error&) {
    plain_ = true;  // no oneDNN kernel for this CPU: the plain loop
  }
}

Linear::~Linear() = default;
Linear::Linear(Linear&&) noexcept = default;
Linear& Linear::operator=(Linear&&) noexcept = default;

void Linear::apply(float* out, const float* x, const float* bias, int T) {
  const int K = w_.K, N = w_.N;
  if (dtype_ == Precision::fp32 && plain_) {  // OpenBLAS on the Weights
    if (!w_.stored_transposed) return matmul(out, x, w_.data, bias, T, K, N);
    matmul_transposed(out, x, w_.data, T, K, N);
  } else if (dtype_ == Precision::fp32) {
    run_dnnl(out, const_cast<float*>(x), T);
  } else {
    const size_t n_in = size_t(T) * K;
    if (dtype_ == Precision::bf16) {
      x16_.resize(n_in);
#pragma omp parallel for if (n_in >= kParallelMin)
      for (size_t i = 0; i < n_in; ++i) x16_[i] = to_bf16(x[i]);
    } else {
      x8_.resize(n_in);
      xscale_.resize(T);
#pragma omp parallel for if (n_in >= kParallelMin)
      for (int t = 0; t < T; ++t) xscale_[t] = quantize_row(x + size_t(t) * K, K, &x8_[size_t(t) * K]);
    }
    if (plain_) {
      apply_plain(out, T);
    } else {
      run_dnnl(out, dtype_ == Precision::bf16 ? static_cast<void*>(x16_.data()) : static_cast<void*>(x8_.data()), T);
    }
  }
  if (dtype_ != Precision::int8 && !bias) return;  // nothing to add (OpenBLAS's fp32 added its bias)
  // int8: each row times its activation scale (the weights' scales are in already); then the bias.
  const bool rows = dtype_ == Precision::int8;
#pragma omp parallel for if (size_t(T) * N >= kParallelMin)
  for (int t = 0; t < T; ++t) {
    float* o = out + size_t(t) * N;
    const float s = rows ? xscale_[t] : 1.0f;
    if (rows)
      for (int n = 0; n < N; ++n) o[n] *= s;
    if (bias)
      for (int n = 0; n < N; ++n) o[n] += bias[n];
  }
}

void Linear::run_dnnl(float* out, void* src, int T) {
  using tag = dnnl::memory::format_tag;
  dnnl::memory a({{T, w_.K}, dnnl_->src_dt, tag::ab}, cpu_engine(), src);
  dnnl::memory y({{T, w_.N}, dnnl::memory::data_type::f32, tag::ab}, cpu_engine(), out);
  dnnl_->for_rows(T, w_.K, w_.N).execute(dnnl_->stream,
                                         {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, dnnl_->weights}, {DNNL_ARG_DST, y}});
  dnnl_->stream.wait();
}

void Linear::apply_plain(float* out, int T) {
  const int K = w_.K, N = w_.N;
#pragma omp parallel for collapse(2) if (size_t(T) * N * K >= kParallelMin)
  for (int t = 0; t < T; ++t) {
    for (int n = 0; n < N; ++n) {
      float acc = 0;
      if (dtype_ == Precision::bf16) {
        const uint16_t *a = &x16_[size_t(t) * K], *b = &w16_[size_t(n) * K];
        for (int k = 0; k < K; ++k) acc += from_bf16(a[k]) * from_bf16(b[k]);
      } else {
        const int8_t *a = &x8_[size_t(t) * K], *b = &w8_[size_t(n) * K];
        int32_t sum = 0;
        for (int k = 0; k < K; ++k) sum += int32_t(a[k]) * int32_t(b[k]);
        acc = float(sum) * scale_[n];
      }
      out[size_t(t) * N + n] = acc;
    }
  }
}

}  // namespace gen::cpu
