// Finding and loading a Hugging Face GPT-2 model directory, and choosing the device that runs it.
#pragma once
#include <cstddef>
#include <memory>
#include <string>

#include "gen/backend.h"
#include "gen/tokenizer.h"
#include "model/weights.h"

namespace gen {

// The four GPT-2 sizes gen knows by name; `--model NAME` means models/NAME.
bool is_known_model_name(const std::string& name);
// `--model` without a leading "models/" (the default "models/gpt2" names gpt2 as well).
std::string model_name(const std::string& model_arg);

// A directory as given, or a known name looked up in $GEN_MODELS_DIR, ./models and the models/
// folder next to the build directory. Throws InputError saying how to get the model when absent.
std::string resolve_model_dir(const std::string& model_arg);

struct Model {
  std::string dir;
  ModelConfig cfg;
  std::shared_ptr<const Weights> weights;
  std::unique_ptr<Tokenizer> tokenizer;
};
// config.json, model.safetensors, vocab.json, merges.txt from `dir`; checks that the tokenizer and
// the model agree on the vocabulary size.
Model load_model(const std::string& dir);

enum class Device { cpu, cuda };
const char* device_name(Device d);
// True when a CUDA device can be used; otherwise `why` says why not (no device, old driver, or a
// build without CUDA).
bool cuda_available(std::string* why);
// Memory of CUDA device 0 as cudaMemGetInfo sees it now. `usable` false: `why` says why (as
// cuda_available) and the sizes are 0. Never throws: callers only report it.
struct GpuMemory {
  bool usable = false;
  std::string why;
  std::string name;        // e.g. "NVIDIA H200"
  size_t total_bytes = 0;
  size_t free_bytes = 0;
};
GpuMemory gpu_memory();
// MemAvailable of /proc/meminfo in bytes: what can be allocated without swapping. 0 when unknown
// (no /proc/meminfo, or no such line), so a caller refusing work must treat 0 as "cannot tell".
size_t host_memory_available();
// The same from the text of a /proc/meminfo ("MemAvailable:  123456 kB"); 0 when absent or malformed.
size_t parse_mem_available(const std::string& meminfo_text);
// "auto" | "cpu" | "cuda". auto falls back to the CPU and sets `note`; cuda without a usable GPU
// throws with the reason.
// A dtype other than fp32 on the CPU is refused here, before any slow load.
Device choose_device(const std::string& requested, std::string* note, const std::string& dtype = "");
// dtype: "" (the device's default: fp32 on the CPU, fp16 on CUDA), "fp32", "fp16", "bf16".
std::unique_ptr<Backend> make_backend(Device d, std::shared_ptr<const Weights> weights, int threads,
                                      const std::string& dtype = "");

}  // namespace gen
