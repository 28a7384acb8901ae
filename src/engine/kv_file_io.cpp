// gen's K/V files on disk: the atomic writer, the reader that checks sizes before it allocates, and the
// early check that a path can be written. The format and its checks are in kv_file.cpp.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "engine/atomic_file.h"
#include "engine/kv_file_format.h"
#include "gen/error.h"
#include "gen/kv_file.h"
#include "model/hash.h"

namespace gen {

namespace kvfmt {
namespace {

using json = nlohmann::json;

[[noreturn]] void cannot_write(const std::string& detail, const std::string& path) {
  throw Error("cannot write the K/V file: " + detail + " (" + path + ")");
}

Header header_for(const KvFile& f, size_t meta_bytes, const std::string& path) {
  const ModelFingerprint& m = f.model;
  if (m.n_layer < 1 || m.n_head < 1 || m.n_embd < 1 || m.n_embd % m.n_head != 0) {
    cannot_write("the model's n_layer " + std::to_string(m.n_layer) + ", n_head " + std::to_string(m.n_head) +
                     ", n_embd " + std::to_string(m.n_embd) + " are not a GPT-2 shape",
                 path);
  }
  if (f.tokens.empty() || f.tokens.size() > kMaxTokens) {
    cannot_write(
        std::to_string(f.tokens.size()) + " tokens (must be 1 to " + std::to_string(kMaxTokens) + ")", path);
  }
  if (meta_bytes > kMaxMetaBytes) {
    cannot_write("a meta section of " + std::to_string(meta_bytes) + " bytes (at most " +
                     std::to_string(kMaxMetaBytes) + ")",
                 path);
  }
  Header h;
  h.meta_bytes = uint32_t(meta_bytes);
  h.n_tokens = uint32_t(f.tokens.size());
  h.n_layer = uint32_t(m.n_layer);
  h.n_head = uint32_t(m.n_head);
  h.head_dim = uint32_t(m.n_embd / m.n_head);
  try {
    h.elem_bytes = uint32_t(kv_dtype_bytes(f.kv_dtype));
  } catch (const InputError& e) {
    cannot_write(e.what(), path);
  }
  if (!kv_size(h, &h.kv_bytes) || f.kv.size() != h.kv_bytes) {
    cannot_write("the K/V holds " + std::to_string(f.kv.size()) +
                     " bytes, not 2 x n_layer x n_head x n_tokens x head_dim x elem_bytes = " +
                     std::to_string(h.kv_bytes),
                 path);
  }
  return h;
}

std::string encode_meta(const KvFile& f) {
  const ModelFingerprint& m = f.model;
  const json model = {{"n_layer", m.n_layer},
                      {"n_head", m.n_head},
                      {"n_embd", m.n_embd},
                      {"n_positions", m.n_positions},
                      {"vocab_size", m.vocab_size},
                      {"layer_norm_epsilon", double(m.layer_norm_epsilon)},  // exact: a float is a double
                      {"tensors", m.tensors},
                      {"weights", m.weights}};
  const json meta = {{"kind", f.kind},     {"dtype", f.dtype}, {"kv_dtype", f.kv_dtype},
                     {"device", f.device}, {"model", model},   {"extra", f.extra}};
  // replace: text that is not UTF-8 (a chat turn cut mid-character) becomes U+FFFD, not an exception.
  return meta.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

Prefix encode_prefix(const KvFile& f, const std::string& path) {
  Prefix p;
  p.meta = encode_meta(f);
  const Header h = header_for(f, p.meta.size(), path);
  encode_header(h, p.header);
  p.tokens.resize(4 * f.tokens.size());
  for (size_t i = 0; i < f.tokens.size(); ++i) {
    const int32_t id = f.tokens[i];
    std::memcpy(&p.tokens[4 * i], &id, 4);
  }
  // The reader's own checks on what is about to be written: a file gen would refuse is never written.
  try {
    parse_header(p.header, h.total_bytes(), path);
    KvFile check;
    parse_meta_and_tokens(h, reinterpret_cast<const uint8_t*>(p.meta.data()), p.tokens.data(), &check, path);
  } catch (const InputError& e) {
    throw Error(std::string("cannot write a K/V file that gen would refuse: ") + e.what());
  }
  return p;
}

}  // namespace kvfmt

namespace {

using kvfmt::kHeaderBytes;

// Writes the whole file to `fd`, hashing as it goes; 0 or an errno.
int write_image(int fd, const kvfmt::Prefix& p, const KvFile& f, KvWriteFn write_fn) {
  const std::pair<const void*, size_t> pieces[] = {{p.header, kHeaderBytes},
                                                   {p.meta.data(), p.meta.size()},
                                                   {p.tokens.data(), p.tokens.size()},
                                                   {f.kv.data(), f.kv.size()}};
  Hash64 h;
  for (const auto& [data, n] : pieces) {
    h.update(data, n);
    if (const int err = write_all_bytes(fd, data, n, write_fn)) return err;
  }
  const uint64_t sum = h.digest();
  return write_all_bytes(fd, &sum, 8, write_fn);
}

}  // namespace

void write_kv_file(const std::string& path, const KvFile& f, KvWriteFn write_fn) {
  const kvfmt::Prefix prefix = kvfmt::encode_prefix(f, path);
  const int err = write_atomically(path, [&](int fd) { return write_image(fd, prefix, f, write_fn); }, true);
  if (err != 0) throw Error("writing " + path + " failed: " + std::strerror(err));
}

void check_kv_file_writable(const std::string& path, const std::string& what) {
  const auto refuse = [&](const std::string& reason) {
    throw InputError("cannot write the " + what + ": " + reason, path);
  };
  if (path.empty()) refuse("the path is empty");
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) refuse(std::strerror(EISDIR));
  } else if (errno != ENOENT) {
    refuse(std::strerror(errno));  // ENOTDIR, ELOOP, EACCES: the rename would fail the same way
  }
  // What write_kv_file will do, done now: create a file beside `path`. access(W_OK) would say yes to
  // root on a read-only mount, and says nothing of a full inode table.
  const std::string tmp = temp_name_beside(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) refuse(std::strerror(errno));
  ::close(fd);
  ::unlink(tmp.c_str());
}

namespace {

// Closes on every path out of read_kv_file.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Reads exactly n bytes: 0, an errno, or -1 when the file ends first (it shrank since fstat).
int read_exact(int fd, void* data, size_t n) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    const ssize_t r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return errno;
    if (r == 0) return -1;
    p += r;
    n -= size_t(r);
  }
  return 0;
}

}  // namespace

KvFile read_kv_file(const std::string& path, const std::string& what) {
  const auto refuse = [&](const std::string& reason) {
    throw InputError("cannot read the " + what + ": " + reason, path);
  };
  const auto read_or_refuse = [&](int fd, void* data, size_t n) {
    const int err = read_exact(fd, data, n);
    if (err > 0) refuse(std::strerror(err));
    if (err < 0) refuse("the file shrank while it was read");
  };
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) refuse(std::strerror(errno));
  if (S_ISDIR(st.st_mode)) refuse(std::strerror(EISDIR));
  if (!S_ISREG(st.st_mode)) refuse("not a regular file");
  // O_NONBLOCK: should a FIFO take the file's place after the stat, open does not wait for a writer.
  const FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (fd.get() < 0) refuse(std::strerror(errno));
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) refuse("not a regular file");

  // The header first: its sizes are checked against the file's length before anything is allocated.
  const uint64_t size = uint64_t(st.st_size);
  uint8_t head[kHeaderBytes] = {};
  read_or_refuse(fd.get(), head, size_t(std::min<uint64_t>(size, kHeaderBytes)));
  const kvfmt::Header h = kvfmt::parse_header(head, size, path);
  std::vector<uint8_t> meta_ids(size_t(h.kv_offset() - kHeaderBytes));  // at most 20 MiB
  read_or_refuse(fd.get(), meta_ids.data(), meta_ids.size());
  Hash64 hash;
  hash.update(head, kHeaderBytes);
  hash.update(meta_ids.data(), meta_ids.size());
  KvFile f;
  f.kv.resize(size_t(h.kv_bytes));
  // In pieces, each hashed while it is still in the CPU's cache.
  constexpr size_t kPiece = size_t(16) << 20;
  for (size_t at = 0; at < f.kv.size(); at += kPiece) {
    const size_t n = std::min(kPiece, f.kv.size() - at);
    read_or_refuse(fd.get(), f.kv.data() + at, n);
    hash.update(f.kv.data() + at, n);
  }
  uint64_t want = 0;
  read_or_refuse(fd.get(), &want, kvfmt::kChecksumBytes);
  if (hash.digest() != want) throw InputError("the K/V file is corrupted (checksum mismatch)", path);
  kvfmt::parse_meta_and_tokens(h, meta_ids.data(), meta_ids.data() + h.meta_bytes, &f, path);
  return f;
}

}  // namespace gen
