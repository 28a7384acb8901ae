#include "gen/notes.h"

#include <cstdio>
#include <mutex>
#include <utility>

namespace gen {

namespace {
std::mutex g_mutex;
NoteSink g_sink;  // empty: stderr
}  // namespace

NoteSink set_note_sink(NoteSink sink) {
  std::lock_guard<std::mutex> lock(g_mutex);
  return std::exchange(g_sink, std::move(sink));
}

void notify(const std::string& note) {
  std::lock_guard<std::mutex> lock(g_mutex);
  try {
    if (g_sink) {
      g_sink(note);
      return;
    }
  } catch (...) {  // a sink that throws loses its note, not the run
    return;
  }
  std::fprintf(stderr, "[gen] note: %s\n", note.c_str());
}

}  // namespace gen
