// gen serve's HTTP side (cpp-httplib): the routes, API keys, limits and error bodies. It listens before
// the model is loaded (GET /health answers 503 until ready()); handlers parse and validate, then queue
// to the Engine and wait for its events.
#pragma once
#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "gen/generator.h"
#include "gen/tokenizer.h"
#include "serve/engine.h"
#include "serve/metrics.h"
#include "serve/request.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace gen::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key;              // "": no authentication
  int threads = 64;                 // HTTP worker threads
  int timeout_s = 30;               // read and write timeouts
  size_t max_body = 4 << 20;        // request body bytes (413 above)
  int stream_interval_ms = 20;      // a stream's events gather this long between writes (0: each token)
  RequestLimits limits;
};

// What the handlers need once the model is loaded.
struct Served {
  std::string model_name;
  const Tokenizer* tok = nullptr;
  Generator* generator = nullptr;
  Engine* engine = nullptr;
  int ctx = 0;
  int64_t created = 0;  // when the model was loaded (Unix seconds)
};

class HttpServer {
 public:
  HttpServer(const ServerOptions& opt, Metrics& metrics);
  ~HttpServer();
  // Binds; returns the port (a free one for port 0). Throws InputError when it cannot.
  int bind();
  void start();  // listens on a thread of its own
  void ready(const Served& served);  // the model is loaded: the API answers from now on
  // Closes the listening socket: new connections are refused, the requests in progress go on (their
  // streams too: cpp-httplib's stop() would cut them).
  void stop_accepting();
  void stop();   // ends the server: keep-alive connections end, streams still running are cut
  void join();

 private:
  void routes();
  bool authorized(const httplib::Request& req, httplib::Response& res) const;
  const Served* served(httplib::Response& res) const;  // nullptr (and a 503) while loading
  void completions(const httplib::Request& req, httplib::Response& res);
  void tokenize(const httplib::Request& req, httplib::Response& res);
  void detokenize(const httplib::Request& req, httplib::Response& res);

  ServerOptions opt_;
  Metrics& metrics_;
  std::unique_ptr<httplib::Server> http_;
  int listen_fd_ = -1;
  std::thread thread_;
  std::unique_ptr<Served> served_;
  std::atomic<const Served*> ready_{nullptr};
};

// Sets res to the JSON error body of e with its status (and Retry-After for a 503 of a full queue).
void send_error(httplib::Response& res, const ApiError& e);

// The completions endpoint's work once the request is parsed (serve/completions.cpp).
void handle_completion(const Served& s, const ServerOptions& opt, const CompletionRequest& req,
                       const httplib::Request& http_req, httplib::Response& res);

}  // namespace gen::serve
