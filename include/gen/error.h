// Errors travel up as exceptions; only main() prints them (one line) and picks the exit code.
#pragma once
#include <stdexcept>
#include <string>

namespace gen {

// Exit codes of the command-line contract (DESIGN.md section 3).
// some_failed: a --prompts-file run in which some prompts gave error lines and the others ran.
enum class ExitCode : int { ok = 0, failure = 1, bad_input = 2, some_failed = 3, interrupted = 130 };

// A failure that is not the user's fault (out of memory, device errors, internal checks).
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what, ExitCode code = ExitCode::failure)
      : std::runtime_error(what), code_(code) {}
  ExitCode code() const { return code_; }

 private:
  ExitCode code_;
};

// Bad usage or bad input: a broken file, an invalid flag value, a prompt that does not fit.
// The message reads "<what> (<where>)" so that main prints "error: <what> (<where>)".
class InputError : public Error {
 public:
  InputError(const std::string& what, const std::string& where)
      : Error(where.empty() ? what : what + " (" + where + ")", ExitCode::bad_input) {}
};

}  // namespace gen
