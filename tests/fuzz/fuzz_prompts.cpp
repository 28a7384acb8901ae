// libFuzzer target: arbitrary bytes as a --prompts-file, read as plain lines and as JSON lines by
// gen::parse_prompts. A bad line must become that prompt's error; nothing may throw or crash, and what
// is accepted must hold the documented invariants.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "gen/prompts.h"
#include "gen/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string content(reinterpret_cast<const char*>(data), size);
  for (bool jsonl : {false, true}) {
    const auto prompts = gen::parse_prompts(content, jsonl);  // must not throw
    int last_line = 0;
    for (size_t i = 0; i < prompts.size(); ++i) {
      const auto& p = prompts[i];
      if (p.index != int(i) || p.line <= last_line) abort();  // indices 0.., lines increasing
      last_line = p.line;
      if (!p.error.empty()) continue;
      if (gen::utf8_error_offset(p.text) >= 0) abort();  // an accepted prompt is valid UTF-8
      if (!jsonl && (p.text.find('\n') != std::string::npos || p.max_new_tokens || p.seed)) abort();
      if (p.max_new_tokens && *p.max_new_tokens < 0) abort();
      if (p.temperature && !(*p.temperature >= 0)) abort();
      if (p.top_p && !(*p.top_p > 0 && *p.top_p <= 1)) abort();
      if (p.max_new_tokens && *p.max_new_tokens > gen::limits::max_new_tokens) abort();
      if (p.top_k && (*p.top_k < 0 || *p.top_k > gen::limits::max_top_k)) abort();
      if (p.stop && (!jsonl || p.stop->empty())) abort();
      for (const auto& s : p.stop ? *p.stop : std::vector<std::string>()) {
        if (s.empty() || gen::utf8_error_offset(s) >= 0) abort();  // stop strings: non-empty UTF-8
      }
    }
  }
  return 0;
}
