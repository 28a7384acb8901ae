// The model fingerprint (gen/fingerprint.h): equal for the same model, `weights` alone differing when
// one value does, the shape and `tensors` for another shape, and the hash cache beside the model (used
// while size and mtime match, recomputed otherwise, a note when it cannot be written). Also XXH3 itself.
#include <fcntl.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "gen/error.h"
#include "gen/fingerprint.h"
#include "gen/notes.h"
#include "model/hash.h"
#include "model/model_maker.h"
#include "model_test_util.h"
#include "test_util.h"

using namespace gen;
using namespace gen::test;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

ModelConfig small_config(int n_layer) {
  return ModelConfig::parse(R"({"n_layer": )" + std::to_string(n_layer) +
                                R"(, "n_head": 2, "n_embd": 16, "n_positions": 32, "vocab_size": 300})",
                            "small");
}

std::string make_model(const std::string& dir, const ModelConfig& cfg, uint64_t seed = 1) {
  MakeModelSpec spec;
  spec.cfg = cfg;
  spec.seed = seed;
  make_random_model(dir, spec);
  return dir;
}

int64_t mtime_ns(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

// Collects the notes given while it lives.
struct NoteCatcher {
  std::vector<std::string> notes;
  NoteSink old;
  NoteCatcher() : old(set_note_sink([this](const std::string& n) { notes.push_back(n); })) {}
  ~NoteCatcher() { set_note_sink(old); }
};

}  // namespace

TEST_CASE("XXH3-64: the reference values, in one piece or several", "[fingerprint]") {
  CHECK(xxh3_64("", 0) == 0x2d06800538d394c2ull);  // xxHash's published value for empty input
  CHECK(hex64(0x2d06800538d394c2ull) == "2d06800538d394c2");
  CHECK(hex64(0xabull) == "00000000000000ab");
  std::string text(1000, '\0');
  for (size_t i = 0; i < text.size(); ++i) text[i] = char(i * 131 + 7);
  Hash64 h;
  h.update(text.data(), 1);
  h.update(nullptr, 0);
  h.update(text.data() + 1, 600);
  h.update(text.data() + 601, 399);
  CHECK(h.digest() == xxh3_64(text.data(), text.size()));
  text[500] ^= 1;
  CHECK(h.digest() != xxh3_64(text.data(), text.size()));
}

TEST_CASE("model_fingerprint: the same model agrees, one weight or the shape changes it", "[fingerprint]") {
  TempDir d;
  const ModelConfig cfg = small_config(2);
  const std::string a = make_model(d / "a", cfg), b = make_model(d / "b", cfg);
  const ModelFingerprint fa = model_fingerprint(a, cfg);
  CHECK(fa == model_fingerprint(b, cfg));
  CHECK(fa == model_fingerprint(a, cfg));  // from the cache this time
  CHECK(fa.n_layer == 2);
  CHECK(fa.n_embd == 16);
  CHECK(fa.vocab_size == 300);
  CHECK(fa.layer_norm_epsilon == cfg.layer_norm_epsilon);
  const std::string bytes = read_file(a + "/model.safetensors");
  CHECK(fa.weights == hex64(xxh3_64(bytes.data(), bytes.size())));
  CHECK(fa.tensors.size() == 16);
  CHECK(fa.tensors != fa.weights);

  // The same tensors, one value changed (the last byte of the file is the last tensor's).
  const std::string c = d / "c";
  fs::create_directories(c);
  fs::copy_file(a + "/config.json", c + "/config.json");
  std::string changed = bytes;
  changed.back() = char(changed.back() ^ 0x10);
  write_file(c + "/model.safetensors", changed);
  const ModelFingerprint fc = model_fingerprint(c, cfg);
  CHECK(fc.tensors == fa.tensors);
  CHECK(fc.weights != fa.weights);
  CHECK(fc != fa);

  const ModelConfig cfg3 = small_config(3);
  const ModelFingerprint fo = model_fingerprint(make_model(d / "o", cfg3), cfg3);
  CHECK(fo.n_layer == 3);
  CHECK(fo.tensors != fa.tensors);
  CHECK(fo.weights != fa.weights);
  CHECK(fo != fa);
  // Another seed: the same tensor list, other weights.
  const ModelFingerprint fs2 = model_fingerprint(make_model(d / "s", cfg, 2), cfg);
  CHECK(fs2.tensors == fa.tensors);
  CHECK(fs2.weights != fa.weights);

  REQUIRE_INPUT_ERROR(model_fingerprint(d / "none", cfg), "cannot open safetensors file");
}

TEST_CASE("The weights' hash is kept beside the model and used while its size and mtime match",
          "[fingerprint]") {
  TempDir d;
  const ModelConfig cfg = small_config(1);
  const std::string dir = make_model(d / "m", cfg);
  const std::string model = dir + "/model.safetensors", cache = model + ".gen-xxh3";
  const std::string real = model_fingerprint(dir, cfg).weights;
  REQUIRE(fs::is_regular_file(cache));
  json j = json::parse(read_file(cache));
  CHECK(j["size"] == fs::file_size(model));
  CHECK(j["mtime_ns"] == mtime_ns(model));
  CHECK(j["xxh3_64"] == real);
  CHECK(fs::directory_iterator(dir) != fs::directory_iterator());
  for (const auto& e : fs::directory_iterator(dir)) {
    CHECK(e.path().filename().string().find(".tmp") == std::string::npos);  // no temporary left
  }

  // Read, not recomputed: a value it could not have computed comes back.
  j["xxh3_64"] = "0123456789abcdef";
  write_file(cache, j.dump());
  CHECK(model_fingerprint(dir, cfg).weights == "0123456789abcdef");

  // A new mtime (the file rewritten in place) makes it compute again, and keep the new value.
  const struct timespec times[2] = {{0, UTIME_OMIT}, {1700000000, 123456789}};
  REQUIRE(::utimensat(AT_FDCWD, model.c_str(), times, 0) == 0);
  CHECK(model_fingerprint(dir, cfg).weights == real);
  j = json::parse(read_file(cache));
  CHECK(j["mtime_ns"] == 1700000000123456789ll);
  CHECK(j["xxh3_64"] == real);

  // Another size, a broken file, a foreign one: computed over, no note.
  NoteCatcher catcher;
  for (const std::string& text :
       {std::string(R"({"size": 1, "mtime_ns": 1700000000123456789, "xxh3_64": "0123456789abcdef"})"),
        std::string("\x00\xff garbage", 10), std::string("[1, 2]"),
        std::string(R"({"size": "x", "mtime_ns": [], "xxh3_64": 7})")}) {
    write_file(cache, text);
    CHECK(model_fingerprint(dir, cfg).weights == real);
    CHECK(json::parse(read_file(cache))["xxh3_64"] == real);
  }
  CHECK(catcher.notes.empty());
}

TEST_CASE("A model directory that cannot hold the hash's cache gives a note, not an error", "[fingerprint]") {
  TempDir d;
  const ModelConfig cfg = small_config(1);
  const std::string dir = make_model(d / "m", cfg);
  const std::string model = dir + "/model.safetensors";
  // A directory in the cache's place: it cannot be read as one nor renamed over (root included).
  fs::create_directories(model + ".gen-xxh3/x");
  const std::string bytes = read_file(model);
  NoteCatcher catcher;
  CHECK(model_fingerprint(dir, cfg).weights == hex64(xxh3_64(bytes.data(), bytes.size())));
  REQUIRE(catcher.notes.size() == 1);
  CHECK_THAT(catcher.notes[0], Catch::Contains("cannot keep the hash of model.safetensors") &&
                                   Catch::Contains("it is computed each run"));
  for (const auto& e : fs::directory_iterator(dir)) {
    CHECK(e.path().filename().string().find(".tmp") == std::string::npos);
  }
}
