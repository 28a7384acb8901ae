#include "cli/stdout_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "gen/error.h"

namespace gen {

int write_all(int fd, std::string_view s, size_t* written, WriteFn write_fn) {
  if (!write_fn) write_fn = ::write;
  size_t off = 0;
  int err = 0;
  while (off < s.size()) {
    const ssize_t n = write_fn(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      err = n < 0 ? errno : EIO;
      break;
    }
    off += size_t(n);
  }
  if (written) *written = off;
  return err;
}

void write_stdout(std::string_view s) {
  const int err = write_all(STDOUT_FILENO, s);
  if (err != 0) throw Error(std::string("writing stdout failed: ") + std::strerror(err));
}

void guard_standard_fds() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) >= 0 || errno != EBADF) continue;
    // open() takes the lowest free number: this one, since the lower ones are open by now.
    const int got = ::open("/dev/null", O_RDONLY);
    if (got >= 0 && got != fd) ::close(got);
  }
}

}  // namespace gen
