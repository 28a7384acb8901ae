// Files written whole or not at all: the content goes to a temporary file beside the target, which is
// then renamed over it (K/V files, the model hash's cache). Private to the engine.
#pragma once
#include <cstddef>
#include <functional>
#include <string>

namespace gen {

// "<path>.tmp.<pid>.<counter>": in the same directory (so that rename is atomic), its own for each
// process and each call.
std::string temp_name_beside(const std::string& path);

// A write(2)-like function (tests pass failing ones).
using RawWriteFn = long (*)(int fd, const void* buf, size_t n);

// Writes all n bytes: continues short writes, retries EINTR; a write that makes no progress is EIO.
// Returns 0 or the errno of the failure.
int write_all_bytes(int fd, const void* data, size_t n, RawWriteFn write_fn = nullptr);

// Creates the temporary file, lets fill(fd) write the content (0 or an errno), then renames it over
// `path`. durable: fsync the file before the rename and its directory after (best effort), so that the
// new content survives a power cut. Returns 0 or the first errno; the temporary file is then removed
// and `path` keeps its old content. A `path` that exists and is not a regular file (/dev/null, a FIFO)
// is written in place: a rename would replace it; a directory is EISDIR.
int write_atomically(const std::string& path, const std::function<int(int fd)>& fill, bool durable);

}  // namespace gen
