// The subcommands: `gen perplexity`, `gen info`, `gen chat`. main() dispatches on argv[1]; each gets
// argv from its own name on (argv[0] is "perplexity", ...), parses its own flags with CLI11, and
// returns the exit code. Errors are thrown (gen::Error / InputError) and printed by main().
#pragma once
#include <csignal>

namespace gen {

// Set to 1 by the first Ctrl-C once install_sigint() ran; a second Ctrl-C kills (default action).
extern volatile std::sig_atomic_t g_interrupted;
void install_sigint();
void restore_sigint();

int run_perplexity(int argc, char** argv);
int run_info(int argc, char** argv);
int run_chat(int argc, char** argv);

}  // namespace gen
