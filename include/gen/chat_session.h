// gen chat --session FILE: after every turn the conversation is saved to a K/V file of kind "chat"
// (gen/kv_file.h): its settings, its ids turn by turn and its text in the file's "extra" object, and
// the ids the session's cache holds with their K/V. A later process resumes it: the history is reused,
// not recomputed, and its replies are the ones one process running every turn gives.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "gen/backend.h"
#include "gen/chat.h"
#include "gen/fingerprint.h"
#include "gen/tokenizer.h"

namespace gen {

// The conversation as the file's "extra" object. "text" (the decoded conversation) is for people and
// scripts; it is not read back.
nlohmann::json chat_state_json(const ChatState& st, const std::string& text);
// Back, checked: InputError "the chat session's <field> ..." naming `where` for a missing or mistyped
// field or an id outside 0..vocab_size-1.
ChatState chat_state_from_json(const nlohmann::json& extra, int vocab_size, const std::string& where);

// Reads `path` (a "chat" file of this model and backend's dtype, else InputError); fills `session`
// with its ids and K/V, at most max_ctx of them (the run's context may be shorter than the file's).
ChatState load_chat_session(const std::string& path, Backend& backend, const ModelFingerprint& model,
                            int vocab_size, int max_ctx, Session* session);

// Writes the chat to `path` atomically. Returns false (nothing written) when its session holds no
// K/V yet (a first turn stopped before its prefill).
bool save_chat_session(const std::string& path, const Chat& chat, const Tokenizer& tok, Backend& backend,
                       const ModelFingerprint& model);

}  // namespace gen
