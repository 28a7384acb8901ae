// gen merge FILES... [--expect N] [--output FILE]: the shards of one batch run, in index order.
#include <CLI/CLI.hpp>
#include <cstring>
#include <functional>
#include <iostream>

#include "cli/cli_common.h"
#include "cli/merge.h"
#include "cli/stdout_writer.h"
#include "engine/atomic_file.h"
#include "gen/error.h"
#include "gen/prompts.h"

namespace gen {

namespace {

struct MergeOptions {
  std::vector<std::string> files;
  long expect = -1;
  std::string output;
};

bool parse(int argc, char** argv, MergeOptions* o) {
  CLI::App app{"gen merge: the --output files of a sharded run (gen --shard K/N) as one, in index order, one line "
               "per index; lines of another run and disagreeing duplicates are refused",
               "gen merge"};
  app.add_option("FILES", o->files, "the shards' --output files (JSON lines)")->required();
  app.add_option("--expect", o->expect,
                 "the number of prompts (or files) of the run: list the indices 0..N-1 that are missing, and exit 3 "
                 "when any are")
      ->transform(decimal("--expect", 0, 1LL << 31));
  app.add_option("-o,--output", o->output, "write the merged lines to FILE (atomically) instead of stdout");
  std::string help;
  if (parse_cli(app, argc, argv, "gen merge", &help) == Parsed::help) {
    write_stdout(help);
    return false;
  }
  return true;
}

// The lines, each with its newline, in pieces of about 1 MiB: to stdout, or to `path` atomically.
void write_output(const std::string& path, const std::vector<std::string>& lines) {
  auto each_piece = [&](const std::function<int(const std::string&)>& put) {
    std::string piece;
    for (size_t i = 0; i < lines.size(); ++i) {
      piece += lines[i];
      piece += '\n';
      if (piece.size() >= (1u << 20) || i + 1 == lines.size()) {
        if (const int err = put(piece)) return err;
        piece.clear();
      }
    }
    return 0;
  };
  if (path.empty()) {
    each_piece([](const std::string& s) { write_stdout(s); return 0; });
    return;
  }
  const int err = write_atomically(
      path, [&](int fd) { return each_piece([fd](const std::string& s) { return write_all_bytes(fd, s.data(), s.size()); }); },
      true);
  if (err != 0) throw Error("writing " + path + " failed: " + std::strerror(err));
}

}  // namespace

int run_merge(int argc, char** argv) {
  MergeOptions opt;
  if (!parse(argc, argv, &opt)) return 0;
  for (const std::string& f : opt.files) {  // every file is there before any is read
    if (!path_exists(f)) throw InputError("cannot read shard file: No such file or directory", f);
  }
  ShardMerger merger(opt.expect);
  for (const std::string& f : opt.files) merger.add(MergeInput{f, read_user_file(f, "shard file")});
  const MergeResult r = merger.finish();
  write_output(opt.output, r.lines);  // before any verdict: what is there is kept
  for (const std::string& n : r.notes) std::cerr << "[gen] " << n << "\n";
  std::cerr << "[gen] merged " << r.lines.size() << " lines (" << r.indices << " indices"
            << (r.samples > 1 ? ", " + std::to_string(r.samples) + " samples each" : "") << ") from " << opt.files.size()
            << " files" << (r.duplicates ? ", " + std::to_string(r.duplicates) + " equal duplicates dropped" : "")
            << (r.run.empty() ? "" : ", run " + r.run) << "\n";
  std::string missing;
  for (const std::string& m : r.missing) missing += (missing.empty() ? "" : ", ") + m;
  if (opt.expect < 0) {
    if (!missing.empty()) std::cerr << "[gen] gaps below the highest index: " << missing << " (--expect N checks)\n";
    return 0;
  }
  if (r.missing_count == 0) return 0;
  const long want = opt.expect * r.samples;
  throw Error(std::to_string(r.missing_count) + " of " + std::to_string(want) + (r.samples > 1 ? " results" : " indices") +
                  " missing: " + missing,
              ExitCode::some_failed);
}

}  // namespace gen
