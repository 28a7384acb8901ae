// The subcommands: `gen perplexity`, `gen info`, `gen chat`. main() dispatches on argv[1]; each gets
// argv from its own name on (argv[0] is "perplexity", ...), parses its own flags with CLI11, and
// returns the exit code. Errors are thrown (gen::Error / InputError) and printed by main().
#pragma once
#include <csignal>

namespace gen {

// Set to 1 by the first Ctrl-C or SIGTERM once install_sigint() ran; a second one kills (default action).
extern volatile std::sig_atomic_t g_interrupted;
void install_sigint();
void restore_sigint();

// gen chat's Ctrl-C: during a reply the first one sets g_interrupted (the reply stops, the chat goes
// on); one while g_chat_waiting is set (gen chat waits for a line), or a second one during a reply,
// ends the chat at once with exit 130 (a newline first on stdout when `newline`, for the terminal).
extern volatile std::sig_atomic_t g_chat_waiting;
void install_chat_sigint(bool newline);

int run_perplexity(int argc, char** argv);
int run_info(int argc, char** argv);
int run_chat(int argc, char** argv);

}  // namespace gen
