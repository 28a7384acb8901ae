// Notes: what the engine tells the user about a run that goes on (not errors, which are thrown), e.g.
// that CUDA graphs were turned off after a failed capture. One sink for the process, like llama.cpp's
// log callback: a front end installs its own (a server logs them); without one a note is one line on
// stderr, "[gen] note: ...", the same prefix as the run's summary.
#pragma once
#include <functional>
#include <string>

namespace gen {

using NoteSink = std::function<void(const std::string& note)>;

// Replaces the sink (nullptr: back to stderr) and returns the previous one (nullptr: stderr).
NoteSink set_note_sink(NoteSink sink);
// Gives `note` (one line, no trailing newline) to the sink. Thread-safe; never throws.
void notify(const std::string& note);

}  // namespace gen
