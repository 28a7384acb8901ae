#include "gen/model.h"
#include "model/safetensors.h"
#include "model/weights.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <cstdlib>
#include <filesystem>
#include <vector>

#include "gen/error.h"

namespace fs = std::filesystem;

namespace gen {

bool is_known_model_name(const std::string& name) {
  return name == "gpt2" || name == "gpt2-medium" || name == "gpt2-large" || name == "gpt2-xl";
}

namespace {
const char* const kModelFiles[] = {"config.json", "model.safetensors", "vocab.json", "merges.txt"};

// The folder holding the running executable (build/ -> the repo's models/ is ../models).
std::string exe_dir() {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : p.parent_path().string();
}
}  // namespace

std::string model_name(const std::string& model_arg) {
  return model_arg.rfind("models/", 0) == 0 ? model_arg.substr(7) : model_arg;
}

const char* missing_model_file(const std::string& dir) {
  for (const char* f : kModelFiles) {
    std::error_code ec;  // a symlink loop or an unreadable folder is "missing" here, named by load_model
    if (!fs::exists(dir + "/" + f, ec)) return f;
  }
  return nullptr;
}

namespace {
// A model file must be a regular file: a FIFO would block the reader, a directory or a symlink loop
// would fail with a library's message.
void require_model_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) throw InputError("missing " + fs::path(path).filename().string(), path);
    throw InputError(std::string("cannot read the model file: ") + std::strerror(errno), path);
  }
  if (!S_ISREG(st.st_mode)) throw InputError("cannot read the model file: not a regular file", path);
}
}  // namespace

std::string resolve_model_dir(const std::string& model_arg) {
  if (model_arg.empty()) throw InputError("--model is empty", "--model");
  // "models/gpt2" (the default) also finds the models/ folder beside the build when run elsewhere.
  const std::string name = model_name(model_arg);
  const bool known = is_known_model_name(name);
  // A known name's directory counts only when complete: an empty or half-downloaded models/gpt2 is
  // "not downloaded", not a broken model. Any other directory is the user's, errors and all.
  std::error_code ec;
  const bool is_dir = fs::is_directory(model_arg, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) {
    throw InputError("cannot read the model directory: " + ec.message(), model_arg);
  }
  if (is_dir && (!known || !missing_model_file(model_arg))) return model_arg;
  if (!known) throw InputError("model directory not found: " + model_arg, "--model");
  std::vector<std::string> roots;
  if (const char* env = std::getenv("GEN_MODELS_DIR")) roots.emplace_back(env);
  roots.emplace_back("models");
  const std::string exe = exe_dir();
  if (!exe.empty()) roots.push_back(exe + "/../models");
  std::string partial;  // the first incomplete directory, named in the hint
  for (const auto& r : roots) {
    const std::string dir = r + "/" + name;
    if (!fs::is_directory(dir, ec)) continue;
    const char* missing = missing_model_file(dir);
    if (!missing) return dir;
    if (partial.empty()) partial = dir + " has no " + missing;
  }
  const std::string where = partial.empty() ? "models/" + name : partial;
  throw InputError("model '" + name + "' is not downloaded; run scripts/download_model.sh " + name +
                       " (needs internet) or pass --model DIR",
                   where);
}

Model load_model(const std::string& dir) {
  Model m;
  m.dir = dir;
  for (const char* f : kModelFiles) require_model_file(dir + "/" + f);
  m.cfg = ModelConfig::load(dir + "/config.json");
  // The tokenizer first: the backends mask a vocabulary padded past it (docs/decisions.md, Checkpoints).
  m.tokenizer = std::make_unique<Tokenizer>(Tokenizer::load(dir + "/vocab.json", dir + "/merges.txt"));
  const int n_ids = m.tokenizer->vocab_size();
  if (n_ids > m.cfg.vocab_size) {
    throw InputError("vocab.json has " + std::to_string(n_ids) + " tokens but the model's vocab_size is " +
                         std::to_string(m.cfg.vocab_size),
                     dir);
  }
  if (n_ids < m.cfg.vocab_size) m.cfg.tokenizer_vocab = n_ids;
  SafeTensors st(dir + "/model.safetensors");
  m.weights = std::make_shared<Weights>(Weights::load(st, m.cfg));
  return m;
}

}  // namespace gen
