// A Session's K/V in a K/V file (gen/kv_file.h): what `gen --prompt-cache` and `gen chat --session`
// save after a run or a turn and load before the next.
#pragma once
#include <string>

#include "gen/backend.h"
#include "gen/generator.h"
#include "gen/kv_file.h"

namespace gen {

// A file's fields for this backend's run: kind, model, dtype, kv_dtype, device (no ids, no K/V).
KvFile kv_file_for(const Backend& backend, const std::string& kind, const ModelFingerprint& model);

// f->tokens and f->kv: the session's first n ids and their K/V (n <= the positions its cache holds).
void save_session_kv(Backend& backend, const Session& session, int n, KvFile* f);

// session: a one-slot cache of max_ctx positions (the run's context) holding the first n ids of f
// and their K/V (n <= f.tokens.size() and max_ctx). f must match the backend (check_kv_file_matches).
void load_session_kv(Backend& backend, const KvFile& f, int n, int max_ctx, Session* session);

}  // namespace gen
