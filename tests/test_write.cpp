// Checked writes: write_all's loop over short writes and errors, the --output file that keeps only
// whole lines when a write fails, its lock against a second writer, and a resumed file that holds an
// index twice.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <csignal>
#include <cstring>

#include "cli/batch.h"
#include "cli/stdout_writer.h"
#include "gen/error.h"
#include "gen/prompts.h"
#include "test_util.h"

using namespace gen;
using namespace gen::test;

namespace {

// Fake write(2)s: each call writes at most `chunk` bytes for real; after `budget` bytes it fails
// with `fail_errno` (0: returns 0, a write that wrote nothing).
size_t g_budget = 0, g_chunk = 0;
int g_fail_errno = 0;
ssize_t limited_write(int fd, const void* buf, size_t n) {
  if (g_budget == 0) {
    if (g_fail_errno == 0) return 0;
    errno = g_fail_errno;
    return -1;
  }
  const size_t k = std::min({n, g_chunk, g_budget});
  const ssize_t w = ::write(fd, buf, k);
  if (w > 0) g_budget -= size_t(w);
  return w;
}
int g_eintr_left = 0;
ssize_t interrupted_write(int fd, const void* buf, size_t n) {
  if (g_eintr_left > 0) {
    --g_eintr_left;
    errno = EINTR;
    return -1;
  }
  return ::write(fd, buf, n);
}

int open_append(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  REQUIRE(fd >= 0);
  return fd;
}

}  // namespace

TEST_CASE("write_all loops over short writes and EINTR, and returns the errno of a failed write", "[write]") {
  TempDir d;
  const std::string path = d / "f.txt";
  const int fd = open_append(path);
  g_budget = 1000, g_chunk = 3, g_fail_errno = ENOSPC;
  size_t written = 0;
  REQUIRE(write_all(fd, "hello world\n", &written, limited_write) == 0);
  REQUIRE(written == 12);
  g_eintr_left = 2;
  REQUIRE(write_all(fd, "again\n", &written, interrupted_write) == 0);
  g_budget = 4, g_chunk = 100;
  REQUIRE(write_all(fd, "cut here\n", &written, limited_write) == ENOSPC);
  REQUIRE(written == 4);
  g_budget = 0, g_fail_errno = 0;
  REQUIRE(write_all(fd, "nothing\n", &written, limited_write) == EIO);
  REQUIRE(written == 0);
  ::close(fd);
  REQUIRE(read_file(path) == "hello world\nagain\ncut ");

  const int full = ::open("/dev/full", O_WRONLY | O_CLOEXEC);
  if (full >= 0) {
    REQUIRE(write_all(full, "x") == ENOSPC);
    ::close(full);
  }
  int p[2];
  REQUIRE(::pipe(p) == 0);
  ::close(p[0]);  // the reader left
  void (*old)(int) = std::signal(SIGPIPE, SIG_IGN);
  REQUIRE(write_all(p[1], "x") == EPIPE);
  std::signal(SIGPIPE, old);
  ::close(p[1]);
}

TEST_CASE("A failed write of an --output line cuts the file back to its last whole line", "[write]") {
  TempDir d;
  const std::string path = d / "out.jsonl";
  write_file(path, "{\"index\": 0}\n");
  const int fd = open_append(path);
  // Part of the line fits (the disk fills in the middle of it), then the next write fails.
  g_budget = 5, g_chunk = 2, g_fail_errno = ENOSPC;
  REQUIRE_THROWS_WITH(append_whole_line(fd, "{\"index\": 1, \"text\": \"long\"}", path, limited_write),
                      "writing " + path + " failed: " + std::strerror(ENOSPC));
  REQUIRE(read_file(path) == "{\"index\": 0}\n");
  // A write that writes nothing, then one that works after short writes: the line lands whole.
  g_budget = 0, g_fail_errno = 0;
  REQUIRE_THROWS_WITH(append_whole_line(fd, "{\"index\": 1}", path, limited_write),
                      Catch::Contains("failed"));
  g_budget = 1000, g_chunk = 1;
  append_whole_line(fd, "{\"index\": 1}", path, limited_write);
  REQUIRE(read_file(path) == "{\"index\": 0}\n{\"index\": 1}\n");
  ::close(fd);
  const int full = ::open("/dev/full", O_WRONLY | O_CLOEXEC);
  if (full >= 0) {
    REQUIRE_THROWS_AS(append_whole_line(full, "x", "/dev/full"), Error);
    ::close(full);
  }
}

TEST_CASE("An --output file has one writer: a second BatchOutput on it is refused while it is open",
          "[write]") {
  TempDir d;
  const auto prompts = parse_prompts("a\nb\n", false);
  const std::string out = d / "out.jsonl";
  {
    BatchOutput first(out, false, prompts);
    REQUIRE_THROWS_WITH(BatchOutput(out, true, prompts),
                        out + " is being written by another gen run (locked) (--output)");
    REQUIRE_THROWS_AS(BatchOutput(out, true, prompts), InputError);
    first.write_line(0, 0, "{\"index\": 0, \"prompt\": \"a\"}");
  }
  BatchOutput again(out, true, prompts);  // the lock went with the first one
  REQUIRE(again.done(0, 0));
}

TEST_CASE("Resuming refuses an output file that holds one index twice", "[write]") {
  TempDir d;
  const auto prompts = parse_prompts("a\nb\n", false);
  const std::string out = d / "out.jsonl";
  write_file(out,
             "{\"index\": 1, \"prompt\": \"b\"}\n{\"index\": 0, \"prompt\": \"a\"}\n{\"index\": 1, "
             "\"prompt\": \"b\"}\n");
  REQUIRE_THROWS_WITH(BatchOutput(out, true, prompts),
                      "index 1 appears twice in the output file; not one run (" + out + ":3)");
  // --samples K: one index, several samples, each once.
  write_file(
      out,
      "{\"index\": 0, \"prompt\": \"a\", \"sample\": 0}\n{\"index\": 0, \"prompt\": \"a\", \"sample\": 1}\n");
  {
    BatchOutput o(out, true, prompts);
    REQUIRE(o.done(0, 0));
    REQUIRE(o.done(0, 1));
    REQUIRE(!o.done(0, 2));
  }
  // A line without "sample" is sample 0; an error line stands for all samples of its prompt.
  write_file(out, "{\"index\": 0, \"prompt\": \"a\"}\n{\"index\": 0, \"prompt\": \"a\", \"sample\": 0}\n");
  REQUIRE_THROWS_WITH(BatchOutput(out, true, prompts), Catch::Contains("index 0 appears twice") && Catch::Contains(":2)"));
  write_file(out, "{\"index\": 0, \"prompt\": \"a\", \"sample\": 1}\n{\"index\": 0, \"prompt\": \"a\", \"error\": \"x\"}\n");
  REQUIRE_THROWS_WITH(BatchOutput(out, true, prompts), Catch::Contains("index 0 appears twice") && Catch::Contains(":2)"));
  write_file(out, "{\"index\": 0, \"prompt\": \"a\", \"sample\": -2}\n");
  REQUIRE_THROWS_WITH(BatchOutput(out, true, prompts), Catch::Contains("not a sample number"));
}
