// libFuzzer target for the GPT-2 tokenizer: encode, decode, streaming decode and the round trip.
// The real GPT-2 tokenizer is loaded once from $GEN_TOKENIZER_DIR (default
// <source>/../shared/gpt2-tokenizer); without it, a byte-level stand-in (gen::byte_level_tokenizer).
// InputError is allowed where documented (invalid UTF-8, out-of-range ids); anything else, or a
// broken invariant, aborts.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "gen/error.h"
#include "model/model_maker.h"
#include "gen/tokenizer.h"

#ifndef GEN_SOURCE_DIR
#define GEN_SOURCE_DIR "."
#endif

namespace {

const gen::Tokenizer* g_tok = nullptr;

const gen::Tokenizer& tokenizer() {
  if (g_tok) return *g_tok;
  std::string dir;
  if (const char* env = std::getenv("GEN_TOKENIZER_DIR"); env && *env) {
    dir = env;
  } else {
    dir = std::string(GEN_SOURCE_DIR) + "/../shared/gpt2-tokenizer";
  }
  const std::string vocab = dir + "/vocab.json", merges = dir + "/merges.txt";
  std::error_code ec;
  if (std::filesystem::exists(vocab, ec) && std::filesystem::exists(merges, ec)) {
    g_tok = new gen::Tokenizer(gen::Tokenizer::load(vocab, merges));
    std::fprintf(stderr, "fuzz_tokenizer: GPT-2 tokenizer from %s (%d tokens)\n", dir.c_str(),
                 g_tok->vocab_size());
  } else {
    auto [v, m] = gen::byte_level_tokenizer(1000);
    g_tok = new gen::Tokenizer(gen::Tokenizer::from_strings(v, m, "byte_level_tokenizer"));
    std::fprintf(stderr, "fuzz_tokenizer: no tokenizer at %s, using byte_level_tokenizer(1000)\n",
                 dir.c_str());
  }
  return *g_tok;
}

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_tokenizer: invariant broken: %s\n", what);
  std::abort();
}

// decode() and a Utf8Stream fed token by token must agree, and both must be valid UTF-8.
void check_decode(const gen::Tokenizer& tok, const std::vector<int>& ids) {
  std::string whole = tok.decode(ids);
  if (gen::utf8_error_offset(whole) != -1) fail("decode() returned invalid UTF-8");
  gen::Utf8Stream stream;
  std::string streamed;
  for (int id : ids) {
    std::string part = stream.push(tok.token_bytes(id));
    if (gen::utf8_error_offset(part) != -1) fail("Utf8Stream::push returned invalid UTF-8");
    streamed += part;
  }
  streamed += stream.flush();
  if (streamed != whole) fail("Utf8Stream output differs from decode()");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tokenizer();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const gen::Tokenizer& tok = tokenizer();
  const int V = tok.vocab_size();

  // 1. The bytes as text: encode; for valid UTF-8 the round trip must be exact.
  const std::string text(reinterpret_cast<const char*>(data), size);
  const bool valid = gen::utf8_error_offset(text) == -1;
  try {
    std::vector<int> ids = tok.encode(text);
    if (!valid) fail("encode() accepted invalid UTF-8");
    for (int id : ids)
      if (id < 0 || id >= V) fail("encode() produced an out-of-range id");
    if (tok.decode(ids) != text) fail("decode(encode(s)) != s");
    if (tok.decode_bytes(ids) != text) fail("decode_bytes(encode(s)) != s");
  } catch (const gen::InputError&) {
    if (valid) fail("encode() threw InputError on valid UTF-8");
  }

  // 2. The bytes as little-endian int32 ids, as they are: out-of-range ids throw InputError.
  std::vector<int> raw(size / 4);
  for (size_t i = 0; i < raw.size(); ++i) {
    uint32_t u = uint32_t(data[4 * i]) | uint32_t(data[4 * i + 1]) << 8 |
                 uint32_t(data[4 * i + 2]) << 16 | uint32_t(data[4 * i + 3]) << 24;
    int32_t v;
    std::memcpy(&v, &u, sizeof v);
    raw[i] = v;
  }
  bool any_bad = false;
  for (int id : raw) any_bad |= id < 0 || id >= V;
  try {
    check_decode(tok, raw);
    if (any_bad) fail("decode() accepted an out-of-range id");
  } catch (const gen::InputError&) {
    if (!any_bad) fail("decode() threw InputError on in-range ids");
  }

  // 3. The same ids folded into the vocabulary, so that decoding itself gets exercised.
  if (V > 0) {
    std::vector<int> folded(raw.size());
    for (size_t i = 0; i < raw.size(); ++i) folded[i] = int(uint32_t(raw[i]) % uint32_t(V));
    check_decode(tok, folded);  // no exception allowed: every id is in range
  }
  return 0;
}
