// gen perplexity over many files: each file of this shard scored in turn, one JSON line each, on stdout
// (in index order) or appended to --output, which --resume continues.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/batch_output.h"
#include "cli/cli_common.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "cli/perplexity_cli.h"
#include "cli/shard.h"
#include "gen/device.h"
#include "gen/error.h"
#include "gen/model.h"
#include "gen/perplexity.h"

namespace gen {

namespace {

using nlohmann::json;

// --file paths, then --file-list's lines (a '\r' before the newline dropped; blank lines, empty or only
// spaces and tabs, skipped as in a prompts file).
std::vector<std::string> collect_paths(const PplOptions& opt, std::string* list_bytes) {
  std::vector<std::string> paths = opt.files;
  if (!opt.file_list.empty()) {
    const std::string list = read_user_file(opt.file_list, "file list");
    size_t pos = 0;
    while (pos < list.size()) {
      size_t end = list.find('\n', pos);
      if (end == std::string::npos) end = list.size();
      std::string line = list.substr(pos, end - pos);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") != std::string::npos) paths.push_back(line);
      pos = end + 1;
    }
    if (paths.empty()) throw InputError("no paths in the file list (blank lines are skipped)", opt.file_list);
  }
  for (const std::string& p : paths) *list_bytes += p + "\n";
  return paths;
}

struct ListRun {
  const std::vector<std::string>& paths;
  Backend& backend;
  const Tokenizer& tokenizer;
  int context = 0;
  std::string device, run;
  BatchOutput* output = nullptr;
};

// One file's JSON line: its result, or its error (a file that cannot be read or is too short).
json score_file(const ListRun& r, int index, bool* failed) {
  const std::string& path = r.paths[size_t(index)];
  json j{{"index", index}, {"file", path}};
  try {
    const std::vector<int> tokens = ppl_tokens(r.tokenizer, read_ppl_text(path), path);
    const auto t0 = std::chrono::steady_clock::now();
    const PerplexityResult res = perplexity(r.backend, tokens, r.context, &g_interrupted);
    if (res.interrupted) return json();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    j.update(ppl_json(res, tokens.size(), r.context, r.device, secs));
    j["dtype"] = r.backend.dtype();
  } catch (const InputError& e) {
    j["error"] = e.what();
    *failed = true;
  }
  j["run"] = r.run;
  return j;
}

int score_all(const ListRun& r, const Shard& shard) {
  int scored = 0, failed = r.output ? r.output->failed_before() : 0, skipped = r.output ? r.output->done_count() : 0;
  const auto t0 = std::chrono::steady_clock::now();
  install_sigint();
  for (int i = shard.k; i < int(r.paths.size()) && !g_interrupted; i += shard.n) {
    if (r.output && r.output->done(i, 0)) continue;
    bool bad = false;
    const json j = score_file(r, i, &bad);
    if (j.is_null()) break;  // interrupted in the middle of the file: not written, --resume scores it
    if (r.output) {
      r.output->write_line(i, bad ? -1 : 0, json_line(j));
    } else {
      write_stdout(json_line(j) + "\n");
    }
    ++(bad ? failed : scored);
  }
  restore_sigint();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  char took[32];
  std::snprintf(took, sizeof took, "%.2f", secs);
  std::cerr << "[gen] perplexity: " << scored << " files scored, " << failed << " failed, " << skipped
            << " already in the output, in " << took << " s"
            << (shard.n > 1 ? "; shard " + shard.str() + ": " + std::to_string(shard.count(long(r.paths.size()))) +
                                  " of " + std::to_string(r.paths.size()) + " files"
                            : std::string())
            << ", run " << r.run << "\n";
  if (g_interrupted) {
    std::cerr << "[gen] interrupted" << (r.output ? "; run the same command with --resume to finish" : "") << "\n";
    return int(ExitCode::interrupted);
  }
  return failed > 0 ? int(ExitCode::some_failed) : 0;
}

}  // namespace

int run_perplexity_list(const PplOptions& opt) {
  std::string list_bytes;
  const std::vector<std::string> paths = collect_paths(opt, &list_bytes);
  const Shard shard = opt.shard.empty() ? Shard{} : parse_shard(opt.shard);
  std::unique_ptr<BatchOutput> output;
  if (!opt.output.empty()) {
    auto check = [&paths](int i, bool, const json& j, const std::string& where) {
      if (!j.contains("file") || j["file"] != paths[size_t(i)]) {
        throw InputError("index " + std::to_string(i) + " holds another file than the list; not the same run", where);
      }
    };
    output = std::make_unique<BatchOutput>(opt.output, opt.resume, int(paths.size()), shard, check, "files");
  }
  std::string note;
  const Device device = choose_device(opt.device, &note, opt.dtype);
  Model model = load_model(resolve_model_dir(opt.model));
  const int context = ppl_context(opt, model.cfg);
  auto backend = make_backend(device, model.weights, opt.threads, opt.dtype);
  const json settings{{"kind", "perplexity"}, {"dtype", backend->dtype()}, {"context", context}};
  ListRun run{paths, *backend, *model.tokenizer, context, device_name(device),
              run_id(list_bytes, model.dir, model.cfg, settings), output.get()};
  if (output) output->check_run(run.run);
  if (!note.empty()) std::cerr << note << "\n";
  const int rc = score_all(run, shard);
  if (output) output->close();
  return rc;
}

}  // namespace gen
