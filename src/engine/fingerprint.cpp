// model_fingerprint: the shape from config.json, XXH3-64 of the tensor list and of model.safetensors'
// bytes; the latter, a full read of the file, is cached beside it (docs/kv_file.md, "The fingerprint").
#include "gen/fingerprint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>

#include "engine/atomic_file.h"
#include "gen/error.h"
#include "gen/notes.h"
#include "model/hash.h"
#include "model/safetensors.h"

namespace gen {

bool ModelFingerprint::operator==(const ModelFingerprint& o) const {
  return n_layer == o.n_layer && n_head == o.n_head && n_embd == o.n_embd && n_positions == o.n_positions &&
         vocab_size == o.vocab_size && layer_norm_epsilon == o.layer_norm_epsilon && tensors == o.tensors &&
         weights == o.weights;
}

namespace {

using json = nlohmann::json;

// A cache is a line of about 80 bytes; anything much larger is not one of ours and is not read.
constexpr size_t kMaxCacheBytes = 4096;

// What says that model.safetensors is the file that was hashed: rewriting it (a new download, an
// edit in place) changes its modification time.
struct FileStamp {
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  bool operator==(const FileStamp& o) const { return size == o.size && mtime_ns == o.mtime_ns; }
};

std::optional<FileStamp> stamp_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return FileStamp{uint64_t(st.st_size), int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
}

void put_u64(Hash64& h, uint64_t v) { h.update(&v, 8); }  // little-endian host (safetensors.cpp)

// Each tensor in name order (std::map compares bytes as unsigned char): u64 name length, the name,
// u64 dtype length, the dtype ("F32", "F16", "BF16"), u64 rank, rank i64 dims. Lengths first, so
// that no two lists hash the same bytes.
std::string tensor_list_hash(const SafeTensors& st) {
  Hash64 h;
  for (const auto& [name, t] : st.tensors()) {
    const std::string dtype = dtype_name(t.dtype);
    put_u64(h, name.size());
    h.update(name.data(), name.size());
    put_u64(h, dtype.size());
    h.update(dtype.data(), dtype.size());
    put_u64(h, t.shape.size());
    for (int64_t d : t.shape) put_u64(h, uint64_t(d));
  }
  return hex64(h.digest());
}

bool is_hex16(const json& v) {
  if (!v.is_string()) return false;
  const std::string& s = v.get_ref<const std::string&>();
  return s.size() == 16 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

bool json_equals_int(const json& v, int64_t want) {
  if (v.is_number_unsigned()) return want >= 0 && v.get<uint64_t>() == uint64_t(want);
  return v.is_number_integer() && v.get<int64_t>() == want;
}

std::string read_small_file(const std::string& path) {
  // O_NONBLOCK: a FIFO under the cache's name must not hang the run; it is not a regular file.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return "";
  struct stat st {};
  std::string text;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && size_t(st.st_size) <= kMaxCacheBytes) {
    char buf[kMaxCacheBytes];
    ssize_t n = 0;
    while (text.size() < kMaxCacheBytes &&
           ((n = ::read(fd, buf, kMaxCacheBytes - text.size())) > 0 || (n < 0 && errno == EINTR))) {
      if (n > 0) text.append(buf, size_t(n));
    }
  }
  ::close(fd);
  return text;
}

// The cached hash when the cache file describes the file as it is now; nothing for a missing, broken
// or foreign cache file, which is then computed over.
std::optional<std::string> read_cache(const std::string& path, const FileStamp& now) {
  const std::string text = read_small_file(path);
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("size") || !j.contains("mtime_ns") || !j.contains("xxh3_64")) {
    return std::nullopt;
  }
  if (now.size > uint64_t(INT64_MAX) || !json_equals_int(j["size"], int64_t(now.size)) ||
      !json_equals_int(j["mtime_ns"], now.mtime_ns) || !is_hex16(j["xxh3_64"])) {
    return std::nullopt;
  }
  return j["xxh3_64"].get<std::string>();
}

// Writes the cache atomically (a temporary file renamed over it), so a reader never sees half of one.
// Not durable: a cache lost or emptied by a crash is only computed again. Returns "" or the reason.
std::string write_cache(const std::string& path, const FileStamp& stamp, const std::string& hex) {
  const std::string text =
      json{{"size", stamp.size}, {"mtime_ns", stamp.mtime_ns}, {"xxh3_64", hex}}.dump() + "\n";
  const int err = write_atomically(path, [&](int fd) { return write_all_bytes(fd, text.data(), text.size()); }, false);
  return err == 0 ? "" : std::strerror(err);
}

std::string weights_hash(const SafeTensors& st, const std::optional<FileStamp>& before) {
  const std::string cache = st.path() + ".gen-xxh3";
  if (before) {
    if (std::optional<std::string> hex = read_cache(cache, *before)) return *hex;
  }
  const std::string hex = hex64(xxh3_64(st.bytes(), st.size()));
  // Cached only when the file did not change while it was read: the hash then belongs to the stamp.
  const std::optional<FileStamp> after = stamp_of(st.path());
  if (before && after && *before == *after && after->size == st.size()) {
    const std::string err = write_cache(cache, *after, hex);
    if (!err.empty()) {
      notify("cannot keep the hash of model.safetensors in " + cache + " (" + err +
             "): it is computed each run, reading the whole file");
    }
  }
  return hex;
}

}  // namespace

ModelFingerprint model_fingerprint(const std::string& model_dir, const ModelConfig& cfg) {
  const std::string path = model_dir + "/model.safetensors";
  const std::optional<FileStamp> before = stamp_of(path);
  const SafeTensors st(path);  // parses the header: the tensor list, and an InputError for a bad file
  ModelFingerprint fp;
  fp.n_layer = cfg.n_layer;
  fp.n_head = cfg.n_head;
  fp.n_embd = cfg.n_embd;
  fp.n_positions = cfg.n_positions;
  fp.vocab_size = cfg.vocab_size;
  fp.layer_norm_epsilon = cfg.layer_norm_epsilon;
  fp.tensors = tensor_list_hash(st);
  fp.weights = weights_hash(st, before);
  return fp;
}

}  // namespace gen
