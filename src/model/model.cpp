#include "gen/model.h"
#include "model/safetensors.h"
#include "model/weights.h"

#include <unistd.h>

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

std::string resolve_model_dir(const std::string& model_arg) {
  if (model_arg.empty()) throw InputError("--model is empty", "--model");
  if (fs::is_directory(model_arg)) return model_arg;
  // "models/gpt2" (the default) also finds the models/ folder beside the build when run elsewhere.
  const std::string name = model_name(model_arg);
  if (!is_known_model_name(name)) {
    throw InputError("model directory not found: " + model_arg, "--model");
  }
  std::vector<std::string> roots;
  if (const char* env = std::getenv("GEN_MODELS_DIR")) roots.emplace_back(env);
  roots.emplace_back("models");
  const std::string exe = exe_dir();
  if (!exe.empty()) roots.push_back(exe + "/../models");
  for (const auto& r : roots) {
    if (fs::is_directory(r + "/" + name)) return r + "/" + name;
  }
  throw InputError("model '" + name + "' is not downloaded; run scripts/download_model.sh " + name +
                       " (needs internet) or pass --model DIR",
                   "models/" + name);
}

Model load_model(const std::string& dir) {
  Model m;
  m.dir = dir;
  for (const char* f : {"config.json", "model.safetensors", "vocab.json", "merges.txt"}) {
    if (!fs::exists(dir + "/" + f)) throw InputError(std::string("missing ") + f, dir + "/" + f);
  }
  m.cfg = ModelConfig::load(dir + "/config.json");
  SafeTensors st(dir + "/model.safetensors");
  auto w = std::make_shared<Weights>(Weights::load(st, m.cfg));
  m.weights = std::move(w);
  m.tokenizer = std::make_unique<Tokenizer>(Tokenizer::load(dir + "/vocab.json", dir + "/merges.txt"));
  if (m.tokenizer->vocab_size() > m.cfg.vocab_size) {
    throw InputError("vocab.json has " + std::to_string(m.tokenizer->vocab_size()) +
                         " tokens but the model's vocab_size is " + std::to_string(m.cfg.vocab_size),
                     dir);
  }
  return m;
}

}  // namespace gen
