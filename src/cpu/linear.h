// One weight matrix of the CPU backend, held in the run's dtype: fp32 (the default and the reference),
// bf16 or int8 (converted once at load). Each runs as a oneDNN matmul with the weights reordered once
// into oneDNN's blocked layout (AVX-512, AVX512_BF16 and AVX512_VNNI kernels where the CPU has them);
// where oneDNN has no kernel for the CPU, or GEN_CPU_PLAIN=1, the plain path does the same arithmetic:
// OpenBLAS on the Weights for fp32, a C++ loop for bf16 and int8. Accumulation is fp32 in every path.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace gen::cpu {

enum class Precision { fp32, bf16, int8 };

// True when GEN_CPU_PLAIN=1: bf16 and int8 run the plain loops (to test them, or to rule oneDNN out), and
// decode attention its plain loops (the same bits as its AVX-512 path).
bool plain_forced();
// "" and "fp32" | "bf16" | "int8"; anything else is an InputError naming the CPU's dtypes.
Precision parse_dtype(const std::string& s);
const char* dtype_name(Precision d);

// Round to nearest even, as torch's .to(torch.bfloat16); NaN stays NaN.
uint16_t to_bf16(float x);
float from_bf16(uint16_t b);

// Symmetric int8 of one row of n values: q = round(x / scale), scale = max|x| / 127 (1 for a zero row).
float quantize_row(const float* x, int n, int8_t* q);

// W as the model stores it: Conv1D [K, N] row-major, or (stored_transposed) the tied LM head [N, K].
struct WeightView {
  const float* data = nullptr;
  int K = 0, N = 0;
  bool stored_transposed = false;
};

class Linear {
 public:
  // plain: the C++ loop instead of oneDNN (tests build both; gen uses plain_forced()).
  Linear(WeightView w, Precision dtype, bool plain = plain_forced());
  ~Linear();
  Linear(Linear&&) noexcept;
  Linear& operator=(Linear&&) noexcept;
  // out [T, N] = x [T, K] W (+ bias [N] when not null); x and out fp32.
  void apply(float* out, const float* x, const float* bias, int T);
  Precision dtype() const { return dtype_; }
  bool plain() const { return plain_; }  // the C++ loop, not oneDNN

 private:
  struct Dnnl;
  void apply_plain(float* out, int T);
  void run_dnnl(float* out, void* src, int T);  // src [T, K] in oneDNN's source dtype
  WeightView w_;
  Precision dtype_;
  bool plain_ = false;
  // bf16 / int8 weights for the plain loop, [N][K]; int8: scale_ [N] (also oneDNN's output scales).
  std::vector<uint16_t> w16_;
  std::vector<int8_t> w8_;
  std::vector<float> scale_;
  // The activations converted for one call: x16_ [T, K] bf16, or x8_ [T, K] int8 with xscale_ [T].
  std::vector<uint16_t> x16_;
  std::vector<int8_t> x8_;
  std::vector<float> xscale_;
  std::unique_ptr<Dnnl> dnnl_;
};

}  // namespace gen::cpu
