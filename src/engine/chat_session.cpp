#include "gen/chat_session.h"

#include <algorithm>

#include "gen/error.h"
#include "gen/kv_file.h"
#include "gen/session_file.h"

namespace gen {

using nlohmann::json;

namespace {

[[noreturn]] void bad(const std::string& field, const std::string& what, const std::string& where) {
  throw InputError("the chat session's \"" + field + "\" " + what, where);
}

const json& field(const json& j, const std::string& name, const std::string& where) {
  if (!j.is_object() || !j.contains(name)) bad(name, "is missing", where);
  return j[name];
}

std::string text_field(const json& j, const std::string& name, const std::string& where) {
  const json& v = field(j, name, where);
  if (!v.is_string()) bad(name, "is not a string", where);
  return v.get<std::string>();
}

std::vector<int> ids_field(const json& v, const std::string& name, int vocab_size, const std::string& where) {
  if (!v.is_array()) bad(name, "is not an array of token ids", where);
  std::vector<int> ids;
  ids.reserve(v.size());
  for (const json& id : v) {
    if (!id.is_number_integer() || id.get<long long>() < 0 || id.get<long long>() >= vocab_size) {
      bad(name, "holds " + id.dump() + ", not a token id in 0.." + std::to_string(vocab_size - 1), where);
    }
    ids.push_back(id.get<int>());
  }
  return ids;
}

}  // namespace

json chat_state_json(const ChatState& st, const std::string& text) {
  return json{{"system", st.system},         {"user_prefix", st.user_prefix}, {"bot_prefix", st.bot_prefix},
              {"seed", st.seed},             {"turns_done", st.turns_done},   {"system_ids", st.system_ids},
              {"turns", st.turns},           {"text", text}};
}

ChatState chat_state_from_json(const json& extra, int vocab_size, const std::string& where) {
  ChatState st;
  st.system = text_field(extra, "system", where);
  st.user_prefix = text_field(extra, "user_prefix", where);
  st.bot_prefix = text_field(extra, "bot_prefix", where);
  const json& seed = field(extra, "seed", where);
  if (!seed.is_number_unsigned()) bad("seed", "is not a seed in 0..2^64-1", where);
  st.seed = seed.get<uint64_t>();
  const json& done = field(extra, "turns_done", where);
  if (!done.is_number_integer() || done.get<long long>() < 0 || done.get<long long>() > (1LL << 30)) {
    bad("turns_done", "is not a turn count", where);
  }
  st.turns_done = done.get<int>();
  st.system_ids = ids_field(field(extra, "system_ids", where), "system_ids", vocab_size, where);
  const json& turns = field(extra, "turns", where);
  if (!turns.is_array()) bad("turns", "is not an array of turns", where);
  for (const json& t : turns) {
    st.turns.push_back(ids_field(t, "turns", vocab_size, where));
    if (st.turns.back().empty()) bad("turns", "holds an empty turn", where);
  }
  if (int(st.turns.size()) > st.turns_done) bad("turns", "holds more turns than \"turns_done\"", where);
  return st;
}

ChatState load_chat_session(const std::string& path, Backend& backend, const ModelFingerprint& model,
                            int vocab_size, int max_ctx, Session* session) {
  const KvFile f = read_kv_file(path, "chat session");
  check_kv_file_matches(f, "chat", model, backend.dtype(), backend.kv_dtype(), path);
  ChatState st = chat_state_from_json(f.extra, vocab_size, path);
  load_session_kv(backend, f, std::min(int(f.tokens.size()), max_ctx), max_ctx, session);
  return st;
}

bool save_chat_session(const std::string& path, const Chat& chat, const Tokenizer& tok, Backend& backend,
                       const ModelFingerprint& model) {
  const Session& s = chat.session();
  if (!s.cache || s.tokens.empty()) return false;
  KvFile f = kv_file_for(backend, "chat", model);
  save_session_kv(backend, s, int(s.tokens.size()), &f);
  f.extra = chat_state_json(chat.state(), tok.decode(chat.ids()));
  write_kv_file(path, f);
  return true;
}

}  // namespace gen
