// Read-only view of a .safetensors file: an 8-byte little-endian header length, a JSON header,
// then the raw tensor bytes. The file is memory-mapped; TensorView::data points into the mapping.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace gen {

enum class DType { F32, F16, BF16 };
const char* dtype_name(DType t);   // "F32", "F16", "BF16" (safetensors spelling)
size_t dtype_size(DType t);

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  size_t offset = 0;            // from the start of the data section
  size_t nbytes = 0;
  const uint8_t* data = nullptr;  // into the mapping; valid while the SafeTensors lives
  int64_t numel() const;
};

// Header parsing, separate from the mapping so that tests and fuzzers can feed it bytes.
// `file` is the whole file image, `where` names it in errors. Validates: the length prefix fits the
// file and a sane bound, the header is a JSON object, each entry has a known dtype, a shape of
// non-negative dims whose byte size matches its data_offsets, no key twice in an object (so no tensor
// name twice), and the tensors tile the data section exactly: no overlap, no gap, no bytes after the
// last one (as the reference reader). "__metadata__" is allowed and ignored. Throws InputError.
std::map<std::string, TensorView> parse_safetensors(const uint8_t* file, size_t size,
                                                    const std::string& where);

class SafeTensors {
 public:
  explicit SafeTensors(const std::string& path);  // mmap + parse; throws InputError
  ~SafeTensors();
  SafeTensors(const SafeTensors&) = delete;
  SafeTensors& operator=(const SafeTensors&) = delete;

  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const TensorView* find(const std::string& name) const;  // nullptr when absent
  const std::string& path() const { return path_; }
  // The whole file as mapped (header included), for hashing it: valid while the SafeTensors lives.
  const uint8_t* bytes() const { return static_cast<const uint8_t*>(map_); }
  size_t size() const { return size_; }

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t size_ = 0;
  std::map<std::string, TensorView> tensors_;
};

// Writes a safetensors file (tests and the model maker). Tensors are written in the order given.
struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;  // already in `dtype`, little-endian
};
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors);

// Element conversions used by loaders and the model maker.
float half_to_float(uint16_t h);
uint16_t float_to_half(float f);  // round to nearest even
float bf16_to_float(uint16_t b);
uint16_t float_to_bf16(float f);  // round to nearest even
// Converts `n` elements of `src` (in dtype `t`) to fp32.
void to_float(DType t, const uint8_t* src, size_t n, float* dst);

}  // namespace gen
