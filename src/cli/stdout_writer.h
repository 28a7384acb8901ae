// Every byte gen prints on stdout goes through here, unbuffered, and every write is checked: a full
// disk, a closed stdout, /dev/full or a pipe whose reader left (SIGPIPE ignored) is
// `error: writing stdout failed: <reason>`, exit 1 (DESIGN.md section 3).
#pragma once
#include <sys/types.h>

#include <string>
#include <string_view>

namespace gen {

// A write(2)-like function; tests pass one that fails on purpose.
using WriteFn = ssize_t (*)(int fd, const void* buf, size_t n);

// Writes all of `s` to fd, looping over short writes and EINTR. Returns 0, or the errno of the
// failed write (EIO for a write that wrote nothing); *written: the bytes that went out.
int write_all(int fd, std::string_view s, size_t* written = nullptr, WriteFn write_fn = nullptr);

// write_all to fd 1; throws gen::Error "writing stdout failed: <reason>".
void write_stdout(std::string_view s);

// Occupies fds 0, 1 and 2 with /dev/null (read-only) where they are closed (`>&-`), so that no file
// gen opens later takes their number: a write to a closed stdout then fails (EBADF) instead of going
// into, say, the --trace file. Called first thing in main().
void guard_standard_fds();

}  // namespace gen
