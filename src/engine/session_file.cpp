#include "gen/session_file.h"

#include "gen/error.h"

namespace gen {

KvFile kv_file_for(const Backend& backend, const std::string& kind, const ModelFingerprint& model) {
  KvFile f;
  f.kind = kind;
  f.model = model;
  f.dtype = backend.dtype();
  f.kv_dtype = backend.kv_dtype();
  f.device = backend.name();
  return f;
}

void save_session_kv(Backend& backend, const Session& session, int n, KvFile* f) {
  if (!session.cache || n < 1 || n > int(session.tokens.size())) throw Error("save_session_kv: nothing to save");
  f->tokens.assign(session.tokens.begin(), session.tokens.begin() + n);
  f->kv.resize(session.cache->bytes_for_positions(size_t(n)));
  backend.read_kv(*session.cache, 0, n, f->kv.data(), n);
}

void load_session_kv(Backend& backend, const KvFile& f, int n, int max_ctx, Session* session) {
  const int have = int(f.tokens.size());
  if (n < 0 || n > have || n > max_ctx) throw Error("load_session_kv: more positions than the file or context holds");
  const ModelConfig& c = backend.config();
  if (f.kv.size() != KVCache::bytes_for(c.n_layer, c.n_embd, 1, have, kv_dtype_bytes(backend.kv_dtype()))) {
    throw Error("load_session_kv: the file's K/V do not have this backend's size");  // before allocating
  }
  session->cache = backend.make_cache(1, max_ctx);
  backend.write_kv(*session->cache, 0, f.kv.data(), have, n);
  session->tokens.assign(f.tokens.begin(), f.tokens.begin() + n);
}

}  // namespace gen
