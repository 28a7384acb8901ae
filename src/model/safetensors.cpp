// safetensors: header parsing (fuzz-safe, as strict as the reference reader), the read-only mapping and
// the writer. The dtype conversions are in dtype.cpp.
#include "model/safetensors.h"

#include "text/text_util.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <system_error>

#include "gen/error.h"

// The file format is little-endian; reading it with memcpy is only right on a little-endian host.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "gen assumes a little-endian host");

namespace gen {
namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100ull * 1000 * 1000;  // the limit Hugging Face's reader sets
// A valid header nests 3 deep. nlohmann allocates a node per level, so a header of a million '['
// would cost far more memory than its bytes; reject deep nesting before building the DOM.
constexpr int kMaxJsonDepth = 32;

using detail::json_depth_within;
std::string printable(const std::string& s, bool escape_high, size_t max_len = 120) {
  return detail::printable(s, escape_high, max_len);
}

std::string quoted(const std::string& s) { return "'" + printable(s, false) + "'"; }

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

InputError tensor_error(const std::string& what, const std::string& name, const std::string& where) {
  return InputError(what + " for tensor " + quoted(name), where);
}

bool parse_dtype(const std::string& s, DType* out) {
  if (s == "F32")
    *out = DType::F32;
  else if (s == "F16")
    *out = DType::F16;
  else if (s == "BF16")
    *out = DType::BF16;
  else
    return false;
  return true;
}

// A JSON integer that fits in int64 and is >= 0; false for anything else (floats, negatives, ...).
bool get_nonneg(const json& v, uint64_t* out) {
  if (!v.is_number_unsigned()) {
    if (v.is_number_integer() && v.get<int64_t>() >= 0) {
      *out = static_cast<uint64_t>(v.get<int64_t>());
      return true;
    }
    return false;
  }
  *out = v.get<uint64_t>();
  return *out <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
}

json parse_header_json(const char* text, size_t n, const std::string& where) {
  if (!json_depth_within(text, n, kMaxJsonDepth)) {
    throw InputError("safetensors header is nested too deeply", where);
  }
  // nlohmann keeps one of two equal keys without a word; the reference reader refuses them, and so does
  // gen (a header that names a tensor twice is ambiguous). keys: those of each object still open.
  std::vector<std::set<std::string>> keys;
  auto no_duplicates = [&](int, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::object_start) keys.emplace_back();
    if (ev == json::parse_event_t::object_end) keys.pop_back();
    if (ev != json::parse_event_t::key) return true;
    const std::string& k = parsed.get_ref<const std::string&>();
    if (keys.back().insert(k).second) return true;
    const bool tensor = keys.size() == 1 && k != "__metadata__";
    throw InputError("duplicate " + std::string(tensor ? "tensor name " : "key ") + quoted(k) +
                         " in the safetensors header",
                     where);
  };
  json header;
  try {
    header = json::parse(text, text + n, no_duplicates);
  } catch (const json::exception& e) {
    // Drop nlohmann's "[json.exception.parse_error.101] " prefix; keep the position and reason.
    std::string msg = e.what();
    const size_t cut = msg.find("] ");
    if (msg.rfind("[json.exception.", 0) == 0 && cut != std::string::npos) msg.erase(0, cut + 2);
    throw InputError("safetensors header is not valid JSON: " + printable(msg, true, 200), where);
  }
  if (!header.is_object()) throw InputError("safetensors header is not a JSON object", where);
  return header;
}

void check_metadata(const json& v, const std::string& where) {
  bool ok = v.is_object();
  for (auto it = v.begin(); ok && it != v.end(); ++it) ok = it->is_string();
  if (!ok) throw InputError("safetensors __metadata__ must map strings to strings", where);
}

std::vector<int64_t> parse_shape(const json& v, const std::string& name, const std::string& where) {
  if (!v.is_array()) throw tensor_error("shape must be an array of integers", name, where);
  std::vector<int64_t> shape;
  shape.reserve(v.size());
  for (const json& d : v) {
    uint64_t dim = 0;
    if (!get_nonneg(d, &dim)) {
      const bool negative = d.is_number_integer() && !d.is_number_unsigned();
      throw tensor_error(negative ? "negative dimension " + d.dump() + " in shape"
                                  : "shape must be an array of non-negative integers",
                         name, where);
    }
    shape.push_back(static_cast<int64_t>(dim));
  }
  return shape;
}

// Byte size of a shape, or false when the element count or byte count overflows.
bool shape_bytes(const std::vector<int64_t>& shape, DType t, uint64_t* out) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return false;
  }
  if (n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
  return !__builtin_mul_overflow(n, static_cast<uint64_t>(dtype_size(t)), out);
}

TensorView parse_entry(const std::string& name, const json& v, const uint8_t* data, size_t data_size,
                       const std::string& where) {
  if (!v.is_object()) throw tensor_error("entry is not a JSON object", name, where);
  for (auto it = v.begin(); it != v.end(); ++it) {
    const std::string& k = it.key();
    if (k != "dtype" && k != "shape" && k != "data_offsets") {
      throw tensor_error("unexpected key " + quoted(k), name, where);
    }
  }
  for (const char* k : {"dtype", "shape", "data_offsets"}) {
    if (!v.contains(k)) throw tensor_error(std::string("missing '") + k + "'", name, where);
  }
  TensorView t;
  t.name = name;
  const json& dt = v["dtype"];
  if (!dt.is_string()) throw tensor_error("dtype must be a string", name, where);
  if (!parse_dtype(dt.get_ref<const std::string&>(), &t.dtype)) {
    throw tensor_error("unsupported dtype " + quoted(dt.get_ref<const std::string&>()), name, where);
  }
  t.shape = parse_shape(v["shape"], name, where);
  uint64_t need = 0;
  if (!shape_bytes(t.shape, t.dtype, &need)) throw tensor_error("shape too large", name, where);

  const json& off = v["data_offsets"];
  uint64_t begin = 0, end = 0;
  if (!off.is_array() || off.size() != 2 || !get_nonneg(off[0], &begin) || !get_nonneg(off[1], &end)) {
    throw tensor_error("data_offsets must be two non-negative integers", name, where);
  }
  const std::string range = "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "]";
  if (end < begin || end - begin != need) {
    throw tensor_error(range + " do not match shape " + shape_str(t.shape) + " of " + dtype_name(t.dtype) +
                           " (" + std::to_string(need) + " bytes)",
                       name, where);
  }
  if (end > data_size) {
    throw tensor_error(
        range + " lie outside the data section (" + std::to_string(data_size) + " bytes; truncated file?)",
        name, where);
  }
  t.offset = static_cast<size_t>(begin);
  t.nbytes = static_cast<size_t>(need);
  t.data = data + t.offset;
  return t;
}

// As the reference reader: sorted by data_offsets, the tensors tile the data section exactly, each
// starting where the one before ends (no overlap, no gap; an empty one sits on a boundary) and the last
// ending at the end of the file, so that no byte of the file is unaccounted for.
void check_tiling(const std::map<std::string, TensorView>& tensors, size_t data_size,
                  const std::string& where) {
  std::vector<const TensorView*> v;
  v.reserve(tensors.size());
  for (const auto& kv : tensors) v.push_back(&kv.second);
  std::sort(v.begin(), v.end(), [](const TensorView* a, const TensorView* b) {
    return a->offset < b->offset || (a->offset == b->offset && a->nbytes < b->nbytes);
  });
  size_t end = 0;
  const TensorView* prev = nullptr;
  for (const TensorView* t : v) {
    if (t->offset < end) {
      throw InputError(
          "tensors " + quoted(prev->name) + " and " + quoted(t->name) + " overlap in the data section",
          where);
    }
    if (t->offset > end) {
      throw InputError(std::to_string(t->offset - end) + " bytes of the data section before tensor " +
                           quoted(t->name) + (prev ? " (after " + quoted(prev->name) + ")" : "") +
                           " belong to no tensor",
                       where);
    }
    end = t->offset + t->nbytes;
    prev = t;
  }
  if (end != data_size) {
    throw InputError(std::to_string(data_size - end) + " bytes after the last tensor" +
                         (prev ? " " + quoted(prev->name) : "") +
                         " belong to no tensor (the data section is " + std::to_string(data_size) + " bytes)",
                     where);
  }
}

}  // namespace

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(n, d, &n)) throw Error("invalid shape for tensor " + quoted(name));
  }
  return n;
}

std::map<std::string, TensorView> parse_safetensors(const uint8_t* file, size_t size,
                                                    const std::string& where) {
  if (size == 0) throw InputError("empty file, not a safetensors file", where);
  if (size < 8) {
    throw InputError("file too small for a safetensors header (" + std::to_string(size) + " bytes)", where);
  }
  uint64_t n = 0;
  std::memcpy(&n, file, 8);
  if (n > kMaxHeaderBytes) {
    throw InputError("safetensors header length " + std::to_string(n) + " exceeds the 100 MB limit", where);
  }
  if (n > size - 8) {
    throw InputError("safetensors header length " + std::to_string(n) + " exceeds the file size (" +
                         std::to_string(size) + " bytes)",
                     where);
  }
  const json header = parse_header_json(reinterpret_cast<const char*>(file) + 8, n, where);
  const uint8_t* data = file + 8 + n;
  const size_t data_size = size - 8 - n;
  std::map<std::string, TensorView> out;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      check_metadata(it.value(), where);
      continue;
    }
    out.emplace(it.key(), parse_entry(it.key(), it.value(), data, data_size, where));
  }
  check_tiling(out, data_size, where);
  return out;
}

SafeTensors::SafeTensors(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw InputError("cannot open safetensors file: " + std::generic_category().message(errno), path);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw InputError("not a regular file", path);
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {  // mmap rejects length 0; parse_safetensors reports the empty file
    void* m = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    const int err = errno;
    ::close(fd);
    if (m == MAP_FAILED) {
      throw InputError("cannot map safetensors file: " + std::generic_category().message(err), path);
    }
    map_ = m;
  } else {
    ::close(fd);
  }
  try {
    tensors_ = parse_safetensors(static_cast<const uint8_t*>(map_), size_, path);
  } catch (...) {
    if (map_) ::munmap(map_, size_);
    throw;
  }
}

SafeTensors::~SafeTensors() {
  if (map_) ::munmap(map_, size_);
}

const TensorView* SafeTensors::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

namespace {

std::string build_header(const std::vector<TensorToWrite>& tensors, const std::string& path) {
  nlohmann::ordered_json header;
  header["__metadata__"] = {{"format", "pt"}};
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const TensorToWrite& t : tensors) {
    uint64_t need = 0;
    bool dims_ok = std::all_of(t.shape.begin(), t.shape.end(), [](int64_t d) { return d >= 0; });
    if (!dims_ok || !shape_bytes(t.shape, t.dtype, &need) || need != t.bytes.size()) {
      throw Error("tensor " + quoted(t.name) + ": " + std::to_string(t.bytes.size()) +
                  " bytes do not match shape " + shape_str(t.shape) + " of " + dtype_name(t.dtype) + " (" +
                  path + ")");
    }
    if (t.name == "__metadata__" || !seen.insert(t.name).second) {
      throw Error("duplicate or reserved tensor name " + quoted(t.name) + " (" + path + ")");
    }
    header[t.name] = {
        {"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + need}}};
    offset += need;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::ordered_json::exception& e) {  // names that are not UTF-8
    throw Error(std::string("cannot encode safetensors header: ") + e.what() + " (" + path + ")");
  }
  // Hugging Face pads with spaces so that the data section, and so every tensor, is 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors) {
  const std::string header = build_header(tensors, path);
  // Write beside the target and rename, so a failed write never leaves a half file under its name.
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw InputError("cannot write safetensors file: " + std::generic_category().message(errno), path);
  const uint64_t n = header.size();
  bool ok = std::fwrite(&n, 8, 1, f) == 1 && std::fwrite(header.data(), 1, n, f) == n;
  for (size_t i = 0; ok && i < tensors.size(); ++i) {
    const auto& b = tensors[i].bytes;
    ok = b.empty() || std::fwrite(b.data(), 1, b.size(), f) == b.size();
  }
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    throw InputError("cannot write safetensors file: " + std::generic_category().message(err), path);
  }
}

}  // namespace gen
