#include "engine/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

namespace gen {

namespace {

long sys_write(int fd, const void* buf, size_t n) { return ::write(fd, buf, n); }

// After the rename, so that the new name survives a power cut; a failure here loses no data (the file
// is whole under its name either way), so it is not reported.
void sync_directory(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}

}  // namespace

std::string temp_name_beside(const std::string& path) {
  static std::atomic<unsigned> counter{0};
  return path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
}

int write_all_bytes(int fd, const void* data, size_t n, RawWriteFn write_fn) {
  if (!write_fn) write_fn = sys_write;
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const long w = write_fn(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return errno ? errno : EIO;
    if (w == 0) return EIO;  // no progress and no error: do not spin
    p += w;
    n -= size_t(w);
  }
  return 0;
}

int write_atomically(const std::string& path, const std::function<int(int fd)>& fill, bool durable) {
  // Not a regular file (/dev/null, /dev/stdout, a FIFO): written in place. A rename would replace the
  // device or the pipe with a regular file (it did: `gen merge -o /dev/null` made /dev/null a file).
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    if (S_ISDIR(st.st_mode)) return EISDIR;
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    const int err = fill(fd);
    return ::close(fd) != 0 && err == 0 ? errno : err;
  }
  const std::string tmp = temp_name_beside(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  int err = fill(fd);
  if (err == 0 && durable && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;  // NFS reports some errors only here
  if (err == 0 && ::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err != 0) {
    ::unlink(tmp.c_str());
    return err;
  }
  if (durable) sync_directory(path);
  return 0;
}

}  // namespace gen
