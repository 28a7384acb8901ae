// gen serve --model DIR|NAME [--host H] [--port P] [--batch-size B] [--max-queue Q] [--api-key KEY]
//           [--max-tokens N] [--timeout S] [--ctx N] [--device D] [--dtype T] [--threads N]
//           [--no-prefix-cache | --prefix-cache-mb MB]
// Listens first (GET /health answers 503 while the model loads), loads, then serves until SIGINT or
// SIGTERM: it stops accepting, lets the live requests finish for --shutdown-timeout seconds, cancels
// the rest and exits 0.
#include "serve/cmd_serve.h"

#include <pthread.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <filesystem>
#include <iostream>

#include "cli/cli_common.h"
#include "gen/device.h"
#include "gen/error.h"
#include "gen/model.h"
#include "gen/prefix_cache.h"
#include "gen/prompts.h"
#include "serve/server.h"

namespace gen {

namespace {

struct ServeCli {
  std::string model = "models/gpt2";
  std::string device = "auto";
  std::string dtype;
  int threads = 0;
  int ctx = 0;
  int batch_size = 8;
  int max_queue = 256;
  int max_tokens = limits::max_new_tokens;
  int shutdown_timeout = 10;
  bool prefix_cache = true;
  long prefix_cache_mb = -1;
  serve::ServerOptions server;
};

ServeCli parse(int argc, char** argv, bool* help) {
  ServeCli o;
  o.server.threads = 0;  // 0: batch + queue + 8
  CLI::App app{"gen serve: an OpenAI-compatible completions server (POST /v1/completions, SSE streaming)",
               "gen serve"};
  app.option_defaults()->always_capture_default();
  app.add_option("--model", o.model, "model directory, or gpt2 | gpt2-medium | gpt2-large | gpt2-xl (models/NAME)");
  app.add_option("--host", o.server.host, "address to listen on (another than loopback exposes the server)");
  app.add_option("--port", o.server.port, "port (0: a free one, printed)")->transform(decimal("--port", 0, 65535));
  app.add_option("--batch-size", o.batch_size, "sequences decoded together (continuous batching)")
      ->transform(decimal("--batch-size", 1, 4096));
  app.add_option("--max-queue", o.max_queue, "sequences waiting for a slot; more get 503 with Retry-After")
      ->transform(decimal("--max-queue", 1, 1 << 20));
  app.add_option("--api-key", o.server.api_key, "require Authorization: Bearer KEY (default: $GEN_API_KEY)");
  app.add_option("--max-tokens", o.max_tokens, "the largest max_tokens a request may ask")
      ->transform(decimal("--max-tokens", 1, limits::max_new_tokens));
  app.add_option("--timeout", o.server.timeout_s, "seconds a client may take to send or to read")
      ->transform(decimal("--timeout", 1, 3600));
  app.add_option("--max-body", o.server.max_body, "bytes of a request body (413 above)")
      ->transform(decimal("--max-body", 1024, 1LL << 30));
  app.add_option("--http-threads", o.server.threads, "HTTP worker threads (default: batch + queue + 8, at most 1024)")
      ->transform(decimal("--http-threads", 4, 4096));
  app.add_option("--stream-interval-ms", o.server.stream_interval_ms,
                 "a stream's tokens gather this long between writes (0: one event per token)")
      ->transform(decimal("--stream-interval-ms", 0, 10000));
  app.add_option("--shutdown-timeout", o.shutdown_timeout, "seconds live requests may finish after SIGINT/SIGTERM")
      ->transform(decimal("--shutdown-timeout", 0, 3600));
  app.add_option("--ctx", o.ctx, "context of each sequence (0: n_positions)")->transform(decimal("--ctx", 0, limits::max_ctx));
  app.add_flag("!--no-prefix-cache", o.prefix_cache, "do not share prompt prefixes between requests");
  app.add_option("--prefix-cache-mb", o.prefix_cache_mb, "the prefix cache's budget in MiB (default: a quarter of free memory)")
      ->transform(decimal("--prefix-cache-mb", 0, 1LL << 40));
  add_device_flags(app, &o.device, &o.dtype, &o.threads);
  std::string help_text;
  if (parse_cli(app, argc, argv, "gen serve --model DIR [--port P]", &help_text) != Parsed::run) {
    std::cout << help_text;
    *help = true;
    return o;
  }
  if (o.server.api_key.empty()) {
    if (const char* k = std::getenv("GEN_API_KEY")) o.server.api_key = k;
  }
  if (o.server.threads == 0) o.server.threads = std::min(1024, o.batch_size + o.max_queue + 8);
  o.server.limits.max_tokens = o.max_tokens;
  return o;
}

// The signals that stop the server, blocked in every thread; the main thread waits for them.
sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

// Waits for SIGINT or SIGTERM, or until `done` (checked every 100 ms) says to stop waiting.
bool wait_signal(const sigset_t& set, const std::function<bool()>& done) {
  const timespec tick{0, 100 * 1000 * 1000};
  while (!done()) {
    if (sigtimedwait(&set, nullptr, &tick) > 0) return true;
  }
  return false;
}

}  // namespace

int run_serve(int argc, char** argv) {
  bool help = false;
  ServeCli o = parse(argc, argv, &help);
  if (help) return 0;
  std::string note;
  const Device device = choose_device(o.device, &note, o.dtype);
  const std::string dir = resolve_model_dir(o.model);
  const sigset_t signals = stop_signals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // before any thread starts: they inherit it
  signal(SIGPIPE, SIG_IGN);                        // a client gone mid-write is an error return, not a kill

  serve::Metrics metrics;
  serve::HttpServer http(o.server, metrics);
  const int port = http.bind();
  http.start();
  std::cerr << "gen serve: listening on http://" << o.server.host << ":" << port << "\n" << std::flush;
  if (!note.empty()) std::cerr << note << "\n";

  // The model loads on a thread of its own, so that a signal during the load is answered at once.
  std::unique_ptr<Model> model;
  std::unique_ptr<Backend> backend;
  std::exception_ptr load_error;
  std::atomic<bool> loaded{false};
  std::thread loader([&] {
    try {
      model = std::make_unique<Model>(load_model(dir));
      backend = make_backend(device, model->weights, o.threads, o.dtype);
    } catch (...) {
      load_error = std::current_exception();
    }
    loaded.store(true);
  });
  if (wait_signal(signals, [&] { return loaded.load(); })) {
    std::cerr << "gen serve: stopped while loading\n";
    http.stop();
    http.join();
    std::_Exit(0);  // the loader cannot be interrupted; nothing of it needs saving
  }
  loader.join();
  if (load_error) {
    http.stop();
    http.join();
    std::rethrow_exception(load_error);
  }

  const int ctx = effective_context(model->cfg, o.ctx);
  Generator generator(*backend, *model->tokenizer);
  std::unique_ptr<PrefixCache> prefix;
  if (o.prefix_cache) {
    const size_t budget = o.prefix_cache_mb >= 0 ? size_t(o.prefix_cache_mb) << 20 : PrefixCache::default_budget(*backend);
    prefix = std::make_unique<PrefixCache>(*backend, budget);
    generator.set_prefix_cache(prefix.get());
  }
  serve::EngineOptions eo;
  eo.batch_size = o.batch_size;
  eo.max_queue = o.max_queue;
  eo.run.max_ctx = ctx;
  eo.threads = o.threads;
  serve::Engine engine(generator, *backend, eo, metrics, prefix.get());
  engine.start();

  serve::Served served;
  served.model_name = std::filesystem::path(dir).filename().string();
  if (served.model_name.empty()) served.model_name = std::filesystem::path(dir).parent_path().filename().string();
  served.tok = model->tokenizer.get();
  served.generator = &generator;
  served.engine = &engine;
  served.ctx = ctx;
  served.created = int64_t(std::time(nullptr));
  http.ready(served);
  std::cerr << "gen serve: ready (model " << served.model_name << ", " << device_name(device) << " "
            << backend->dtype() << ", context " << ctx << ", batch " << o.batch_size << ")\n" << std::flush;

  wait_signal(signals, [] { return false; });
  std::cerr << "gen serve: stopping (live requests have " << o.shutdown_timeout << " s to finish)\n" << std::flush;
  http.stop_accepting();  // new connections are refused; the streams already running go on
  engine.shutdown(std::chrono::seconds(o.shutdown_timeout));
  http.stop();
  http.join();
  std::cerr << "gen serve: stopped\n";
  return 0;
}

}  // namespace gen
