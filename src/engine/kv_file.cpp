// gen's K/V files, the format: the fixed header, the meta JSON, the checks of a file image in the
// order the documentation gives (docs/kv_file.md), and whether a file fits a run. Reading and writing
// files is in kv_file_io.cpp.
#include "gen/kv_file.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "engine/kv_file_format.h"
#include "gen/error.h"
#include "model/hash.h"
#include "text/text_util.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "gen's K/V files are little-endian, as the host");

namespace gen {

size_t kv_dtype_bytes(const std::string& kv_dtype) {
  if (kv_dtype == "f32") return 4;
  if (kv_dtype == "f16" || kv_dtype == "bf16") return 2;
  throw InputError("unknown K/V element type '" + detail::printable(kv_dtype, true, 32) +
                       "' (gen knows f32, f16 and bf16)",
                   "");
}

namespace kvfmt {
namespace {

using json = nlohmann::json;

// The meta is a flat object with one nested object (model) and the front end's extra; 64 levels
// leave extra room while refusing a DOM that costs far more memory than its bytes.
constexpr int kMaxMetaDepth = 64;

uint32_t rd32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

[[noreturn]] void bad_header(const std::string& detail, const std::string& where) {
  throw InputError("the K/V file's header is not valid: " + detail, where);
}

[[noreturn]] void bad_meta(const std::string& detail, const std::string& where) {
  throw InputError("the K/V file's meta section is not valid: " + detail, where);
}

[[noreturn]] void bad_size(uint64_t have, uint64_t says, const std::string& where) {
  throw InputError("the K/V file is truncated or has extra bytes: " + std::to_string(have) +
                       " bytes, its header says " + std::to_string(says),
                   where);
}

}  // namespace

bool kv_size(const Header& h, uint64_t* out) {
  uint64_t n = 2;
  for (uint64_t f : {uint64_t(h.n_layer), uint64_t(h.n_head), uint64_t(h.n_tokens), uint64_t(h.head_dim),
                     uint64_t(h.elem_bytes)}) {
    if (__builtin_mul_overflow(n, f, &n)) return false;
  }
  *out = n;
  return true;
}

namespace {

void check_header_fields(const Header& h, const std::string& where) {
  const auto n = [](uint64_t v) { return std::to_string(v); };
  if (h.reserved != 0) bad_header("the reserved field is " + n(h.reserved) + ", not 0", where);
  if (h.meta_bytes > kMaxMetaBytes) {
    bad_header("a meta section of " + n(h.meta_bytes) + " bytes (at most " + n(kMaxMetaBytes) + ")", where);
  }
  if (h.n_tokens < 1 || h.n_tokens > kMaxTokens) {
    bad_header("n_tokens " + n(h.n_tokens) + " (must be 1 to " + n(kMaxTokens) + ")", where);
  }
  if (h.n_layer == 0 || h.n_head == 0 || h.head_dim == 0) {
    bad_header("n_layer " + n(h.n_layer) + ", n_head " + n(h.n_head) + ", head_dim " + n(h.head_dim) +
                   " (each must be at least 1)",
               where);
  }
  if (h.elem_bytes != 2 && h.elem_bytes != 4) {
    bad_header("elem_bytes " + n(h.elem_bytes) + " (must be 2 or 4)", where);
  }
  uint64_t kv = 0;
  if (!kv_size(h, &kv)) bad_header("its K/V size overflows 64 bits", where);
  if (kv != h.kv_bytes) {
    bad_header("kv_bytes " + n(h.kv_bytes) +
                   ", but 2 x n_layer x n_head x n_tokens x head_dim x elem_bytes is " + n(kv),
               where);
  }
}

}  // namespace

void encode_header(const Header& h, uint8_t out[kHeaderBytes]) {
  const uint32_t fields[8] = {h.version, h.meta_bytes, h.n_tokens,   h.n_layer,
                              h.n_head,  h.head_dim,   h.elem_bytes, h.reserved};
  std::memcpy(out, kMagic, 8);
  std::memcpy(out + 8, fields, sizeof fields);
  std::memcpy(out + 40, &h.kv_bytes, 8);
}

Header parse_header(const uint8_t* p, uint64_t file_size, const std::string& where) {
  // A short file that starts like the magic is a truncated K/V file; anything else is not one at all.
  if (std::memcmp(p, kMagic, size_t(std::min<uint64_t>(file_size, 8))) != 0) {
    throw InputError("not a gen K/V file (bad magic)", where);
  }
  Header h;
  if (file_size >= 12) h.version = rd32(p + 8);
  if (h.version != kVersion) {
    throw InputError("K/V file version " + std::to_string(h.version) +
                         " is not supported (this gen reads version " + std::to_string(kVersion) + ")",
                     where);
  }
  if (file_size < kHeaderBytes) {
    throw InputError("the K/V file is truncated: " + std::to_string(file_size) + " bytes, shorter than its " +
                         std::to_string(kHeaderBytes) + "-byte header",
                     where);
  }
  uint32_t* fields[7] = {&h.meta_bytes, &h.n_tokens,   &h.n_layer, &h.n_head,
                         &h.head_dim,   &h.elem_bytes, &h.reserved};
  for (int i = 0; i < 7; ++i) *fields[i] = rd32(p + 12 + 4 * i);
  std::memcpy(&h.kv_bytes, p + 40, 8);
  check_header_fields(h, where);
  // kv_offset() is at most 48 + 16 MiB + 4 MiB, so only adding kv_bytes can overflow.
  uint64_t total = 0;
  if (__builtin_add_overflow(h.kv_offset() + kChecksumBytes, h.kv_bytes, &total)) {
    bad_header("its sizes add up to more than 2^64 bytes", where);
  }
  if (total != file_size) bad_size(file_size, total, where);
  return h;
}

namespace {

json parse_meta_json(const uint8_t* meta, size_t n, const std::string& where) {
  const char* text = reinterpret_cast<const char*>(meta);
  if (!detail::json_depth_within(text, n, kMaxMetaDepth)) bad_meta("it nests too deeply", where);
  try {
    json j = json::parse(text, text + n);
    if (!j.is_object()) bad_meta("not a JSON object", where);
    return j;
  } catch (const json::exception& e) {
    // Drop nlohmann's "[json.exception.parse_error.101] " prefix; keep the position and reason.
    std::string msg = e.what();
    const size_t cut = msg.find("] ");
    if (msg.rfind("[json.exception.", 0) == 0 && cut != std::string::npos) msg.erase(0, cut + 2);
    bad_meta("not JSON: " + detail::printable(msg, true, 200), where);
  }
}

const json& field(const json& obj, const std::string& key, const std::string& name,
                  const std::string& where) {
  const auto it = obj.find(key);
  if (it == obj.end()) bad_meta("no " + name, where);
  return *it;
}

std::string shown(const json& v) {
  return detail::printable(v.dump(-1, ' ', false, json::error_handler_t::replace), true, 40);
}

std::string get_string(const json& obj, const std::string& key, const std::string& where) {
  const json& v = field(obj, key, key, where);
  if (!v.is_string()) bad_meta(key + " is " + shown(v) + ", not a string", where);
  return v.get<std::string>();
}

std::string get_choice(const json& obj, const std::string& key, const std::vector<std::string>& allowed,
                       const std::string& where) {
  const std::string s = get_string(obj, key, where);
  for (const std::string& a : allowed) {
    if (s == a) return s;
  }
  std::string list;
  for (size_t i = 0; i < allowed.size(); ++i) list += (i ? ", " : "") + allowed[i];
  bad_meta(key + " '" + detail::printable(s, true, 40) + "' is not one of " + list, where);
}

int get_positive_int(const json& model, const std::string& key, const std::string& where) {
  const json& v = field(model, key, "model." + key, where);
  int64_t x = 0;
  if (v.is_number_unsigned()) {
    x = v.get<uint64_t>() > uint64_t(std::numeric_limits<int>::max()) ? -1 : int64_t(v.get<uint64_t>());
  } else if (v.is_number_integer()) {
    x = v.get<int64_t>();
  }
  if (x < 1 || x > std::numeric_limits<int>::max()) {
    bad_meta("model." + key + " is " + shown(v) + ", not a positive integer", where);
  }
  return int(x);
}

std::string get_hex16(const json& model, const std::string& key, const std::string& where) {
  const json& v = field(model, key, "model." + key, where);
  const std::string* s = v.is_string() ? &v.get_ref<const std::string&>() : nullptr;
  if (!s || s->size() != 16 || s->find_first_not_of("0123456789abcdef") != std::string::npos) {
    bad_meta("model." + key + " is " + shown(v) + ", not 16 lowercase hex digits", where);
  }
  return *s;
}

void agree(const char* name, uint64_t meta, const std::string& header, uint64_t want,
           const std::string& where) {
  if (meta != want) {
    bad_meta(std::string("model.") + name + " " + std::to_string(meta) + " disagrees with the header's " +
                 header + " " + std::to_string(want),
             where);
  }
}

ModelFingerprint parse_model(const json& m, const Header& h, const std::string& where) {
  if (!m.is_object()) bad_meta("model is " + shown(m) + ", not an object", where);
  ModelFingerprint fp;
  fp.n_layer = get_positive_int(m, "n_layer", where);
  fp.n_head = get_positive_int(m, "n_head", where);
  fp.n_embd = get_positive_int(m, "n_embd", where);
  fp.n_positions = get_positive_int(m, "n_positions", where);
  fp.vocab_size = get_positive_int(m, "vocab_size", where);
  const json& eps = field(m, "layer_norm_epsilon", "model.layer_norm_epsilon", where);
  const double e = eps.is_number() ? eps.get<double>() : 0.0;
  // Range first: converting a double beyond float's range is undefined behaviour.
  fp.layer_norm_epsilon = e > 0 && e <= std::numeric_limits<float>::max() ? float(e) : 0.0f;
  if (!(fp.layer_norm_epsilon > 0)) {
    bad_meta("model.layer_norm_epsilon is " + shown(eps) + ", not a positive number", where);
  }
  fp.tensors = get_hex16(m, "tensors", where);
  fp.weights = get_hex16(m, "weights", where);
  agree("n_layer", uint64_t(fp.n_layer), "n_layer", h.n_layer, where);
  agree("n_head", uint64_t(fp.n_head), "n_head", h.n_head, where);
  agree("n_embd", uint64_t(fp.n_embd), "n_head x head_dim", uint64_t(h.n_head) * h.head_dim, where);
  return fp;
}

}  // namespace

void parse_meta_and_tokens(const Header& h, const uint8_t* meta, const uint8_t* tokens, KvFile* f,
                           const std::string& where) {
  json j = parse_meta_json(meta, h.meta_bytes, where);
  f->kind = get_string(j, "kind", where);
  f->dtype = get_choice(j, "dtype", {"fp32", "fp16", "bf16", "int8"}, where);
  f->kv_dtype = get_choice(j, "kv_dtype", {"f32", "f16", "bf16"}, where);
  if (kv_dtype_bytes(f->kv_dtype) != h.elem_bytes) {
    bad_meta("kv_dtype " + f->kv_dtype + " has " + std::to_string(kv_dtype_bytes(f->kv_dtype)) +
                 "-byte elements; the header's elem_bytes is " + std::to_string(h.elem_bytes),
             where);
  }
  f->device = get_string(j, "device", where);
  f->model = parse_model(field(j, "model", "model", where), h, where);
  const auto extra = j.find("extra");
  if (extra != j.end() && !extra->is_object()) {
    bad_meta("extra is " + shown(*extra) + ", not an object", where);
  }
  f->extra = extra == j.end() ? json::object() : std::move(*extra);
  f->tokens.resize(h.n_tokens);
  for (uint32_t i = 0; i < h.n_tokens; ++i) {
    const int32_t id = int32_t(rd32(tokens + 4 * size_t(i)));
    if (id < 0 || id >= f->model.vocab_size) {
      throw InputError("the K/V file's token ids are not valid: id " + std::to_string(id) + " at position " +
                           std::to_string(i) + " is outside the model's vocabulary (vocab_size " +
                           std::to_string(f->model.vocab_size) + ")",
                       where);
    }
    f->tokens[i] = id;
  }
}

}  // namespace kvfmt

KvFile parse_kv_file(const uint8_t* data, size_t size, const std::string& where) {
  using namespace kvfmt;
  static const uint8_t empty[1] = {0};
  const Header h = parse_header(size ? data : empty, size, where);
  const size_t body = size - kChecksumBytes;
  uint64_t want = 0;
  std::memcpy(&want, data + body, kChecksumBytes);
  if (xxh3_64(data, body) != want) throw InputError("the K/V file is corrupted (checksum mismatch)", where);
  KvFile f;
  parse_meta_and_tokens(h, data + kHeaderBytes, data + h.tokens_offset(), &f, where);
  f.kv.assign(data + h.kv_offset(), data + h.kv_offset() + h.kv_bytes);
  return f;
}

namespace {

std::string kind_words(const std::string& kind) {
  if (kind == "prompt") return "a prompt cache";
  if (kind == "chat") return "a chat session";
  return "of kind '" + detail::printable(kind, true, 40) + "'";
}

// The shortest text that reads back as the same float.
std::string float_str(float v) {
  char buf[32];
  for (int prec = 6; prec <= 9; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, double(v));
    if (std::strtof(buf, nullptr) == v) break;
  }
  return buf;
}

// "n_layer 12, n_head 12 there; n_layer 4, n_head 4 here": the shape fields that differ.
std::string shape_difference(const ModelFingerprint& there, const ModelFingerprint& here) {
  std::string a, b;
  const auto add = [&](const char* name, const std::string& x, const std::string& y) {
    if (x == y) return;
    a += (a.empty() ? "" : ", ") + std::string(name) + " " + x;
    b += (b.empty() ? "" : ", ") + std::string(name) + " " + y;
  };
  add("n_layer", std::to_string(there.n_layer), std::to_string(here.n_layer));
  add("n_head", std::to_string(there.n_head), std::to_string(here.n_head));
  add("n_embd", std::to_string(there.n_embd), std::to_string(here.n_embd));
  add("n_positions", std::to_string(there.n_positions), std::to_string(here.n_positions));
  add("vocab_size", std::to_string(there.vocab_size), std::to_string(here.vocab_size));
  if (there.layer_norm_epsilon != here.layer_norm_epsilon) {
    add("layer_norm_epsilon", float_str(there.layer_norm_epsilon), float_str(here.layer_norm_epsilon));
  }
  return a.empty() ? "" : a + " there; " + b + " here";
}

}  // namespace

void check_kv_file_matches(const KvFile& f, const std::string& kind, const ModelFingerprint& model,
                           const std::string& dtype, const std::string& kv_dtype, const std::string& where) {
  if (f.kind != kind) {
    throw InputError("the K/V file is " + kind_words(f.kind) + ", not " + kind_words(kind), where);
  }
  const std::string shape = shape_difference(f.model, model);
  if (!shape.empty()) throw InputError("the K/V file is for another model: " + shape, where);
  if (f.model.tensors != model.tensors) {
    throw InputError("the K/V file is for another model (its tensors differ)", where);
  }
  if (f.model.weights != model.weights) {
    throw InputError("the K/V file is for other weights (the same tensors, other values)", where);
  }
  if (f.dtype != dtype) {
    throw InputError("the K/V file was computed with --dtype " + detail::printable(f.dtype, true, 40) +
                         "; this run uses " + dtype,
                     where);
  }
  if (f.kv_dtype != kv_dtype) {
    throw InputError("the K/V file holds " + detail::printable(f.kv_dtype, true, 40) +
                         " K/V; this run's cache holds " + kv_dtype,
                     where);
  }
}

}  // namespace gen
