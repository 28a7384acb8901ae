#include "test_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace fs = std::filesystem;

namespace gen::test {

namespace {
// Compiled-in paths, overridable at run time (the GPU check runs binaries built on another machine).
std::string source_dir() {
  const char* env = std::getenv("GEN_SOURCE_DIR");
  return env ? env : GEN_SOURCE_DIR;
}
std::string scratch_dir() {
  const char* env = std::getenv("GEN_TEST_TMPDIR");
  return env ? env : std::string(GEN_BINARY_DIR) + "/test_tmp";
}
}  // namespace

std::string fixture(const std::string& rel) { return source_dir() + "/tests/fixtures/" + rel; }

std::string tokenizer_dir() {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("GEN_TOKENIZER_DIR")) candidates.emplace_back(env);
  candidates.push_back(source_dir() + "/../shared/gpt2-tokenizer");
  candidates.push_back(source_dir() + "/models/gpt2");
  for (const auto& dir : candidates) {
    if (fs::exists(dir + "/vocab.json") && fs::exists(dir + "/merges.txt")) return dir;
  }
  return "";
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  path_ = scratch_dir() + "/" + std::to_string(getpid()) + "_" +
          std::to_string(counter++);
  fs::remove_all(path_);
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string check_close(const float* got, const float* ref, size_t n, double atol, double rtol) {
  size_t worst = 0;
  double worst_excess = 0;  // error divided by the allowed error
  size_t failures = 0;
  for (size_t i = 0; i < n; ++i) {
    double err = std::fabs(double(got[i]) - double(ref[i]));
    double allowed = atol + rtol * std::fabs(double(ref[i]));
    double excess = err == 0 ? 0 : std::isfinite(err) ? err / allowed : INFINITY;
    if (!(err <= allowed)) ++failures;
    if (!(excess <= worst_excess)) {
      worst_excess = excess;
      worst = i;
    }
  }
  if (failures == 0) return "";
  std::ostringstream ss;
  ss << failures << " of " << n << " elements out of tolerance (atol " << atol << ", rtol " << rtol
     << "); worst at " << worst << ": got " << got[worst] << ", ref " << ref[worst];
  return ss.str();
}

std::string check_logits_row(const float* got, const float* ref, int V, double rel) {
  double scale = 0;
  for (int i = 0; i < V; ++i) scale = std::max(scale, double(std::fabs(ref[i])));
  return check_close(got, ref, V, rel * scale, rel);
}

int run_command(const std::string& cmd, std::string* out, std::string* err) {
  TempDir tmp;
  std::string full = "(" + cmd + ") >" + tmp / "out" + " 2>" + tmp / "err";
  int status = std::system(full.c_str());
  if (out) *out = read_file(tmp / "out");
  if (err) *err = read_file(tmp / "err");
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

}  // namespace gen::test

#include "model/model_maker.h"

namespace gen::test {

Tokenizer tiny_tokenizer(int V) {
  // Every byte needs a token, so models with fewer than 257 ids get a larger tokenizer: they only
  // ever produce ids below their own vocab_size.
  auto [vocab, merges] = byte_level_tokenizer(std::max(V, 257));
  return Tokenizer::from_strings(vocab, merges, "tiny tokenizer");
}

}  // namespace gen::test
