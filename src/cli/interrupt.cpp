#include <unistd.h>

#include <csignal>

#include "cli/commands.h"
#include "gen/error.h"

namespace gen {

volatile std::sig_atomic_t g_interrupted = 0;
volatile std::sig_atomic_t g_chat_waiting = 0;

namespace {
// First Ctrl-C (or SIGTERM: scancel, a Slurm requeue, kill): finish the current step, keep what was
// generated, print the summary, exit 130. A second one kills at once (the default actions are back).
void on_sigint(int) {
  g_interrupted = 1;
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
}

volatile std::sig_atomic_t g_chat_newline = 0;

// Ending the chat from the handler needs no wake-up of a blocked read and has no race with one;
// write() and _exit() are async-signal-safe, and stdout is unbuffered (cli/stdout_writer.h).
void on_chat_sigint(int) {
  if (g_chat_waiting || g_interrupted) {
    if (g_chat_newline) {
      const ssize_t n = ::write(STDOUT_FILENO, "\n", 1);
      (void)n;
    }
    ::_exit(int(ExitCode::interrupted));
  }
  g_interrupted = 1;
}
}  // namespace

void install_chat_sigint(bool newline) {
  g_chat_newline = newline ? 1 : 0;
  struct sigaction sa {};
  sa.sa_handler = on_chat_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // getline's read goes on after a Ctrl-C during a reply
  sigaction(SIGINT, &sa, nullptr);
}

void install_sigint() {
  std::signal(SIGINT, on_sigint);
  std::signal(SIGTERM, on_sigint);
}
void restore_sigint() {
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
}

}  // namespace gen
