// gen info's numbers: parameter counts, weight and KV-cache bytes, fit verdicts, where the config
// comes from, the JSON fields, and the memory readers in device.cpp.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "gen/backend.h"
#include "gen/error.h"
#include "cli/info.h"
#include "gen/device.h"
#include "gen/model.h"
#include "test_util.h"

using namespace gen;

namespace {

constexpr uint64_t GiB = uint64_t(1) << 30;

InfoReport report_for(const std::string& name, int ctx, int batch, const std::string& dtype) {
  ModelSource s;
  s.model = name;
  s.cfg = ModelConfig::builtin(name);
  return make_info_report(s, ctx, batch, dtype);
}

void write_config(const std::string& dir, int n_layer, int n_positions) {
  std::filesystem::create_directories(dir);
  test::write_file(dir + "/config.json", R"({"n_layer": )" + std::to_string(n_layer) +
                                             R"(, "n_head": 2, "n_embd": 32, "n_positions": )" +
                                             std::to_string(n_positions) + R"(, "vocab_size": 600})");
}

}  // namespace

TEST_CASE("info: gpt2 KV cache bytes at 1024 positions", "[info]") {
  const InfoReport r = report_for("gpt2", 1024, 8, "fp16");
  REQUIRE(r.kv.size() == 2);  // fp16 first, then fp32
  CHECK(r.kv[0].dtype == "fp16");
  CHECK(r.kv[0].per_token == 2u * 12 * 768 * 2);
  CHECK(r.kv[0].per_sequence == 37748736u);  // 2 x 1024 x 12 x 768 x 2
  CHECK(r.kv[0].batch == 8u * 37748736u);
  CHECK(r.kv[0].factors == "2 x 8 x 1024 x 12 x 12 x 64 x 2");
  CHECK(r.kv[1].dtype == "fp32");
  CHECK(r.kv[1].per_sequence == 2u * 37748736u);
  // The same bytes the cache itself allocates.
  CHECK(r.kv[1].batch == KVCache::bytes_for(12, 768, 8, 1024, 4));
  CHECK(r.warnings.empty());
  // fp32 asked: only one entry.
  CHECK(report_for("gpt2", 1024, 1, "fp32").kv.size() == 1);
  CHECK(report_for("gpt2", 1024, 1, "bf16").kv[0].per_sequence == 37748736u);
}

TEST_CASE("info: parameter counts and weight bytes are Hugging Face's", "[info]") {
  const std::pair<const char*, int64_t> known[] = {
      {"gpt2", 124439808}, {"gpt2-medium", 354823168}, {"gpt2-large", 774030080}, {"gpt2-xl", 1557611200}};
  for (const auto& [name, params] : known) {
    const InfoReport r = report_for(name, 1024, 1, "fp16");
    INFO(name);
    CHECK(r.params == params);
    CHECK(r.weight_bytes_fp32 == uint64_t(params) * 4);
    CHECK(r.weight_bytes_16 == uint64_t(params) * 2);
  }
}

TEST_CASE("info: a context beyond n_positions is a what-if with a warning", "[info]") {
  const InfoReport r = report_for("gpt2-xl", 4096, 8, "fp16");
  REQUIRE(r.warnings.size() == 1);
  CHECK_THAT(r.warnings[0], Catch::Contains("context 4096 is beyond n_positions 1024"));
  CHECK(r.kv[0].per_token == 307200u);  // 2 x 48 x 1600 x 2
  CHECK(r.kv[0].per_sequence == 1258291200u);
  CHECK(r.kv[0].batch == 10066329600u);  // 2 x 8 x 4096 x 48 x 1600 x 2
  CHECK(r.kv[0].factors == "2 x 8 x 4096 x 48 x 25 x 64 x 2");
  CHECK(r.kv[1].batch == 20132659200u);  // fp32
  CHECK(r.gpu_fit.need == 3115222400u + 10066329600u);
  // The fp32 checkpoint, oneDNN's fp32 copy of the matrices (4 x 1554971200), the fp32 cache.
  CHECK(r.host_fit.need == 6230444800u + 6219884800u + 20132659200u);
  CHECK_THAT(info_text(r), Catch::Contains("2 x 8 x 4096 x 48 x 25 x 64 x 2 = 10,066,329,600 B (9.38 GiB)"));
  CHECK_THAT(info_text(r), Catch::Contains("warning: context 4096 is beyond n_positions 1024"));
}

TEST_CASE("info: bad values are input errors", "[info]") {
  CHECK_THROWS_AS(report_for("gpt2", 0, 1, "fp16"), InputError);
  CHECK_THROWS_WITH(report_for("gpt2", 0, 1, "fp16"), Catch::Contains("--ctx 0 is out of range"));
  CHECK_THROWS_WITH(report_for("gpt2", 1024, 0, "fp16"), Catch::Contains("--batch 0 is out of range"));
  CHECK_THROWS_WITH(report_for("gpt2", 1024, 1, "fp8"), Catch::Contains("--dtype must be fp32, fp16 or bf16"));
  // 2 x 2^30 x 2^30 x 48 x 1600 x 4 does not fit 64 bits: refused, not wrapped.
  CHECK_THROWS_WITH(report_for("gpt2-xl", 1 << 30, 1 << 30, "fp32"), Catch::Contains("overflow"));
  CHECK_THROWS_WITH(find_model_source("gpt3"), Catch::Contains("not a known name"));
  CHECK_THROWS_WITH(find_model_source("no/such/dir"), Catch::Contains("no model directory 'no/such/dir'"));
  CHECK_THROWS_AS(find_model_source(""), InputError);
}

TEST_CASE("info: a model directory's config wins over the built-in shape", "[info]") {
  test::TempDir tmp;
  write_config(tmp / "gpt2", 3, 64);
  const ModelSource direct = find_model_source(tmp / "gpt2");
  CHECK(direct.config_path == tmp / "gpt2/config.json");
  CHECK(direct.cfg.n_layer == 3);
  CHECK(direct.cfg.n_positions == 64);

  // A known name is looked up where `gen --model NAME` looks ($GEN_MODELS_DIR first), and counts only
  // when its directory is complete: an empty or partial one is "not downloaded", the built-in shape.
  write_config(tmp / "gpt2-medium", 5, 128);
  for (const char* f : {"model.safetensors", "vocab.json", "merges.txt"}) {
    test::write_file(tmp / (std::string("gpt2-medium/") + f), "");
  }
  write_config(tmp / "gpt2-large", 7, 128);  // config.json alone: a download that stopped
  std::filesystem::create_directories(tmp / "gpt2-xl");
  const char* old = std::getenv("GEN_MODELS_DIR");
  const std::string saved = old ? old : "";
  setenv("GEN_MODELS_DIR", tmp.path().c_str(), 1);
  const ModelSource named = find_model_source("gpt2-medium");
  const ModelSource partial = find_model_source("gpt2-large"), empty = find_model_source("models/gpt2-xl");
  if (old) setenv("GEN_MODELS_DIR", saved.c_str(), 1); else unsetenv("GEN_MODELS_DIR");
  CHECK(named.cfg.n_layer == 5);
  CHECK(named.config_path == tmp / "gpt2-medium/config.json");
  CHECK(partial.config_path.find(tmp.path()) == std::string::npos);  // built in (or complete elsewhere)
  CHECK(partial.cfg.n_layer == ModelConfig::builtin("gpt2-large").n_layer);
  CHECK(empty.cfg.n_layer == ModelConfig::builtin("gpt2-xl").n_layer);

  // A directory without config.json is an error, not a silent fallback.
  std::filesystem::create_directories(tmp / "empty");
  CHECK_THROWS_WITH(find_model_source(tmp / "empty"), Catch::Contains("cannot open config"));
}

TEST_CASE("info: fit verdicts against a given machine", "[info]") {
  InfoReport r = report_for("gpt2", 1024, 1, "fp16");  // needs 248,879,616 + 37,748,736 bytes on a GPU
  GpuMemory gpu;
  gpu.usable = true;
  gpu.name = "Test GPU";
  gpu.total_bytes = 16 * GiB;
  gpu.free_bytes = 10 * GiB;
  check_fit(r, gpu, 64 * GiB);
  CHECK(r.gpu_fit.need == 248879616u + 37748736u);
  CHECK(r.gpu_fit.fits_free());
  CHECK(std::string(r.gpu_fit.verdict()) == "fits in free memory");
  CHECK(std::string(r.host_fit.verdict()) == "fits in available memory");

  gpu.free_bytes = 100u << 20;  // 100 MiB free of 16 GiB
  check_fit(r, gpu, 100u << 20);
  CHECK_FALSE(r.gpu_fit.fits_free());
  CHECK(std::string(r.gpu_fit.verdict()) == "fits in total memory, not in what is free now");
  CHECK(std::string(r.host_fit.verdict()) == "does not fit");

  gpu.total_bytes = gpu.free_bytes = 200u << 20;
  check_fit(r, gpu, 0);
  CHECK(std::string(r.gpu_fit.verdict()) == "does not fit");
  CHECK_FALSE(r.host_fit.known);
  CHECK(std::string(r.host_fit.verdict()) == "unknown");

  check_fit(r, GpuMemory{false, "no CUDA device found", "", 0, 0}, GiB);
  CHECK_FALSE(r.gpu_fit.known);
  CHECK_THAT(info_text(r), Catch::Contains("GPU  none: no CUDA device found"));
}

TEST_CASE("info: the JSON object carries every number", "[info]") {
  InfoReport r = report_for("gpt2-xl", 4096, 8, "bf16");
  GpuMemory gpu{true, "", "Test GPU", 141 * GiB, 140 * GiB};
  check_fit(r, gpu, 8 * GiB);
  const nlohmann::json j = nlohmann::json::parse(info_json(r));
  CHECK(j["model"] == "gpt2-xl");
  CHECK(j["config_source"] == "builtin");
  CHECK(j["config"]["n_layer"] == 48);
  CHECK(j["config"]["n_head"] == 25);
  CHECK(j["config"]["head_dim"] == 64);
  CHECK(j["config"]["n_positions"] == 1024);
  CHECK(j["config"]["vocab_size"] == 50257);
  CHECK(j["params"] == 1557611200);
  CHECK(j["weight_bytes"]["fp32"] == 6230444800u);
  CHECK(j["weight_bytes"]["bf16"] == 3115222400u);
  // 48 x 12 x 1600^2 + 50257 x 1600 int8 codes, 48 x 9 x 1600 + 50257 fp32 scales, the other 2640000 fp32.
  CHECK(j["weight_bytes"]["int8"] == 1554971200u + 4u * 741457u + 4u * 2640000u);
  CHECK(j["context"] == 4096);
  CHECK(j["batch"] == 8);
  CHECK(j["context_beyond_n_positions"] == true);
  CHECK(j["warnings"].size() == 1);
  CHECK(j["kv_cache"]["bf16"]["bytes_per_token"] == 2 * 48 * 1600 * 2);
  CHECK(j["kv_cache"]["bf16"]["bytes_per_sequence"] == 1258291200u);
  CHECK(j["kv_cache"]["bf16"]["bytes_batch"] == 10066329600u);
  CHECK(j["kv_cache"]["bf16"]["formula"] == "2 x 8 x 4096 x 48 x 25 x 64 x 2 = 10066329600");
  CHECK(j["kv_cache"]["fp32"]["bytes_batch"] == 20132659200u);
  CHECK_FALSE(j["kv_cache"].contains("fp16"));
  CHECK(j["gpu"]["available"] == true);
  CHECK(j["gpu"]["name"] == "Test GPU");
  CHECK(j["gpu"]["fits"] == true);
  CHECK(j["gpu"]["need_bytes"] == 3115222400u + 10066329600u);
  CHECK(j["host"]["fits"] == false);
  CHECK(j["host"]["mem_available_bytes"] == 8 * GiB);

  check_fit(r, GpuMemory{false, "no CUDA device found", "", 0, 0}, 0);
  const nlohmann::json k = nlohmann::json::parse(info_json(r));
  CHECK(k["gpu"]["available"] == false);
  CHECK(k["gpu"]["reason"] == "no CUDA device found");
  CHECK(k["gpu"]["fits"].is_null());
  CHECK(k["host"]["mem_available_bytes"].is_null());
}

TEST_CASE("device: MemAvailable from /proc/meminfo", "[info]") {
  CHECK(parse_mem_available("MemTotal:       32000000 kB\nMemFree:  100 kB\nMemAvailable:    2048 kB\n") ==
        2048u * 1024);
  CHECK(parse_mem_available("MemTotal: 100 kB\nMemFree: 50 kB\n") == 0);
  CHECK(parse_mem_available("MemAvailable: 12 MB\n") == 0);
  CHECK(parse_mem_available("MemAvailable: lots kB\n") == 0);
  if (std::filesystem::exists("/proc/meminfo")) CHECK(host_memory_available() > (16u << 20));
}

TEST_CASE("device: host memory is capped by the memory cgroup (a Slurm task's, a container's)", "[info]") {
  test::TempDir d;
  const std::string root = d.path();
  auto put = [&](const std::string& rel, const std::string& text) {
    std::filesystem::create_directories(std::filesystem::path(root + rel).parent_path());
    test::write_file(root + rel, text);
  };
  // v2: the job's group allows 8 GiB and uses 3; its parent, the task's step, allows 4 and uses 2.5.
  put("/slurm/job_7/memory.max", "8589934592\n");
  put("/slurm/job_7/memory.current", "3221225472\n");
  put("/slurm/job_7/step_0/memory.max", "4294967296\n");
  put("/slurm/job_7/step_0/memory.current", "2684354560\n");
  put("/memory.max", "max\n");  // the root: no limit
  CHECK(cgroup_memory_left("0::/slurm/job_7/step_0\n", root) == (4294967296u - 2684354560u));
  // Inactive file cache is reclaimed before the OOM killer comes: it counts as free.
  put("/slurm/job_7/step_0/memory.stat", "anon 1000\nfile 2000000000\ninactive_file 1073741824\nactive_file 5\n");
  CHECK(cgroup_memory_left("0::/slurm/job_7/step_0\n", root) == (4294967296u - 2684354560u + 1073741824u));
  CHECK(cgroup_memory_left("0::/slurm/job_7\n", root) == 8589934592u - 3221225472u);
  CHECK(cgroup_memory_left("0::/\n", root) == SIZE_MAX);
  CHECK(cgroup_memory_left("0::/no/such/group\n", root) == SIZE_MAX);  // cannot read: no cap
  // v1: the memory hierarchy's line; 2^63 - 4096 is v1's "no limit"; usage past the limit leaves 0.
  put("/memory/task/memory.limit_in_bytes", "1073741824\n");
  put("/memory/task/memory.usage_in_bytes", "1073741825\n");
  put("/memory/task/memory.stat", "cache 10\ninactive_file 999999\ntotal_inactive_file 1\n");  // v1: total_
  put("/memory/free/memory.limit_in_bytes", "9223372036854771712\n");
  put("/memory/free/memory.usage_in_bytes", "1000\n");
  CHECK(cgroup_memory_left("4:memory:/task\n3:cpuset:/\n", root) == 0);
  CHECK(cgroup_memory_left("12:cpu,memory:/free\n", root) == SIZE_MAX);
  CHECK(cgroup_memory_left("5:cpuset:/task\n", root) == SIZE_MAX);  // not the memory controller
  CHECK(cgroup_memory_left("garbage\n", root) == SIZE_MAX);
  // This process: more than nothing, never more than MemAvailable (read after it, plus some slack).
  const size_t host = host_memory_available();
  if (std::filesystem::exists("/proc/meminfo")) {
    std::ifstream f("/proc/meminfo");
    const std::string meminfo((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    CHECK(host > 0);
    CHECK(host <= parse_mem_available(meminfo) + (256u << 20));
  }
}

TEST_CASE("device: the GPU memory query says why when there is no GPU", "[info]") {
  const GpuMemory g = gpu_memory();
  if (g.usable) {  // only on a machine with a GPU
    CHECK(g.total_bytes > 0);
    CHECK(g.free_bytes <= g.total_bytes);
    CHECK_FALSE(g.name.empty());
  } else {
    CHECK_FALSE(g.why.empty());
    CHECK(g.total_bytes == 0);
    std::string why;
    CHECK_FALSE(cuda_available(&why));
    CHECK(why == g.why);
  }
}

TEST_CASE("info: a vocabulary padded past the tokenizer says so", "[info]") {
  test::TempDir tmp;
  write_config(tmp / "m", 2, 64);  // vocab_size 600
  nlohmann::json vocab = nlohmann::json::object();
  for (int i = 0; i < 500; ++i) vocab["t" + std::to_string(i)] = i;
  test::write_file(tmp / "m/vocab.json", vocab.dump());
  InfoReport r = make_info_report(find_model_source(tmp / "m"), 64, 1, "fp16");
  CHECK(r.src.cfg.usable_vocab() == 500);
  CHECK(r.params == ModelConfig::parse(test::read_file(tmp / "m/config.json"), "c").n_params());  // all rows
  CHECK_THAT(info_text(r), Catch::Contains("vocab 600 (padded; the tokenizer has 500)\n"));
  const auto j = nlohmann::json::parse(info_json(r));
  CHECK(j["config"]["vocab_size"] == 600);
  CHECK(j["config"]["tokenizer_vocab"] == 500);

  test::write_file(tmp / "m/vocab.json", "not json");  // gen reports a broken vocab.json; info need not
  r = make_info_report(find_model_source(tmp / "m"), 64, 1, "fp16");
  CHECK_THAT(info_text(r), !Catch::Contains("padded"));
  CHECK_FALSE(nlohmann::json::parse(info_json(r))["config"].contains("tokenizer_vocab"));
}
