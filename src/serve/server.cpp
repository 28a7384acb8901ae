#include "serve/server.h"

#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <ctime>

#include "gen/error.h"
#include "serve/response.h"

namespace gen::serve {

using nlohmann::json;

namespace {

// Equal strings, in time that depends only on their lengths (an API key is not guessed byte by byte).
bool same_secret(const std::string& a, const std::string& b) {
  const size_t n = std::max(a.size(), b.size());
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= unsigned(x ^ y);
  }
  return diff == 0;
}

// The metrics' endpoint label: a route, never a client's arbitrary path.
std::string route_label(const std::string& path) {
  static const char* routes[] = {"/v1/completions", "/v1/models", "/health", "/metrics", "/tokenize", "/detokenize"};
  for (const char* r : routes) {
    if (path == r) return r;
  }
  return "other";
}

const char* reason_phrase(int status) {
  switch (status) {
    case 400: return "bad request";
    case 404: return "not found";
    case 405: return "method not allowed";
    case 413: return "the request body is too large";
    case 414: return "the request URI is too long";
    case 431: return "the request headers are too large";
    default: return "the request failed";
  }
}

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(dump(body) + "\n", "application/json");
}

}  // namespace

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status();
  if (e.status() == 503 && e.code() == "queue_full") res.set_header("Retry-After", "1");
  if (e.status() == 401) res.set_header("WWW-Authenticate", "Bearer");
  res.set_content(error_body(e) + "\n", "application/json");
}

HttpServer::HttpServer(const ServerOptions& opt, Metrics& metrics)
    : opt_(opt), metrics_(metrics), http_(std::make_unique<httplib::Server>()) {
  const size_t threads = size_t(std::max(4, opt_.threads));
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http_->set_read_timeout(opt_.timeout_s, 0);
  http_->set_write_timeout(opt_.timeout_s, 0);
  http_->set_keep_alive_timeout(5);
  http_->set_keep_alive_max_count(1000);
  http_->set_payload_max_length(opt_.max_body);
  // cpp-httplib's default also sets SO_REUSEPORT, with which a second server on the same port starts
  // and takes half the connections: only SO_REUSEADDR here (a restart may rebind at once).
  http_->set_socket_options([this](int sock) {
    const int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    // Small writes go out at once (each SSE event; Nagle would hold one until the last is acknowledged).
    // Linux's accepted sockets inherit it from the listening one.
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
    listen_fd_ = sock;
  });
  routes();
}

HttpServer::~HttpServer() {
  stop();
  join();
}

int HttpServer::bind() {
  const int port = opt_.port == 0 ? http_->bind_to_any_port(opt_.host) : (http_->bind_to_port(opt_.host, opt_.port) ? opt_.port : -1);
  if (port < 0) {
    throw InputError("cannot listen on " + opt_.host + ":" + std::to_string(opt_.port) +
                         " (in use, or not an address of this machine)", "--host/--port");
  }
  // cpp-httplib 0.11 listens with a backlog of 5: many clients connecting at once would wait for SYN
  // retries (a second or more). listen() again sets the backlog.
  if (listen_fd_ >= 0) ::listen(listen_fd_, SOMAXCONN);
  return port;
}

void HttpServer::start() {
  thread_ = std::thread([this] { http_->listen_after_bind(); });
}

void HttpServer::ready(const Served& served) {
  served_ = std::make_unique<Served>(served);
  ready_.store(served_.get());
}

void HttpServer::stop_accepting() {
  if (listen_fd_ >= 0) ::shutdown(listen_fd_, SHUT_RDWR);  // accept() fails: the listening loop ends
}

void HttpServer::stop() { http_->stop(); }

void HttpServer::join() {
  if (thread_.joinable()) thread_.join();
}

bool HttpServer::authorized(const httplib::Request& req, httplib::Response& res) const {
  if (opt_.api_key.empty() || req.path == "/health") return true;
  const std::string auth = req.get_header_value("Authorization");
  const std::string prefix = "Bearer ";
  if (auth.compare(0, prefix.size(), prefix) == 0 && same_secret(auth.substr(prefix.size()), opt_.api_key)) return true;
  send_error(res, ApiError(401, auth.empty() ? "no API key: send the header Authorization: Bearer <key>"
                                             : "invalid API key",
                           "", "invalid_api_key"));
  return false;
}

const Served* HttpServer::served(httplib::Response& res) const {
  const Served* s = ready_.load();
  if (!s) send_error(res, ApiError(503, "the model is loading", "", "loading", "server_error"));
  return s;
}

void HttpServer::routes() {
  http_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    return authorized(req, res) ? httplib::Server::HandlerResponse::Unhandled : httplib::Server::HandlerResponse::Handled;
  });
  // Counted before the response goes out (the logger runs after): a client that got its answer and
  // then reads /metrics finds its request there.
  http_->set_post_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    metrics_.http_request(route_label(req.path), res.status);
  });
  http_->set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty() || res.is_chunked_content_provider_) return;
    const std::string what = res.status == 404 ? "no route " + req.method + " " + req.path : reason_phrase(res.status);
    send_error(res, ApiError(res.status, what));
  });
  http_->set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_error(res, ApiError(500, what, "", "", "server_error"));
  });
  http_->Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const Served* s = ready_.load();
    if (!s) {
      send_json(res, 503, json{{"status", "loading"}});
    } else if (!s->engine->accepting()) {
      send_json(res, 503, json{{"status", "stopping"}});  // shutting down, or the model failed
    } else {
      send_json(res, 200, json{{"status", "ok"}});
    }
  });
  http_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_.render(), Metrics::content_type());
  });
  http_->Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    const Served* s = served(res);
    if (!s) return;
    const json model{{"id", s->model_name}, {"object", "model"}, {"created", s->created}, {"owned_by", "gen"}};
    send_json(res, 200, json{{"object", "list"}, {"data", json::array({model})}});
  });
  http_->Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) { completions(req, res); });
  http_->Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) { tokenize(req, res); });
  http_->Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) { detokenize(req, res); });
  for (const char* path : {"/v1/completions", "/tokenize", "/detokenize"}) {
    http_->Get(path, [](const httplib::Request& req, httplib::Response& res) {
      res.set_header("Allow", "POST");
      send_error(res, ApiError(405, req.path + " takes POST"));
    });
  }
}

void HttpServer::completions(const httplib::Request& req, httplib::Response& res) {
  const Served* s = served(res);
  if (!s) return;
  try {
    RequestLimits limits = opt_.limits;
    limits.vocab_size = s->tok->vocab_size();
    const CompletionRequest r = parse_completion_request(req.body, limits);
    if (!r.model.empty() && r.model != s->model_name) {
      throw ApiError(404, "the model '" + r.model + "' does not exist; this server serves '" + s->model_name + "'",
                     "model", "model_not_found");
    }
    handle_completion(*s, opt_, r, req, res);
  } catch (const ApiError& e) {
    send_error(res, e);
  }
}

void HttpServer::tokenize(const httplib::Request& req, httplib::Response& res) {
  const Served* s = served(res);
  if (!s) return;
  try {
    const TokenizeRequest r = parse_tokenize_request(req.body);
    if (r.content.size() > opt_.max_body) throw ApiError(413, "the content is too long");
    const std::vector<int> ids = s->tok->encode(r.content);
    json tokens = json::array();
    for (int id : ids) {
      if (r.with_pieces) {
        tokens.push_back(json{{"id", id}, {"piece", token_string(*s->tok, id)}});
      } else {
        tokens.push_back(id);
      }
    }
    send_json(res, 200, json{{"tokens", tokens}});
  } catch (const ApiError& e) {
    send_error(res, e);
  } catch (const InputError& e) {
    send_error(res, ApiError(400, e.what(), "content"));
  }
}

void HttpServer::detokenize(const httplib::Request& req, httplib::Response& res) {
  const Served* s = served(res);
  if (!s) return;
  try {
    RequestLimits limits = opt_.limits;
    limits.vocab_size = s->tok->vocab_size();
    const std::vector<int> ids = parse_detokenize_request(req.body, limits);
    send_json(res, 200, json{{"content", s->tok->decode(ids)}});
  } catch (const ApiError& e) {
    send_error(res, e);
  }
}

}  // namespace gen::serve
