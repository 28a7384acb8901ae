// POST /v1/completions once parsed: the job (prompts x n sequences) for the engine, then the answer, as
// one JSON object or as Server-Sent Events.
#include <algorithm>
#include <httplib.h>

#include <atomic>
#include <ctime>
#include <optional>
#include <random>

#include "cli/cli_common.h"
#include "gen/error.h"
#include "serve/peer.h"
#include "serve/response.h"
#include "serve/server.h"

namespace gen::serve {

using nlohmann::json;

namespace {

constexpr auto kPoll = std::chrono::milliseconds(100);

std::string completion_id() {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t salt = std::random_device{}();
  char buf[40];
  std::snprintf(buf, sizeof buf, "cmpl-%016llx%08llx", static_cast<unsigned long long>(salt),
                static_cast<unsigned long long>(counter.fetch_add(1)));
  return buf;
}

// The prompt's ids: its tokens, or its text encoded; refused when it and max_tokens exceed the context.
std::vector<int> prompt_ids(const Served& s, const PromptInput& p, int max_tokens) {
  std::vector<int> ids;
  if (p.is_tokens) {
    ids = p.tokens;
  } else {
    try {
      ids = s.generator->encode_prompt(p.text, s.ctx);
    } catch (const InputError& e) {
      throw ApiError(400, e.what(), "prompt", "context_length_exceeded");
    }
  }
  if (long(ids.size()) + max_tokens > s.ctx) {
    throw ApiError(400, "this model's maximum context length is " + std::to_string(s.ctx) + " tokens, but " +
                            std::to_string(long(ids.size()) + max_tokens) + " were requested (" +
                            std::to_string(ids.size()) + " in the prompt, " + std::to_string(max_tokens) +
                            " for the completion)",
                   "prompt", "context_length_exceeded");
  }
  return ids;
}

std::shared_ptr<Job> make_job(const Served& s, const CompletionRequest& r, std::vector<std::string>* prompt_texts,
                              long* prompt_tokens) {
  auto job = std::make_shared<Job>();
  const uint64_t seed = r.seed ? *r.seed : random_seed();
  *prompt_tokens = 0;
  for (size_t p = 0; p < r.prompts.size(); ++p) {
    const std::vector<int> ids = prompt_ids(s, r.prompts[p], r.max_tokens);
    *prompt_tokens += long(ids.size());
    prompt_texts->push_back(r.prompts[p].is_tokens ? s.tok->decode(ids) : r.prompts[p].text);
    for (int k = 0; k < r.n; ++k) {
      Request q;
      q.prompt = ids;
      GenOptions& o = q.opt;
      o.max_new_tokens = r.max_tokens;
      o.sampling.temperature = r.temperature;
      o.sampling.top_k = r.top_k;
      o.sampling.top_p = r.top_p;
      o.seed = seed + uint64_t(k);  // as --samples: sample k draws with seed + k
      o.ignore_eos = r.ignore_eos;
      o.stop_strings = r.stop;
      o.logprobs = r.logprobs ? *r.logprobs : -1;
      job->seqs.push_back(std::move(q));
      job->prompt_of.push_back(int(p));
    }
  }
  if (r.echo && r.logprobs) job->score_top = *r.logprobs;  // the prompts' own, computed by the engine
  return job;
}

// One choice as it is being answered.
struct Choice {
  explicit Choice(const std::vector<std::string>& stops) : text(stops) {}
  ChoiceText text;
  std::vector<TokenLogprob> logprobs;
  size_t offset = 0;  // text_offset of the next token
  long tokens = 0;
  bool done = false;
  std::string finish;
};

// What a job's answer is built from, shared by the waiting handler or the SSE provider.
struct Answer {
  std::shared_ptr<Job> job;
  const Served* served = nullptr;
  CompletionRequest req;
  std::vector<std::string> prompt_texts;
  std::vector<Choice> choices;
  long prompt_tokens = 0;
  std::string id;
  int64_t created = 0;
  bool cancelled = false;  // a sequence ended "cancelled" (the server stopped)
  bool echoed = false;     // a stream's prompts were sent (echo)
  std::vector<SeqEvent> pending;  // a stream's first events, taken before its headers went out

  // Applies an event; returns the text it makes sendable.
  std::string apply(SeqEvent& e, size_t* lp_from, size_t* lp_to) {
    Choice& c = choices[size_t(e.choice)];
    c.tokens += long(e.tokens.size());
    *lp_from = c.logprobs.size();
    for (auto& lp : e.logprobs) c.logprobs.push_back(std::move(lp));
    *lp_to = c.logprobs.size();
    if (!e.done) return c.text.push(e.text);
    c.done = true;
    c.finish = e.result.finish_reason;
    if (c.finish == "cancelled" || c.finish == "interrupted") cancelled = true;
    return c.text.finish(c.finish == "stop");
  }
  // Why the job did not finish whole (the model failed, or the server stopped first); nullopt when it did.
  std::optional<ApiError> error() const {
    const std::string failure = job->failure();
    if (!failure.empty()) return ApiError(500, "generation failed: " + failure, "", "", "server_error");
    if (cancelled) return ApiError(503, "the server stopped before the completion finished", "", "shutting_down", "server_error");
    return std::nullopt;
  }
  long completion_tokens() const {
    long n = 0;
    for (const auto& c : choices) n += c.tokens;
    return n;
  }
  // The echoed prompt's logprobs object for choice c (echo with logprobs).
  json echo_logprobs(size_t c) const {
    const size_t p = size_t(job->prompt_of[c]);
    static const std::vector<TokenLogprob> none;  // a job cancelled before it was scored
    return prompt_logprobs_json(*served->tok, job->seqs[c].prompt,
                                p < job->prompt_logprobs.size() ? job->prompt_logprobs[p] : none);
  }
  json logprobs(const Choice& c, size_t from, size_t to, size_t* offset) const {
    if (!req.logprobs) return nullptr;
    json j = logprobs_json(*served->tok, c.logprobs, from, to, *offset);
    for (const auto& t : j["tokens"]) *offset += t.get<std::string>().size();
    return j;
  }
};

std::shared_ptr<Answer> start(const Served& s, const ServerOptions& opt, const CompletionRequest& r) {
  auto a = std::make_shared<Answer>();
  a->served = &s;
  a->req = r;
  a->job = make_job(s, r, &a->prompt_texts, &a->prompt_tokens);
  // A stream writes what gathered every stream_interval_ms (the first token and the end at once);
  // a whole answer needs only its end.
  a->job->wake_interval = std::chrono::milliseconds(r.stream ? opt.stream_interval_ms : 3600 * 1000);
  for (size_t c = 0; c < a->job->seqs.size(); ++c) a->choices.emplace_back(r.stop);
  a->id = completion_id();
  a->created = int64_t(std::time(nullptr));
  s.engine->submit(a->job);
  return a;
}

void send_whole(Answer& a, const httplib::Request& http_req, httplib::Response& res) {
  const int fd = find_connection(http_req.local_addr, http_req.local_port, http_req.remote_addr, http_req.remote_port);
  for (bool last = false; !last;) {
    last = a.job->finished();  // events pushed before this are all waiting below
    for (SeqEvent& e : a.job->wait(last ? std::chrono::milliseconds(0) : kPoll)) {
      size_t from, to;
      a.apply(e, &from, &to);
    }
    if (!last && !peer_connected(fd)) {
      a.job->cancel();  // the client left: its sequences end at the next step
      return;
    }
  }
  if (const auto err = a.error()) throw *err;
  json choices = json::array();
  for (size_t i = 0; i < a.choices.size(); ++i) {
    Choice& c = a.choices[i];
    const std::string& prompt = a.prompt_texts[size_t(a.job->prompt_of[i])];
    size_t offset = a.req.echo ? prompt.size() : 0;
    json lp = a.logprobs(c, 0, c.logprobs.size(), &offset);
    if (a.req.echo && a.req.logprobs) {
      json echoed = a.echo_logprobs(i);
      append_logprobs(echoed, lp);
      lp = std::move(echoed);
    }
    choices.push_back(json{{"text", (a.req.echo ? prompt : "") + c.text.text()},
                           {"index", i},
                           {"logprobs", lp},
                           {"finish_reason", finish_reason(c.finish)}});
  }
  json body = completion_head(a.id, a.created, a.served->model_name);
  body["choices"] = std::move(choices);
  body["usage"] = usage_json(a.prompt_tokens, a.completion_tokens());
  res.status = 200;
  res.set_content(dump(body) + "\n", "application/json");
}

json chunk(const Answer& a, size_t choice, const std::string& text, const json& logprobs, const std::string& finish) {
  json j = completion_head(a.id, a.created, a.served->model_name);
  j["choices"] = json::array({json{{"text", text},
                                   {"index", choice},
                                   {"logprobs", logprobs},
                                   {"finish_reason", finish_reason(finish).empty() ? json(nullptr) : json(finish_reason(finish))}}});
  return j;
}

// The echo chunks of a stream: each choice's prompt (and its log-probabilities when asked).
template <typename Write>
bool write_echo(Answer& a, const Write& write) {
  a.echoed = true;
  for (size_t c = 0; c < a.choices.size(); ++c) {
    const std::string& prompt = a.prompt_texts[size_t(a.job->prompt_of[c])];
    a.choices[c].offset = prompt.size();
    const json lp = a.req.logprobs ? a.echo_logprobs(c) : json(nullptr);
    if (!write(sse_event(chunk(a, c, prompt, lp, "")))) return false;
  }
  return true;
}

// One call of the SSE provider: waits for events and writes their chunks. False: stop (the client left).
bool stream_some(Answer& a, httplib::DataSink& sink) {
  auto write = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
  const bool last = a.job->finished();
  std::vector<SeqEvent> events = std::move(a.pending);
  a.pending.clear();
  for (SeqEvent& e : a.job->wait(last || !events.empty() ? std::chrono::milliseconds(0) : kPoll)) events.push_back(std::move(e));
  // echo: each choice's prompt first, in a chunk of its own, once the job has started (its prompts'
  // log-probabilities are computed before its first event).
  if (a.req.echo && !a.echoed && (last || !events.empty()) && !write_echo(a, write)) return false;
  for (SeqEvent& e : events) {
    const size_t c = size_t(e.choice);
    size_t from, to;
    const std::string text = a.apply(e, &from, &to);
    if (text.empty() && from == to && !e.done) continue;
    const json lp = a.logprobs(a.choices[c], from, to, &a.choices[c].offset);
    if (!write(sse_event(chunk(a, c, text, lp, e.done ? a.choices[c].finish : "")))) return false;
  }
  if (!last) return true;
  if (const auto err = a.error()) {
    if (!write("data: " + error_body(*err) + "\n\n")) return false;
  } else if (a.req.include_usage) {
    json u = completion_head(a.id, a.created, a.served->model_name);
    u["choices"] = json::array();
    u["usage"] = usage_json(a.prompt_tokens, a.completion_tokens());
    if (!write(sse_event(u))) return false;
  }
  if (!write("data: [DONE]\n\n")) return false;
  sink.done();
  return true;
}

// A stream's first events, awaited before its headers go out: until then a proxy in front (nginx's
// proxy_next_upstream) can still retry the request elsewhere when this replica dies, and a job the server
// never started (it is stopping) or that failed gets an HTTP error instead of a 200 stream. False: the
// client left first.
bool wait_first(Answer& a, const httplib::Request& http_req) {
  const int fd = find_connection(http_req.local_addr, http_req.local_port, http_req.remote_addr, http_req.remote_port);
  for (;;) {
    const bool last = a.job->finished();
    a.pending = a.job->wait(last ? std::chrono::milliseconds(0) : kPoll);
    if (last || !a.pending.empty()) break;
    if (!peer_connected(fd)) return false;
  }
  const bool never_started = a.job->finished() && std::all_of(a.pending.begin(), a.pending.end(), [](const SeqEvent& e) {
    return e.done && e.tokens.empty() && finish_reason(e.result.finish_reason).empty();
  });
  if (!a.job->failure().empty() || never_started) {
    for (SeqEvent& e : a.pending) {
      size_t from, to;
      a.apply(e, &from, &to);
    }
    if (const auto err = a.error()) throw *err;
  }
  return true;
}

}  // namespace

void handle_completion(const Served& s, const ServerOptions& opt, const CompletionRequest& r, const httplib::Request& http_req,
                       httplib::Response& res) {
  std::shared_ptr<Answer> a = start(s, opt, r);
  if (!r.stream) return send_whole(*a, http_req, res);
  if (!wait_first(*a, http_req)) {
    a->job->cancel();  // the client left before the first token
    return;
  }
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [a](size_t, httplib::DataSink& sink) {
        if (!stream_some(*a, sink)) {
          a->job->cancel();
          return false;
        }
        return true;
      },
      [a](bool) { a->job->cancel(); });  // the response ended (or failed): nothing more to compute
}

}  // namespace gen::serve
