// The safetensors unit (src/model/safetensors.cpp): fp16 / bf16 conversions, the reader (including
// broken and mutated headers) and the writer.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <random>

#include "gen/error.h"
#include "model/safetensors.h"
#include "model_test_util.h"
#include "test_util.h"

using namespace gen;
using gen::test::decode;
using gen::test::encode;

namespace {

float bits_f(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// A safetensors image: length prefix, header text as given, `data_bytes` bytes of data.
std::vector<uint8_t> image(const std::string& header, size_t data_bytes, uint64_t n_override = 0) {
  const uint64_t n = n_override ? n_override : header.size();
  std::vector<uint8_t> out(8);
  out.reserve(8 + header.size() + data_bytes);  // no reallocation (and no GCC 12 -Warray-bounds noise)
  std::memcpy(out.data(), &n, 8);
  out.insert(out.end(), header.begin(), header.end());
  for (size_t i = 0; i < data_bytes; ++i) out.push_back(static_cast<uint8_t>(i * 7 + 1));
  return out;
}

std::map<std::string, TensorView> parse(const std::vector<uint8_t>& file) {
  return parse_safetensors(file.data(), file.size(), "mem.safetensors");
}

}  // namespace

TEST_CASE("fp16 conversions: known bit patterns and round to nearest even", "[loader]") {
  CHECK(half_to_float(0x3C00) == 1.0f);
  CHECK(half_to_float(0x7BFF) == 65504.0f);
  CHECK(half_to_float(0x0001) == std::ldexp(1.0f, -24));
  CHECK(half_to_float(0x03FF) == 1023 * std::ldexp(1.0f, -24));
  CHECK(half_to_float(0x0400) == std::ldexp(1.0f, -14));
  CHECK(half_to_float(0xC000) == -2.0f);
  CHECK(std::signbit(half_to_float(0x8000)));
  CHECK(half_to_float(0x7C00) == std::numeric_limits<float>::infinity());
  CHECK(half_to_float(0xFC00) == -std::numeric_limits<float>::infinity());
  CHECK(std::isnan(half_to_float(0x7E00)));
  CHECK(std::isnan(half_to_float(0x7C01)));

  CHECK(float_to_half(1.0f) == 0x3C00);
  CHECK(float_to_half(65504.0f) == 0x7BFF);
  CHECK(float_to_half(65519.0f) == 0x7BFF);
  CHECK(float_to_half(65520.0f) == 0x7C00);  // the midpoint to the next power rounds to inf
  CHECK(float_to_half(1e10f) == 0x7C00);
  CHECK(float_to_half(-std::numeric_limits<float>::infinity()) == 0xFC00);
  CHECK(float_to_half(std::ldexp(1.0f, -24)) == 0x0001);
  CHECK(float_to_half(std::ldexp(1.0f, -25)) == 0x0000);         // tie, to even (0)
  CHECK(float_to_half(std::ldexp(1.0001f, -25)) == 0x0001);      // just above the tie
  CHECK(float_to_half(std::ldexp(3.0f, -25)) == 0x0002);         // 1.5 ulp, tie, to even (2)
  CHECK(float_to_half(std::ldexp(2047.0f, -25)) == 0x0400);      // tie at the top of subnormals
  CHECK(float_to_half(1.0f + std::ldexp(1.0f, -11)) == 0x3C00);  // tie, to even
  CHECK(float_to_half(1.0f + std::ldexp(3.0f, -11)) == 0x3C02);  // tie, to even
  CHECK(float_to_half(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)) == 0x3C01);
  CHECK(float_to_half(-0.0f) == 0x8000);
  CHECK(float_to_half(1e-30f) == 0x0000);
  const uint16_t n = float_to_half(std::numeric_limits<float>::quiet_NaN());
  CHECK(((n & 0x7C00) == 0x7C00 && (n & 0x3FF) != 0));
  CHECK(std::isnan(half_to_float(float_to_half(bits_f(0x7F800001)))));  // payload only in low bits

  for (uint32_t h = 0; h < 0x10000; ++h) {  // every non-nan half survives float and back
    const float f = half_to_float(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    REQUIRE(float_to_half(f) == h);
  }
}

TEST_CASE("bf16 conversions: known bit patterns and round to nearest even", "[loader]") {
  CHECK(bf16_to_float(0x3F80) == 1.0f);
  CHECK(bf16_to_float(0xC040) == -3.0f);
  CHECK(float_to_bf16(1.0f) == 0x3F80);
  CHECK(float_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3F80);  // tie, to even
  CHECK(float_to_bf16(1.0f + std::ldexp(3.0f, -8)) == 0x3F82);  // tie, to even
  CHECK(float_to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)) == 0x3F81);
  CHECK(float_to_bf16(std::numeric_limits<float>::max()) == 0x7F80);  // rounds up to inf
  CHECK(float_to_bf16(std::numeric_limits<float>::infinity()) == 0x7F80);
  CHECK(std::isnan(bf16_to_float(float_to_bf16(bits_f(0x7F800001)))));  // would truncate to inf
  CHECK(std::isnan(bf16_to_float(float_to_bf16(-std::numeric_limits<float>::quiet_NaN()))));
  for (uint32_t b = 0; b < 0x10000; ++b) {
    const float f = bf16_to_float(static_cast<uint16_t>(b));
    if (std::isnan(f)) continue;
    REQUIRE(float_to_bf16(f) == b);
  }
}

TEST_CASE("to_float agrees with the scalar conversions for every dtype", "[loader]") {
  const std::vector<float> v = {0.0f, -1.5f, 3.14159f, 1e-6f, 70000.0f, -1e-9f, 12345.678f};
  for (DType t : {DType::F32, DType::F16, DType::BF16}) {
    const std::vector<uint8_t> b = encode(v, t);
    const std::vector<float> got = decode(b, t);
    for (size_t i = 0; i < v.size(); ++i) {
      const float ref = t == DType::F32   ? v[i]
                        : t == DType::F16 ? half_to_float(float_to_half(v[i]))
                                          : bf16_to_float(float_to_bf16(v[i]));
      CHECK(got[i] == ref);
    }
  }
  CHECK(dtype_size(DType::F32) == 4);
  CHECK(dtype_size(DType::BF16) == 2);
  CHECK(std::string(dtype_name(DType::BF16)) == "BF16");
}

TEST_CASE("write_safetensors then SafeTensors reads back the same tensors", "[loader]") {
  test::TempDir dir;
  const std::vector<TensorToWrite> in = {
      {"a", DType::F32, {2, 3}, encode({1, 2, 3, 4, 5, 6}, DType::F32)},
      {"b.half", DType::F16, {3}, encode({0.5f, -2, 7}, DType::F16)},
      {"c", DType::BF16, {1, 2}, encode({9, -0.25f}, DType::BF16)},
      {"empty", DType::F32, {0, 4}, {}},
      {"scalar", DType::F32, {}, encode({42}, DType::F32)},
  };
  write_safetensors(dir / "x.safetensors", in);
  const std::string raw = test::read_file(dir / "x.safetensors");
  uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  CHECK(n % 8 == 0);  // padded so that the data section is aligned

  SafeTensors st(dir / "x.safetensors");
  REQUIRE(st.tensors().size() == in.size());
  for (const TensorToWrite& t : in) {
    const TensorView* v = st.find(t.name);
    REQUIRE(v != nullptr);
    CHECK(v->dtype == t.dtype);
    CHECK(v->shape == t.shape);
    CHECK(v->numel() * int64_t(dtype_size(t.dtype)) == int64_t(t.bytes.size()));
    REQUIRE(v->nbytes == t.bytes.size());
    CHECK((v->nbytes == 0 || std::memcmp(v->data, t.bytes.data(), v->nbytes) == 0));
  }
  CHECK(st.find("missing") == nullptr);
  CHECK(st.find("a")->offset == 0);
  CHECK(st.find("b.half")->offset == 24);  // contiguous in the given order
}

TEST_CASE("parse_safetensors accepts metadata and empty tensors on the tensors' boundaries", "[loader]") {
  auto t = parse(image(R"({"__metadata__": {"format": "pt"},
      "x": {"dtype": "F16", "shape": [2], "data_offsets": [4, 8]},
      "e": {"dtype": "BF16", "shape": [3, 0], "data_offsets": [4, 4]},
      "z": {"dtype": "F32", "shape": [0], "data_offsets": [8, 8]},
      "y": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}})",
                       8));
  REQUIRE(t.size() == 4);
  CHECK(t.at("x").offset == 4);
  CHECK(t.at("x").numel() == 2);
  CHECK(t.at("e").numel() == 0);
  CHECK(t.at("y").numel() == 1);
  REQUIRE(parse(image("{}", 0)).empty());  // no tensors, no data
}

TEST_CASE("parse_safetensors is as strict as the reference reader: no duplicate names, no gaps, no tail",
          "[loader]") {
  const std::string a = R"("a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]})";
  const std::string b = R"("b": {"dtype": "F16", "shape": [4], "data_offsets": [8, 16]})";
  REQUIRE(parse(image("{" + a + ", " + b + "}", 16)).size() == 2);
  // nlohmann alone would keep one of the two entries without a word.
  REQUIRE_INPUT_ERROR(parse(image("{" + a + ", " + b + ", " + a + "}", 16)),
                      "duplicate tensor name 'a' in the safetensors header");
  REQUIRE_INPUT_ERROR(
      parse(image(R"({"a": {"dtype": "F32", "shape": [2], "dtype": "F16", "data_offsets": [0, 8]}})", 8)),
      "duplicate key 'dtype' in the safetensors header");
  REQUIRE_INPUT_ERROR(parse(image(R"({"__metadata__": {"k": "v", "k": "w"}, )" + a + "}", 8)),
                      "duplicate key 'k'");
  REQUIRE_INPUT_ERROR(parse(image(R"({"__metadata__": {}, "__metadata__": {}, )" + a + "}", 8)),
                      "duplicate key '__metadata__'");
  REQUIRE_NOTHROW(parse(image(R"({"__metadata__": {"a": "x"}, )" + a + "}", 8)));  // scoped per object
  // Gaps: before the first tensor, between two, and bytes after the last.
  REQUIRE_INPUT_ERROR(parse(image(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})", 12)),
                      "4 bytes of the data section before tensor 'a' belong to no tensor");
  REQUIRE_INPUT_ERROR(
      parse(image("{" + a + R"(, "b": {"dtype": "F16", "shape": [4], "data_offsets": [10, 18]}})", 18)),
      "2 bytes of the data section before tensor 'b' (after 'a') belong to no tensor");
  REQUIRE_INPUT_ERROR(parse(image("{" + a + ", " + b + "}", 20)),
                      "4 bytes after the last tensor 'b' belong to no tensor (the data section is 20 bytes)");
  REQUIRE_INPUT_ERROR(parse(image("{}", 3)), "3 bytes after the last tensor belong to no tensor");
  // An empty tensor off the boundaries, inside another's bytes.
  REQUIRE_INPUT_ERROR(
      parse(image("{" + a + R"(, "e": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]}})", 8)),
      "tensors 'a' and 'e' overlap");
  REQUIRE_INPUT_ERROR(parse(image("{" + a + ", " + b + "}", 20)), "mem.safetensors");  // names the file
}

TEST_CASE("parse_safetensors rejects broken files with a specific message", "[loader]") {
  const std::string ok = R"({"x": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}})";
  auto entry = [](const std::string& body) { return R"({"x": {)" + body + "}}"; };
  REQUIRE(parse(image(ok, 16)).size() == 1);
  REQUIRE_INPUT_ERROR(parse({}), "empty file");
  REQUIRE_INPUT_ERROR(parse({1, 2, 3, 4, 5}), "file too small");
  REQUIRE_INPUT_ERROR(parse(image(ok, 16, 4096)), "exceeds the file size");
  REQUIRE_INPUT_ERROR(parse(image(ok, 16, uint64_t(1) << 40)), "100 MB limit");
  REQUIRE_INPUT_ERROR(parse(image("{\"x\": ", 0)), "not valid JSON");
  REQUIRE_INPUT_ERROR(parse(image("[1, 2]", 0)), "not a JSON object");
  REQUIRE_INPUT_ERROR(parse(image(std::string(100000, '['), 0)), "nested too deeply");
  REQUIRE_INPUT_ERROR(parse(image(entry(R"("dtype": "F64", "shape": [2], "data_offsets": [0, 16])"), 16)),
                      "unsupported dtype 'F64' for tensor 'x'");
  REQUIRE_INPUT_ERROR(parse(image(entry(R"("dtype": "F32", "shape": [-2, 2], "data_offsets": [0, 16])"), 16)),
                      "negative dimension -2");
  REQUIRE_INPUT_ERROR(
      parse(image(entry(R"("dtype": "F32", "shape": [2.0, 2], "data_offsets": [0, 16])"), 16)),
      "non-negative integers");
  REQUIRE_INPUT_ERROR(parse(image(entry(R"("dtype": "F32", "shape": [2, 3], "data_offsets": [0, 16])"), 16)),
                      "do not match shape [2, 3]");
  REQUIRE_INPUT_ERROR(parse(image(entry(R"("dtype": "F32", "shape": [2, 2], "data_offsets": [16, 0])"), 16)),
                      "do not match shape");
  REQUIRE_INPUT_ERROR(parse(image(entry(R"("dtype": "F32", "shape": [2, 2], "data_offsets": [8, 24])"), 16)),
                      "outside the data section");
  REQUIRE_INPUT_ERROR(
      parse(
          image(entry(R"("dtype": "F32", "shape": [4294967296, 4294967296, 8], "data_offsets": [0, 0])"), 0)),
      "shape too large");
  REQUIRE_INPUT_ERROR(parse(image(entry(R"("dtype": "F32", "shape": [2, 2])"), 16)),
                      "missing 'data_offsets' for tensor 'x'");
  REQUIRE_INPUT_ERROR(
      parse(image(entry(R"("dtype": "F32", "shape": [4], "data_offsets": [0, 16], "z": 1)"), 16)),
      "unexpected key 'z'");
  REQUIRE_INPUT_ERROR(parse(image(entry(R"("dtype": "F32", "shape": [4], "data_offsets": [0])"), 16)),
                      "data_offsets must be two");
  REQUIRE_INPUT_ERROR(parse(image(R"({"x": [1]})", 0)), "not a JSON object for tensor 'x'");
  REQUIRE_INPUT_ERROR(parse(image(R"({"__metadata__": {"a": 1}})", 0)), "__metadata__");
  REQUIRE_INPUT_ERROR(parse(image(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                                      "b": {"dtype": "F16", "shape": [2], "data_offsets": [12, 16]}})",
                                  16)),
                      "tensors 'a' and 'b' overlap");
}

TEST_CASE("parse_safetensors throws only InputError on mutated headers", "[loader]") {
  const std::vector<uint8_t> good = image(R"({"__metadata__": {"k": "v"},
      "a": {"dtype": "F16", "shape": [2, 3], "data_offsets": [0, 12]},
      "b": {"dtype": "BF16", "shape": [2], "data_offsets": [12, 16]}})",
                                          16);
  std::mt19937 rng(7);
  const char alphabet[] = "{}[]\",:0123456789-.eE \\uabF";
  int rejected = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<uint8_t> f = good;
    for (int k = 0, n = 1 + int(rng() % 4); k < n; ++k) {
      const size_t at = 8 + rng() % (f.size() - 8);
      f[at] = (rng() % 2) ? uint8_t(rng()) : uint8_t(alphabet[rng() % (sizeof alphabet - 1)]);
    }
    if (rng() % 8 == 0) f.resize(rng() % f.size());
    try {
      parse(f);
    } catch (const InputError&) {
      ++rejected;
    }  // anything else escapes and fails the test
  }
  CHECK(rejected > 100);
}

TEST_CASE("SafeTensors rejects missing, empty and truncated files", "[loader]") {
  test::TempDir dir;
  REQUIRE_INPUT_ERROR(SafeTensors(dir / "nope.safetensors"), "cannot open");
  REQUIRE_INPUT_ERROR(SafeTensors(dir.path()), "not a regular file");
  test::write_file(dir / "empty.safetensors", "");
  REQUIRE_INPUT_ERROR(SafeTensors(dir / "empty.safetensors"), "empty file");

  const std::string path = dir / "t.safetensors";
  write_safetensors(path, {{"w", DType::F32, {4, 4}, encode(std::vector<float>(16, 1.5f), DType::F32)}});
  const auto full = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, full - 4);
  REQUIRE_INPUT_ERROR(SafeTensors(path), "outside the data section");
  REQUIRE_INPUT_ERROR(SafeTensors(path), path);  // the message names the file
  std::filesystem::resize_file(path, 20);
  REQUIRE_INPUT_ERROR(SafeTensors(path), "exceeds the file size");
  std::filesystem::resize_file(path, 5);
  REQUIRE_INPUT_ERROR(SafeTensors(path), "file too small");
}
