#include <csignal>

#include "cli/commands.h"

namespace gen {

volatile std::sig_atomic_t g_interrupted = 0;

namespace {
// First Ctrl-C: finish the current step, keep what was generated, print the summary, exit 130.
// A second one kills at once (the default action is back).
void on_sigint(int) {
  g_interrupted = 1;
  std::signal(SIGINT, SIG_DFL);
}
}  // namespace

void install_sigint() { std::signal(SIGINT, on_sigint); }
void restore_sigint() { std::signal(SIGINT, SIG_DFL); }

}  // namespace gen
