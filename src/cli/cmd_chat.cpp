// gen chat --model DIR|NAME [-n N] [--temperature T] [--top-k K] [--top-p P] [--seed S] [--ctx N]
//          [--no-cache] [--system TEXT] [--user-prefix TEXT] [--bot-prefix TEXT] [--device D] [--dtype T]
//          [--threads N]
// One user line from stdin per turn; the reply streams to stdout, a summary of the turn goes to stderr.
// The KV cache lives across turns (gen::Chat), so a turn prefills only its new tokens.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>

#include "gen/chat.h"
#include "gen/chat_session.h"
#include "gen/kv_file.h"
#include "cli/cli_common.h"
#include "gen/prompts.h"
#include "cli/commands.h"
#include "cli/stdout_writer.h"
#include "gen/error.h"
#include "gen/device.h"
#include "gen/model.h"

namespace gen {

namespace {

struct ChatCli {
  std::string model = "models/gpt2";
  ChatOptions chat;
  std::string session;  // --session FILE: the conversation saved after every turn, resumed when it exists
  // Given on the command line (not defaults): with --session they must agree with the file's settings.
  bool system_given = false, user_prefix_given = false, bot_prefix_given = false, seed_given = false;
  std::string device = "auto";
  std::string dtype;  // empty: the backend's default
  int threads = 0;
  bool help = false;
  std::string help_text;
};

void validate(const ChatCli& o) {
  const std::pair<const char*, const std::string*> texts[] = {{"--system", &o.chat.system},
                                                              {"--user-prefix", &o.chat.user_prefix},
                                                              {"--bot-prefix", &o.chat.bot_prefix}};
  for (const auto& [flag, text] : texts) require_utf8(*text, flag);
}

ChatCli parse(int argc, char** argv) {
  ChatCli o;
  GenOptions& g = o.chat.gen;
  CLI::App app{"gen chat: a conversation on stdin, one line per turn; the KV cache is kept across turns",
               "gen chat"};
  app.option_defaults()->always_capture_default();
  app.add_option("--model", o.model,
                 "model directory, or gpt2 | gpt2-medium | gpt2-large | gpt2-xl (models/NAME)");
  add_sampling_flags(app, &g, 1);
  std::optional<uint64_t> seed;
  app.add_option("--seed", seed, "sampling seed, every reply draws with it (default: a random one, reported)")
      ->transform(decimal_u64("--seed"));
  auto* uc = app.add_flag("--use-cache", g.use_cache, "keep the KV cache across turns (default)");
  auto* nc = app.add_flag("!--no-cache", g.use_cache, "recompute the whole conversation every step");
  uc->excludes(nc);
  app.add_option("--ctx", g.max_ctx, "context length (0: n_positions); the oldest turns are dropped to fit")
      ->transform(decimal("--ctx", 0, limits::max_ctx));
  auto* sys = app.add_option("--system", o.chat.system, "text that starts the conversation");
  auto* up = app.add_option("--user-prefix", o.chat.user_prefix, "put before each user line");
  auto* bp = app.add_option("--bot-prefix", o.chat.bot_prefix, "put after each user line; the reply follows it");
  app.add_option("--session", o.session,
                 "save the conversation and its K/V to FILE after every turn; resume it when FILE exists");
  add_device_flags(app, &o.device, &o.dtype, &o.threads);
  if (parse_cli(app, argc, argv, "gen chat", &o.help_text) == Parsed::help) {
    o.help = true;
    return o;
  }
  o.system_given = sys->count() > 0;
  o.user_prefix_given = up->count() > 0;
  o.bot_prefix_given = bp->count() > 0;
  o.seed_given = seed.has_value();
  if (!o.session.empty() && !g.use_cache) {
    throw InputError("--session keeps the conversation's K/V: it needs the KV cache, not --no-cache", "--session");
  }
  g.seed = seed ? *seed : random_seed();
  validate(o);
  return o;
}

// --session FILE: the conversation it holds (when it exists) and the model's fingerprint for the saves.
struct SessionFile {
  std::string path;
  ModelFingerprint model;
  bool resumed = false;
  ChatState state;
  Session session;
  double ms = 0;  // fingerprint, read, checks and the K/V into the cache
};

// A setting the file holds wins over the default; one given on the command line must agree with it.
void adopt(std::string* value, const std::string& saved, bool given, const char* flag) {
  if (given && *value != saved) {
    throw InputError(std::string(flag) + " differs from the chat session's (\"" + saved +
                         "\"): a session keeps the settings it began with",
                     flag);
  }
  *value = saved;
}

void open_session(ChatCli& opt, SessionFile& sf, Backend& backend, const Model& model, int ctx) {
  const auto t0 = std::chrono::steady_clock::now();
  sf.model = model_fingerprint(model.dir, model.cfg);
  if (!path_exists(sf.path)) return;
  sf.state = load_chat_session(sf.path, backend, sf.model, model.cfg.vocab_size, ctx, &sf.session);
  adopt(&opt.chat.system, sf.state.system, opt.system_given, "--system");
  adopt(&opt.chat.user_prefix, sf.state.user_prefix, opt.user_prefix_given, "--user-prefix");
  adopt(&opt.chat.bot_prefix, sf.state.bot_prefix, opt.bot_prefix_given, "--bot-prefix");
  if (opt.seed_given) {
    sf.state.seed = opt.chat.gen.seed;  // the user's choice: later replies draw with it
  } else {
    opt.chat.gen.seed = sf.state.seed;  // as one process running every turn would
  }
  sf.resumed = true;
  sf.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

std::string turn_summary(const ChatTurn& t, int ctx) {
  const Timing& tm = t.result.timing;
  // One token drawn: its step was the prefill, so that is its time.
  const double ms_per_token = tm.decode_steps > 0 ? tm.decode_ms / tm.decode_steps : tm.prefill_ms;
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "[chat] turn %d: %d tokens reused from the cache, %d computed, first token %.1f ms, %zu generated, "
                "%.2f ms/token, context %d/%d, finish %s\n",
                t.number, tm.cached_tokens, tm.prefill_tokens, tm.ttft_ms, t.result.tokens.size(), ms_per_token,
                t.context_used(), ctx, t.result.finish_reason.c_str());
  return buf;
}

// One line -> one turn. A Ctrl-C stops the reply after the current step (its summary says "finish
// interrupted"); the partial reply stays in the conversation, as one ended by -n does.
void chat_turn(Chat& chat, const std::string& line) {
  Chat::Callbacks cb;
  cb.on_text = [](const std::string& s) { write_stdout(s); };
  cb.on_trim = [](int dropped, int to_prefill) {
    std::cerr << "[chat] context full: dropped the "
              << (dropped == 1 ? "oldest turn" : std::to_string(dropped) + " oldest turns") << "; prefilling "
              << to_prefill << " tokens again\n";
  };
  const ChatTurn t = chat.turn(line, cb);
  g_chat_waiting = 1;  // the reply is over: from here a Ctrl-C ends the chat
  write_stdout("\n");
  std::cerr << turn_summary(t, chat.context());
}

}  // namespace

int run_chat(int argc, char** argv) {
  ChatCli opt = parse(argc, argv);
  if (opt.help) {
    write_stdout(opt.help_text);
    return 0;
  }
  std::string note;
  const Device device = choose_device(opt.device, &note, opt.dtype);  // before the slow load
  SessionFile sf;
  sf.path = opt.session;
  if (!sf.path.empty()) check_kv_file_writable(sf.path, "chat session");
  Model model = load_model(resolve_model_dir(opt.model));
  const int ctx = effective_context(model.cfg, opt.chat.gen.max_ctx);
  auto backend = make_backend(device, model.weights, opt.threads, opt.dtype);
  Generator generator(*backend, *model.tokenizer);
  opt.chat.gen.stop = &g_interrupted;
  if (!sf.path.empty()) open_session(opt, sf, *backend, model, ctx);
  Chat chat(generator, *model.tokenizer, opt.chat, ctx);
  if (sf.resumed) chat.restore(sf.state, std::move(sf.session));
  if (!note.empty()) note += "\n";
  note += threads_note(opt.threads);
  if (!note.empty() && note.back() != '\n') note += "\n";
  if (sf.resumed) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "[chat] resumed %d turns (%d tokens with their K/V) in %.1f ms from ",
                  sf.state.turns_done, int(chat.session().tokens.size()), sf.ms);
    note += buf + sf.path + "\n";
  }
  if (opt.chat.gen.sampling.temperature > 0) {  // the seed the replies draw with: --seed repeats them
    note += "[chat] seed " + std::to_string(opt.chat.gen.seed) + "\n";
  }
  std::cerr << note;  // after every input check: an error stays one line

  const bool tty = isatty(STDIN_FILENO) == 1;
  install_chat_sigint(tty);
  std::string line;
  int failed = 0;
  for (long line_no = 1;; ++line_no) {
    g_chat_waiting = 1;  // Ctrl-C while waiting for a line ends the chat (exit 130)
    g_interrupted = 0;
    if (tty) write_stdout("> ");
    if (!std::getline(std::cin, line)) break;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;  // a bare Enter is not a turn
    g_chat_waiting = 0;  // Ctrl-C now stops the reply
    try {
      chat_turn(chat, line);
    } catch (const InputError& e) {  // this turn only: the conversation is unchanged
      ++failed;
      std::cerr << "error: " << e.what() << " (stdin line " << line_no << ")\n";
      continue;
    }
    // A failed save is exit 1: the file still holds the conversation up to the turn before.
    if (!sf.path.empty()) save_chat_session(sf.path, chat, *model.tokenizer, *backend, sf.model);
  }
  if (tty) write_stdout("\n");
  return failed > 0 ? int(ExitCode::some_failed) : 0;  // as a batch with error lines
}

}  // namespace gen
