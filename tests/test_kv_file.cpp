// gen's K/V files (gen/kv_file.h, docs/kv_file.md): the round trip, every truncation and byte flip
// refused, sizes checked before allocation, the meta's checks behind a valid checksum, the reasons a
// file does not fit a run, and the atomic writer.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "gen/error.h"
#include "gen/kv_file.h"
#include "model/hash.h"
#include "model_test_util.h"
#include "test_util.h"

using namespace gen;
using namespace gen::test;
using json = nlohmann::json;

namespace {

// 2 layers, 2 heads of 4, 3 tokens: kv is 2 x 2 x 2 x 3 x 4 elements.
KvFile sample(const std::string& kv_dtype = "f32", int n_tokens = 3) {
  KvFile f;
  f.kind = "chat";
  f.model.n_layer = 2, f.model.n_head = 2, f.model.n_embd = 8, f.model.n_positions = 16;
  f.model.vocab_size = 50, f.model.layer_norm_epsilon = 1e-5f;
  f.model.tensors = "0123456789abcdef", f.model.weights = "fedcba9876543210";
  f.dtype = "bf16", f.kv_dtype = kv_dtype, f.device = "cpu";
  for (int i = 0; i < n_tokens; ++i) f.tokens.push_back((7 * i + 3) % 50);
  f.kv.resize(size_t(2 * 2 * 2 * n_tokens * 4) * kv_dtype_bytes(kv_dtype));
  for (size_t i = 0; i < f.kv.size(); ++i) f.kv[i] = uint8_t(i * 37 + 11);
  f.extra = {{"messages", {{{"role", "user"}, {"content", "hi"}}}}};
  return f;
}

std::string file_bytes(const KvFile& f) {
  TempDir d;
  write_kv_file(d / "f.kv", f);
  return read_file(d / "f.kv");
}

// On the heap at its exact size, so that ASan sees a read past the end.
KvFile parse(const std::string& bytes) {
  std::vector<uint8_t> v(bytes.begin(), bytes.end());
  return parse_kv_file(v.data(), v.size(), "test");
}

// A file image made by hand from docs/kv_file.md's table, with a correct checksum, to reach the checks
// behind it. fields: version, meta_bytes, n_tokens, n_layer, n_head, head_dim, elem_bytes, reserved.
std::string image(std::vector<uint32_t> fields, uint64_t kv_bytes, const std::string& body) {
  std::string s("GENKV\r\n\x1a", 8);
  for (uint32_t v : fields) s.append(reinterpret_cast<const char*>(&v), 4);
  s.append(reinterpret_cast<const char*>(&kv_bytes), 8);
  s += body;
  const uint64_t sum = xxh3_64(s.data(), s.size());
  return s + std::string(reinterpret_cast<const char*>(&sum), 8);
}

// A file of sample()'s shape (2 layers, 2 heads of 4) with `meta`, `ids` and filler K/V, its checksum
// right: the meta's checks are what is left to refuse it.
std::string with_meta(const json& meta, uint32_t elem_bytes = 4, std::vector<int32_t> ids = {3, 10, 17}) {
  const std::string text = meta.dump();
  std::string body = text;
  for (int32_t id : ids) body.append(reinterpret_cast<const char*>(&id), 4);
  const uint64_t kv = 2ull * 2 * 2 * ids.size() * 4 * elem_bytes;
  body += std::string(kv, '\x5a');
  return image({1, uint32_t(text.size()), uint32_t(ids.size()), 2, 2, 4, elem_bytes, 0}, kv, body);
}

json sample_meta() {
  return {{"kind", "prompt"},
          {"dtype", "fp32"},
          {"kv_dtype", "f32"},
          {"device", "cuda"},
          {"model",
           {{"n_layer", 2},
            {"n_head", 2},
            {"n_embd", 8},
            {"n_positions", 16},
            {"vocab_size", 50},
            {"layer_norm_epsilon", 1e-5},
            {"tensors", "0123456789abcdef"},
            {"weights", "fedcba9876543210"}}}};
}

std::vector<std::string> dir_entries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("A K/V file written then read or parsed gives back every field", "[kv_file]") {
  for (const std::string kv_dtype : {"f32", "bf16"}) {
    INFO(kv_dtype);
    TempDir d;
    KvFile f = sample(kv_dtype);
    f.extra["note"] = std::string("cut \xe2\x82", 6);  // not UTF-8: written as U+FFFD, not refused
    write_kv_file(d / "f.kv", f);
    const std::string bytes = read_file(d / "f.kv");
    REQUIRE(bytes.compare(0, 8, std::string("GENKV\r\n\x1a", 8)) == 0);
    for (const KvFile& g : {read_kv_file(d / "f.kv", "session"), parse(bytes)}) {
      CHECK(g.kind == f.kind);
      CHECK(g.model == f.model);
      CHECK(g.dtype == f.dtype);
      CHECK(g.kv_dtype == f.kv_dtype);
      CHECK(g.device == f.device);
      CHECK(g.tokens == f.tokens);
      CHECK(g.kv == f.kv);
      CHECK(g.extra["messages"] == f.extra["messages"]);
      CHECK(g.extra["note"] == "cut \xef\xbf\xbd");
    }
    uint32_t meta_bytes = 0;
    std::memcpy(&meta_bytes, bytes.data() + 12, 4);
    CHECK(bytes.size() == 48 + meta_bytes + 4 * f.tokens.size() + f.kv.size() + 8);
    CHECK(dir_entries(d.path()) == std::vector<std::string>{"f.kv"});
  }
  KvFile no_extra = sample();
  no_extra.extra = json::object();
  CHECK(parse(file_bytes(no_extra)).extra == json::object());
}

TEST_CASE("Every truncation of a K/V file is refused, and so is one extra byte", "[kv_file]") {
  const std::string bytes = file_bytes(sample());
  const std::string full = std::to_string(bytes.size());
  for (size_t n = 0; n < bytes.size(); ++n) {
    INFO("length " << n);
    const std::string want = n < 48 ? std::to_string(n) + " bytes, shorter than its 48-byte header"
                                    : std::to_string(n) + " bytes, its header says " + full;
    REQUIRE_INPUT_ERROR(parse(bytes.substr(0, n)), want);
  }
  REQUIRE_INPUT_ERROR(parse(bytes + '\0'),
                      std::to_string(bytes.size() + 1) + " bytes, its header says " + full);
  TempDir d;
  write_file(d / "short.kv", bytes.substr(0, bytes.size() - 1));
  REQUIRE_THROWS_WITH(read_kv_file(d / "short.kv", "session"),
                      "the K/V file is truncated or has extra bytes: " + std::to_string(bytes.size() - 1) +
                          " bytes, its header says " + full + " (" + d / "short.kv" + ")");
}

TEST_CASE("Flipping any byte of a K/V file is refused", "[kv_file]") {
  const std::string bytes = file_bytes(sample());
  REQUIRE(bytes.size() < 2000);  // small enough to try every byte
  size_t by_checksum = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (uint8_t mask : {0x01, 0x80, 0xff}) {
      std::string bad = bytes;
      bad[i] = char(bad[i] ^ mask);
      INFO("byte " << i << " ^ " << int(mask));
      try {
        parse(bad);
        FAIL("accepted");
      } catch (const InputError& e) {
        by_checksum += std::string(e.what()).find("checksum mismatch") != std::string::npos;
      }
    }
  }
  // Past the header every flip is the checksum's to find.
  CHECK(by_checksum == 3 * (bytes.size() - 48));
  REQUIRE_INPUT_ERROR(parse("GENKV\r\n\x1b"), "not a gen K/V file (bad magic)");
  std::string v7 = bytes;
  v7[8] = 7;
  REQUIRE_INPUT_ERROR(parse(v7), "K/V file version 7 is not supported (this gen reads version 1)");
}

TEST_CASE("Sizes that claim a huge K/V are refused by the size check, before any allocation", "[kv_file]") {
  const std::string meta = "{}";
  // 2 x 4096 x 4096 x 2^20 x 8192 x 4 = 2^60 bytes of K/V, the header's kv_bytes agreeing.
  const std::string huge = image({1, 2, 1u << 20, 4096, 4096, 8192, 4, 0}, 1ull << 60, meta);
  REQUIRE_INPUT_ERROR(parse(huge), "the K/V file is truncated or has extra bytes: " +
                                       std::to_string(huge.size()) + " bytes, its header says " +
                                       std::to_string(48 + 2 + 4 * (1ull << 20) + (1ull << 60) + 8));
  // 2^20 tokens of a small model in a file of about 100 bytes.
  const std::string many = image({1, 2, 1u << 20, 1, 1, 4, 4, 0}, 32ull << 20, meta + std::string(42, 'x'));
  REQUIRE(many.size() == 100);
  REQUIRE_INPUT_ERROR(parse(many),
                      "100 bytes, its header says " + std::to_string(48 + 2 + (4 << 20) + (32 << 20) + 8));
  TempDir d;
  write_file(d / "huge.kv", huge);
  REQUIRE_INPUT_ERROR(read_kv_file(d / "huge.kv", "prompt cache"), "its header says");
  // The header's own fields, before the total.
  REQUIRE_INPUT_ERROR(parse(image({1, 2, 1, 4096, 4096, 8192, 4, 0}, 1, meta)),
                      "kv_bytes 1, but 2 x n_layer");
  REQUIRE_INPUT_ERROR(parse(image({1, 2, 1u << 20, ~0u, ~0u, ~0u, 4, 0}, 0, meta)), "overflows 64 bits");
  REQUIRE_INPUT_ERROR(parse(image({1, 2, 0, 1, 1, 1, 4, 0}, 0, meta)), "n_tokens 0 (must be 1 to 1048576)");
  REQUIRE_INPUT_ERROR(parse(image({1, 2, (1u << 20) + 1, 1, 1, 1, 4, 0}, 0, meta)), "n_tokens 1048577");
  REQUIRE_INPUT_ERROR(parse(image({1, (16u << 20) + 1, 1, 1, 1, 1, 4, 0}, 8, meta)),
                      "a meta section of 16777217");
  REQUIRE_INPUT_ERROR(parse(image({1, 2, 1, 1, 1, 1, 3, 0}, 6, meta)), "elem_bytes 3 (must be 2 or 4)");
  REQUIRE_INPUT_ERROR(parse(image({1, 2, 1, 1, 0, 1, 4, 0}, 0, meta)), "n_head 0");
  REQUIRE_INPUT_ERROR(parse(image({1, 2, 1, 1, 1, 1, 4, 9}, 8, meta)), "the reserved field is 9, not 0");
}

TEST_CASE("A valid checksum over a bad meta section is refused with the meta's message", "[kv_file]") {
  CHECK(parse(with_meta(sample_meta())).kind == "prompt");
  json unknown = sample_meta();
  unknown["from_the_future"] = {1, 2};
  unknown["model"]["also_new"] = true;
  CHECK(parse(with_meta(unknown)).extra == json::object());

  const std::string meta_error = "the K/V file's meta section is not valid: ";
  REQUIRE_INPUT_ERROR(parse(with_meta(sample_meta(), 4, {3, 50, 1})),
                      "the K/V file's token ids are not valid: id 50 at position 1 is outside the model's "
                      "vocabulary (vocab_size 50)");
  REQUIRE_INPUT_ERROR(parse(with_meta(sample_meta(), 4, {-1, 0, 1})), "id -1 at position 0");
  REQUIRE_INPUT_ERROR(parse(with_meta(sample_meta(), 2)),
                      meta_error + "kv_dtype f32 has 4-byte elements; the header's elem_bytes is 2");
  const auto bad = [&](const char* key, const json& value, const std::string& part) {
    json m = sample_meta();
    if (std::string(key).rfind("model.", 0) == 0) {
      m["model"][std::string(key).substr(6)] = value;
    } else {
      m[key] = value;
    }
    INFO(key << " = " << value.dump());
    REQUIRE_INPUT_ERROR(parse(with_meta(m)), meta_error + part);
  };
  bad("model.n_layer", 3, "model.n_layer 3 disagrees with the header's n_layer 2");
  bad("model.n_head", 1, "model.n_head 1 disagrees with the header's n_head 2");
  bad("model.n_embd", 16, "model.n_embd 16 disagrees with the header's n_head x head_dim 8");
  bad("model.vocab_size", 0, "model.vocab_size is 0, not a positive integer");
  bad("model.n_positions", 1.5, "model.n_positions is 1.5, not a positive integer");
  bad("model.n_layer", 4294967298ull, "model.n_layer is 4294967298, not a positive integer");
  bad("model.layer_norm_epsilon", "1e-5", "model.layer_norm_epsilon is \"1e-5\", not a positive number");
  bad("model.layer_norm_epsilon", 1e-300, "model.layer_norm_epsilon is 1e-300, not a positive number");
  bad("model.layer_norm_epsilon", 1e300, "model.layer_norm_epsilon is 1e+300, not a positive number");
  bad("model.tensors", "0123456789ABCDEF",
      "model.tensors is \"0123456789ABCDEF\", not 16 lowercase hex digits");
  bad("model.weights", 5, "model.weights is 5");
  bad("model", json::array(), "model is [], not an object");
  bad("kind", 1, "kind is 1, not a string");
  bad("dtype", "fp8", "dtype 'fp8' is not one of fp32, fp16, bf16, int8");
  bad("kv_dtype", "f64", "kv_dtype 'f64' is not one of f32, f16, bf16");
  bad("extra", "x", "extra is \"x\", not an object");
  json no_device = sample_meta();
  no_device.erase("device");
  REQUIRE_INPUT_ERROR(parse(with_meta(no_device)), meta_error + "no device");
  REQUIRE_INPUT_ERROR(parse(with_meta(json::array({1}))), meta_error + "not a JSON object");
  std::string text = "{\"kind\": ";
  const std::string not_json = image({1, uint32_t(text.size()), 1, 1, 1, 1, 4, 0}, 8,
                                     text + std::string("\x01\0\0\0", 4) + std::string(8, 'k'));
  REQUIRE_INPUT_ERROR(parse(not_json), meta_error + "not JSON: ");
  text = std::string(100, '[') + std::string(100, ']');
  const std::string deep =
      image({1, uint32_t(text.size()), 1, 1, 1, 1, 4, 0}, 8, text + std::string(12, '\0'));
  REQUIRE_INPUT_ERROR(parse(deep), meta_error + "it nests too deeply");
}

TEST_CASE("check_kv_file_matches names each reason a file does not fit the run", "[kv_file]") {
  const KvFile f = sample();  // chat, bf16 weights, f32 K/V
  const ModelFingerprint here = f.model;
  check_kv_file_matches(f, "chat", here, "bf16", "f32", "s.kv");
  REQUIRE_THROWS_WITH(check_kv_file_matches(f, "prompt", here, "bf16", "f32", "s.kv"),
                      "the K/V file is a chat session, not a prompt cache (s.kv)");
  ModelFingerprint other = here;
  other.n_layer = 12, other.n_head = 12, other.n_embd = 768;
  REQUIRE_THROWS_WITH(check_kv_file_matches(f, "chat", other, "bf16", "f32", "s.kv"),
                      "the K/V file is for another model: n_layer 2, n_head 2, n_embd 8 there; n_layer 12, "
                      "n_head 12, n_embd 768 here (s.kv)");
  other = here;
  other.layer_norm_epsilon = 1e-6f;
  REQUIRE_INPUT_ERROR(check_kv_file_matches(f, "chat", other, "bf16", "f32", "s.kv"),
                      "layer_norm_epsilon 1e-05 there; layer_norm_epsilon 1e-06 here");
  other = here;
  other.tensors = "1111111111111111", other.weights = "2222222222222222";
  REQUIRE_THROWS_WITH(check_kv_file_matches(f, "chat", other, "bf16", "f32", "s.kv"),
                      "the K/V file is for another model (its tensors differ) (s.kv)");
  other = here;
  other.weights = "2222222222222222";
  REQUIRE_THROWS_WITH(check_kv_file_matches(f, "chat", other, "bf16", "f32", "s.kv"),
                      "the K/V file is for other weights (the same tensors, other values) (s.kv)");
  REQUIRE_THROWS_WITH(check_kv_file_matches(f, "chat", here, "fp32", "f32", "s.kv"),
                      "the K/V file was computed with --dtype bf16; this run uses fp32 (s.kv)");
  REQUIRE_THROWS_WITH(check_kv_file_matches(f, "chat", here, "bf16", "bf16", "s.kv"),
                      "the K/V file holds f32 K/V; this run's cache holds bf16 (s.kv)");
  REQUIRE_THROWS_AS(check_kv_file_matches(f, "chat", here, "bf16", "bf16", "s.kv"), InputError);
}

namespace {
size_t g_budget = 0;  // bytes the fake write lets through before it fails with ENOSPC
long failing_write(int fd, const void* buf, size_t n) {
  if (g_budget == 0) {
    errno = ENOSPC;
    return -1;
  }
  const long w = ::write(fd, buf, std::min<size_t>({n, g_budget, 7}));  // short writes too
  if (w > 0) g_budget -= size_t(w);
  return w;
}
int g_eintr = 0;
long interrupted_write(int fd, const void* buf, size_t n) {
  if (g_eintr++ % 2 == 0) {
    errno = EINTR;
    return -1;
  }
  return ::write(fd, buf, std::min<size_t>(n, 5));
}
long silent_write(int, const void*, size_t) { return 0; }
}  // namespace

TEST_CASE("write_kv_file is atomic: a failed write leaves the old file whole and no temporary", "[kv_file]") {
  TempDir d;
  const std::string path = d / "s.kv";
  KvFile old = sample();
  write_kv_file(path, old);
  const std::string before = read_file(path);
  KvFile next = sample("f32", 9);
  for (size_t budget : {size_t(0), size_t(30), size_t(400), before.size()}) {
    g_budget = budget;
    INFO("fails after " << budget << " bytes");
    REQUIRE_THROWS_WITH(write_kv_file(path, next, failing_write),
                        "writing " + path + " failed: " + std::strerror(ENOSPC));
    CHECK(read_file(path) == before);
    CHECK(dir_entries(d.path()) == std::vector<std::string>{"s.kv"});
  }
  REQUIRE_THROWS_WITH(write_kv_file(path, next, silent_write),
                      "writing " + path + " failed: " + std::strerror(EIO));
  CHECK(dir_entries(d.path()) == std::vector<std::string>{"s.kv"});
  write_kv_file(path, next, interrupted_write);  // EINTR and short writes are carried on
  CHECK(read_kv_file(path, "session").tokens == next.tokens);
  REQUIRE_THROWS_WITH(write_kv_file(d / "no/such/dir.kv", next),
                      "writing " + d / "no/such/dir.kv" + " failed: " + std::strerror(ENOENT));

  // What gen would refuse to read is not written (Error, not InputError: a bug of the caller).
  next.kv.pop_back();
  REQUIRE_THROWS_WITH(write_kv_file(path, next), Catch::Contains("the K/V holds 1151 bytes"));
  next = sample();
  next.tokens[1] = 50;
  REQUIRE_THROWS_WITH(write_kv_file(path, next),
                      Catch::Contains("gen would refuse: the K/V file's token ids"));
  next = sample();
  next.kv_dtype = "f8";
  REQUIRE_THROWS_WITH(write_kv_file(path, next), Catch::Contains("unknown K/V element type 'f8'"));
  CHECK(read_file(path) == file_bytes(sample("f32", 9)));
}

TEST_CASE("check_kv_file_writable refuses a missing directory and a directory, and leaves nothing",
          "[kv_file]") {
  TempDir d;
  check_kv_file_writable(d / "new.kv", "prompt cache");
  CHECK(dir_entries(d.path()).empty());
  REQUIRE_THROWS_WITH(check_kv_file_writable(d / "missing/new.kv", "prompt cache"),
                      "cannot write the prompt cache: " + std::string(std::strerror(ENOENT)) + " (" +
                          d / "missing/new.kv" + ")");
  REQUIRE_THROWS_AS(check_kv_file_writable(d / "missing/new.kv", "prompt cache"), InputError);
  REQUIRE_THROWS_WITH(
      check_kv_file_writable(d.path(), "session"),
      "cannot write the session: " + std::string(std::strerror(EISDIR)) + " (" + d.path() + ")");
  write_file(d / "file", "x");
  REQUIRE_INPUT_ERROR(check_kv_file_writable(d / "file/sub.kv", "session"), std::strerror(ENOTDIR));
  CHECK(dir_entries(d.path()) == std::vector<std::string>{"file"});
}

TEST_CASE("read_kv_file refuses a missing file, a directory and a FIFO", "[kv_file]") {
  TempDir d;
  REQUIRE_THROWS_WITH(read_kv_file(d / "none.kv", "prompt cache"),
                      "cannot read the prompt cache: No such file or directory (" + d / "none.kv" + ")");
  REQUIRE_THROWS_AS(read_kv_file(d / "none.kv", "prompt cache"), InputError);
  REQUIRE_THROWS_WITH(
      read_kv_file(d.path(), "session"),
      "cannot read the session: " + std::string(std::strerror(EISDIR)) + " (" + d.path() + ")");
  REQUIRE(::mkfifo((d / "fifo").c_str(), 0600) == 0);
  REQUIRE_INPUT_ERROR(read_kv_file(d / "fifo", "session"), "cannot read the session: not a regular file");
  write_file(d / "empty.kv", "");
  REQUIRE_INPUT_ERROR(read_kv_file(d / "empty.kv", "session"), "0 bytes, shorter than its 48-byte header");
  write_file(d / "text.kv", "{\"not\": \"a K/V file\"}\n");
  REQUIRE_INPUT_ERROR(read_kv_file(d / "text.kv", "session"), "not a gen K/V file (bad magic)");
  CHECK(kv_dtype_bytes("f16") == 2);
  REQUIRE_INPUT_ERROR(kv_dtype_bytes("f64"), "unknown K/V element type 'f64'");
}

// Not run by default: writes the fuzzer's seeds (tests/fuzz/corpus/kv_file) into $GEN_KV_CORPUS_DIR.
TEST_CASE("Write the kv_file fuzzer's seed corpus", "[.kv_file_corpus]") {
  const char* dir = std::getenv("GEN_KV_CORPUS_DIR");
  REQUIRE(dir != nullptr);
  write_kv_file(std::string(dir) + "/chat_f32.kv", sample("f32", 3));
  KvFile p = sample("bf16", 1);
  p.kind = "prompt", p.extra = json::object();
  write_kv_file(std::string(dir) + "/prompt_bf16_one_token.kv", p);
  KvFile f16 = sample("f16", 5);
  f16.extra = {{"messages", json::array()}, {"system", "be brief"}};
  write_kv_file(std::string(dir) + "/chat_f16.kv", f16);
}
