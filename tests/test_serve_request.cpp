// gen serve's request bodies: what parse_completion_request and the /tokenize, /detokenize parsers
// accept (exact values) and how they refuse the rest (exact status, message, param and code).
#include <catch2/catch.hpp>

#include "serve/request.h"

using namespace gen::serve;

namespace {

// "<status> <param> <code>: <message>" of the ApiError that `parse` throws ("-" for an empty param or
// code), or "accepted" when it throws none: one string, so a failed check shows all of it.
template <typename Parse>
std::string refusal(Parse parse) {
  try {
    parse();
  } catch (const ApiError& e) {
    auto dash = [](const std::string& s) { return s.empty() ? std::string("-") : s; };
    return std::to_string(e.status()) + " " + dash(e.param()) + " " + dash(e.code()) + ": " + e.what();
  }
  return "accepted";
}

std::string refused(const std::string& body, const RequestLimits& limits = {}) {
  return refusal([&] { parse_completion_request(body, limits); });
}

CompletionRequest parsed(const std::string& body, const RequestLimits& limits = {}) {
  return parse_completion_request(body, limits);
}

}  // namespace

TEST_CASE("An empty object, or nulls everywhere, gives OpenAI's defaults", "[serve]") {
  for (const std::string body :
       {"{}", R"({"prompt": null, "model": null, "max_tokens": null, "temperature": null, "top_p": null,
                  "top_k": null, "n": null, "stop": null, "seed": null, "stream": null, "stream_options": null,
                  "logprobs": null, "echo": null, "ignore_eos": null, "user": null, "best_of": null,
                  "suffix": null, "logit_bias": null, "frequency_penalty": null, "presence_penalty": null})"}) {
    const CompletionRequest r = parsed(body);
    REQUIRE(r.prompts.size() == 1);
    REQUIRE(!r.prompts[0].is_tokens);
    REQUIRE(r.prompts[0].text.empty());
    REQUIRE(r.prompts[0].tokens.empty());
    REQUIRE(r.model.empty());
    REQUIRE(r.max_tokens == 16);
    REQUIRE(r.temperature == 1.0f);
    REQUIRE(r.top_p == 1.0f);
    REQUIRE(r.top_k == 0);
    REQUIRE(r.n == 1);
    REQUIRE(r.stop.empty());
    REQUIRE(!r.seed);
    REQUIRE(!r.stream);
    REQUIRE(!r.include_usage);
    REQUIRE(!r.logprobs);
    REQUIRE(!r.echo);
    REQUIRE(!r.ignore_eos);
  }
}

TEST_CASE("Every field is read, unknown fields are ignored, unsupported ones at their defaults pass",
          "[serve]") {
  const CompletionRequest r = parsed(
      R"({"prompt": "Hello, w\u00f6rld", "model": "gpt2", "max_tokens": 0, "temperature": 0.5, "top_p": 0.25,
          "top_k": 40, "n": 3, "stop": ["\n", "END"], "seed": 18446744073709551615, "stream": true,
          "stream_options": {"include_usage": true, "other": 1}, "logprobs": 5, "echo": true,
          "ignore_eos": true, "user": "someone", "best_of": 1, "suffix": null, "logit_bias": {},
          "frequency_penalty": 0, "presence_penalty": 0.0, "response_format": {"x": [1, 2]}})");
  REQUIRE(r.prompts.size() == 1);
  REQUIRE(r.prompts[0].text == "Hello, w\xc3\xb6rld");
  REQUIRE(r.model == "gpt2");
  REQUIRE(r.max_tokens == 0);
  REQUIRE(r.temperature == 0.5f);
  REQUIRE(r.top_p == 0.25f);
  REQUIRE(r.top_k == 40);
  REQUIRE(r.n == 3);
  REQUIRE(r.stop == std::vector<std::string>{"\n", "END"});
  REQUIRE(*r.seed == 18446744073709551615ull);
  REQUIRE(r.stream);
  REQUIRE(r.include_usage);
  REQUIRE(*r.logprobs == 5);
  REQUIRE(r.echo);
  REQUIRE(r.ignore_eos);

  const CompletionRequest s = parsed(R"({"temperature": 2, "top_p": 1, "top_k": -1, "seed": 0, "logprobs": 0,
                                         "stop": "###", "max_tokens": 16777216, "n": 128, "stream": false})");
  REQUIRE(s.temperature == 2.0f);  // an integer is a number
  REQUIRE(s.top_p == 1.0f);
  REQUIRE(s.top_k == 0);  // -1: off, as 0
  REQUIRE(*s.seed == 0);
  REQUIRE(*s.logprobs == 0);
  REQUIRE(s.stop == std::vector<std::string>{"###"});
  REQUIRE(s.max_tokens == 16777216);
  REQUIRE(s.n == 128);
  REQUIRE(parsed(R"({"temperature": 0, "top_k": 16777216, "stop": []})").top_k == 16777216);
  REQUIRE(parsed(R"({"temperature": 1e-50})").temperature == 0.0f);  // greedy, as the float it becomes
  REQUIRE(!parsed(R"({"stream": true, "stream_options": {}})").include_usage);
}

TEST_CASE("A prompt is a string, strings, token ids or arrays of token ids", "[serve]") {
  auto p = parsed(R"({"prompt": ["a", "", "\u4e2d"]})").prompts;
  REQUIRE(p.size() == 3);
  REQUIRE(p[0].text == "a");
  REQUIRE(p[1].text.empty());
  REQUIRE(p[2].text == "\xe4\xb8\xad");
  for (const auto& q : p) REQUIRE(!q.is_tokens);

  p = parsed(R"({"prompt": [15496, 0, 50256]})").prompts;
  REQUIRE(p.size() == 1);
  REQUIRE(p[0].is_tokens);
  REQUIRE(p[0].tokens == std::vector<int>{15496, 0, 50256});
  REQUIRE(p[0].text.empty());

  p = parsed(R"({"prompt": [[1, 2], [3]]})").prompts;
  REQUIRE(p.size() == 2);
  REQUIRE(p[0].is_tokens);
  REQUIRE(p[0].tokens == std::vector<int>{1, 2});
  REQUIRE(p[1].tokens == std::vector<int>{3});

  RequestLimits small;
  small.max_prompts = 2;
  small.vocab_size = 10;
  REQUIRE(parsed(R"({"prompt": ["a", "b"]})", small).prompts.size() == 2);
  REQUIRE(parsed(R"({"prompt": [9, 9, 9]})", small).prompts.size() == 1);  // one prompt of 3 ids
}

TEST_CASE("A bad prompt is refused with the entry that is wrong", "[serve]") {
  REQUIRE(refused(R"({"prompt": []})") == "400 prompt -: prompt must not be an empty array");
  REQUIRE(refused(R"({"prompt": 5})") ==
          "400 prompt invalid_type: prompt must be a string or an array, not an integer");
  REQUIRE(refused(R"({"prompt": {"a": 1}})") ==
          "400 prompt invalid_type: prompt must be a string or an array, not an object");
  REQUIRE(refused(R"({"prompt": [true]})") ==
          "400 prompt invalid_type: prompt[0] must be a string, a token id or an array of token ids, not a "
          "boolean");
  REQUIRE(
      refused(R"({"prompt": [null]})") ==
      "400 prompt invalid_type: prompt[0] must be a string, a token id or an array of token ids, not null");
  REQUIRE(refused(R"({"prompt": ["a", 1]})") ==
          "400 prompt invalid_type: prompt[1] must be a string, not an integer");
  REQUIRE(refused(R"({"prompt": [1, "a"]})") ==
          "400 prompt invalid_type: prompt[1] must be an integer, not a string");
  REQUIRE(refused(R"({"prompt": [1, 2.5]})") ==
          "400 prompt invalid_type: prompt[1] must be an integer, not 2.5");
  REQUIRE(refused(R"({"prompt": [1, 2.0]})") ==
          "400 prompt invalid_type: prompt[1] must be an integer, not 2.0");
  REQUIRE(refused(R"({"prompt": [[1], 2]})") ==
          "400 prompt invalid_type: prompt[1] must be an array of token ids, not an integer");
  REQUIRE(refused(R"({"prompt": [[1], []]})") ==
          "400 prompt -: prompt[1] must not be an empty array of token ids");
  REQUIRE(refused(R"({"prompt": [[]]})") ==
          "400 prompt -: prompt[0] must not be an empty array of token ids");
  REQUIRE(refused(R"({"prompt": [[1, [2]]]})") ==
          "400 prompt invalid_type: prompt[0][1] must be an integer, not an array");
  REQUIRE(refused(R"({"prompt": [50257]})") ==
          "400 prompt -: prompt[0] 50257 is out of range: must be in 0..50256");
  REQUIRE(refused(R"({"prompt": [0, -1]})") ==
          "400 prompt -: prompt[1] -1 is out of range: must be in 0..50256");
  REQUIRE(refused(R"({"prompt": [[5], [1, 2, 1e30]]})") ==
          "400 prompt -: prompt[1][2] 1e+30 is out of range: must be in 0..50256");
  REQUIRE(refused(R"({"prompt": [18446744073709551615]})") ==
          "400 prompt -: prompt[0] 18446744073709551615 is out of range: must be in 0..50256");
  REQUIRE(refused(R"({"prompt": [-9223372036854775808]})") ==
          "400 prompt -: prompt[0] -9223372036854775808 is out of range: must be in 0..50256");
  RequestLimits small;
  small.max_prompts = 2;
  small.vocab_size = 10;
  REQUIRE(refused(R"({"prompt": ["a", "b", "c"]})", small) ==
          "400 prompt -: prompt has 3 entries: at most 2 are allowed");
  REQUIRE(refused(R"({"prompt": [[1], [2], [3]]})", small) ==
          "400 prompt -: prompt has 3 entries: at most 2 are allowed");
  REQUIRE(refused(R"({"prompt": [[1], [10]]})", small) ==
          "400 prompt -: prompt[1][0] 10 is out of range: must be in 0..9");
}

TEST_CASE("A body that is not a JSON object is refused, saying where it breaks", "[serve]") {
  REQUIRE(refused("") ==
          "400 - invalid_json: the body is not valid JSON at byte 0: unexpected end of input; "
          "expected '[', '{', or a literal");
  REQUIRE(refused("NaN") == "400 - invalid_json: the body is not valid JSON at byte 0: invalid literal");
  REQUIRE(refused(R"({"temperature": NaN})") ==
          "400 - invalid_json: the body is not valid JSON at byte 16: invalid literal");
  REQUIRE(refused(R"({"temperature": Infinity})") ==
          "400 - invalid_json: the body is not valid JSON at byte 16: invalid literal");
  REQUIRE(
      refused(R"({"temperature": -Infinity})") ==
      "400 - invalid_json: the body is not valid JSON at byte 17: invalid number; expected digit after '-'");
  // nlohmann refuses a number past double's range (it does not make it inf): bad JSON, said so.
  REQUIRE(refused(R"({"temperature": 1e400})") ==
          "400 - invalid_json: the body is not valid JSON at byte 20: "
          "number overflow parsing '1e400'");
  REQUIRE(refused(R"({"n": 1,})") ==
          "400 - invalid_json: the body is not valid JSON at byte 8: unexpected '}'; "
          "expected string literal");
  REQUIRE(refused(R"({"n": 1} x)") ==
          "400 - invalid_json: the body is not valid JSON at byte 9: invalid literal");
  REQUIRE(refused("{\"prompt\": \"a\x01\"}") ==
          "400 - invalid_json: the body is not valid JSON at byte 13: invalid string: control character "
          "U+0001 (SOH) "
          "must be escaped to \\u0001");
  REQUIRE(refused(R"({"prompt": "\ud800"})") ==
          "400 - invalid_json: the body is not valid JSON at byte 18: invalid string: surrogate "
          "U+D800..U+DBFF must "
          "be followed by U+DC00..U+DFFF");
  REQUIRE(refused(std::string(100, '[')) ==
          "400 - invalid_json: the body is not valid JSON at byte 100: unexpected end of input; expected "
          "'[', '{', "
          "or a literal");
  const std::string long_number = "{\"n\": 1e" + std::string(200, '9') + "}";
  REQUIRE(refused(long_number) ==
          "400 - invalid_json: the body is not valid JSON at byte 207: number overflow "
          "parsing '1e" +
              std::string(50, '9') + "...");  // cut to 80 characters
  // Invalid UTF-8 anywhere (a string, or outside one) is named as such, at its byte.
  REQUIRE(refused("{\"prompt\": \"ab\xff\"}") == "400 - invalid_json: invalid UTF-8 in the body at byte 14");
  REQUIRE(refused("{\"stop\": [\"\xc3\x28\"]}") ==
          "400 - invalid_json: invalid UTF-8 in the body at byte 11");
  REQUIRE(refused("{\"prompt\": \"\xed\xa0\x80\"}") ==
          "400 - invalid_json: invalid UTF-8 in the body at byte 12");
  REQUIRE(refused("{\"n\": \xe4\xb8\xad}") ==
          "400 - invalid_json: the body is not valid JSON at byte 6: invalid literal");
  REQUIRE(refused("{\"n\": \xe4\xb8}") == "400 - invalid_json: invalid UTF-8 in the body at byte 6");
  REQUIRE(refused("[1]") == "400 - invalid_type: the body must be a JSON object, not an array");
  REQUIRE(refused("\"text\"") == "400 - invalid_type: the body must be a JSON object, not a string");
  REQUIRE(refused("null") == "400 - invalid_type: the body must be a JSON object, not null");
  REQUIRE(refused("3") == "400 - invalid_type: the body must be a JSON object, not a scalar");
  REQUIRE(refused("\xef\xbb\xbf{}") == "accepted");  // a UTF-8 byte order mark is allowed
}

TEST_CASE("Integer fields refuse other types, fractions and values out of range", "[serve]") {
  REQUIRE(refused(R"({"max_tokens": "16"})") ==
          "400 max_tokens invalid_type: max_tokens must be an integer, not a string");
  REQUIRE(refused(R"({"max_tokens": true})") ==
          "400 max_tokens invalid_type: max_tokens must be an integer, not a boolean");
  REQUIRE(refused(R"({"max_tokens": [16]})") ==
          "400 max_tokens invalid_type: max_tokens must be an integer, not an array");
  REQUIRE(refused(R"({"max_tokens": 16.5})") ==
          "400 max_tokens invalid_type: max_tokens must be an integer, not 16.5");
  REQUIRE(refused(R"({"max_tokens": 16.0})") ==
          "400 max_tokens invalid_type: max_tokens must be an integer, not 16.0");
  REQUIRE(refused(R"({"max_tokens": -1})") ==
          "400 max_tokens -: max_tokens -1 is out of range: must be in 0..16777216");
  REQUIRE(refused(R"({"max_tokens": 16777217})") ==
          "400 max_tokens -: max_tokens 16777217 is out of range: must be in 0..16777216");
  REQUIRE(refused(R"({"max_tokens": 1e30})") ==
          "400 max_tokens -: max_tokens 1e+30 is out of range: must be in 0..16777216");
  REQUIRE(refused(R"({"max_tokens": 99999999999999999999})") ==
          "400 max_tokens -: max_tokens 1e+20 is out of range: must be in 0..16777216");
  REQUIRE(refused(R"({"max_tokens": 9223372036854775808})") ==
          "400 max_tokens -: max_tokens 9223372036854775808 is out of range: must be in 0..16777216");
  REQUIRE(refused(R"({"max_tokens": -9223372036854775808})") ==
          "400 max_tokens -: max_tokens -9223372036854775808 is out of range: must be in 0..16777216");
  RequestLimits limits;
  limits.max_tokens = 100;
  REQUIRE(refused(R"({"max_tokens": 101})", limits) ==
          "400 max_tokens -: max_tokens 101 is out of range: must be in 0..100");
  REQUIRE(refused(R"({"top_k": -2})") == "400 top_k -: top_k -2 is out of range: must be in -1..16777216");
  REQUIRE(refused(R"({"top_k": 16777217})") ==
          "400 top_k -: top_k 16777217 is out of range: must be in -1..16777216");
  REQUIRE(refused(R"({"top_k": 1.5})") == "400 top_k invalid_type: top_k must be an integer, not 1.5");
  REQUIRE(refused(R"({"n": 0})") == "400 n -: n 0 is out of range: must be in 1..128");
  REQUIRE(refused(R"({"n": 129})") == "400 n -: n 129 is out of range: must be in 1..128");
  REQUIRE(refused(R"({"n": "2"})") == "400 n invalid_type: n must be an integer, not a string");
  REQUIRE(refused(R"({"logprobs": 21})") == "400 logprobs -: logprobs 21 is out of range: must be in 0..20");
  REQUIRE(refused(R"({"logprobs": -1})") == "400 logprobs -: logprobs -1 is out of range: must be in 0..20");
  REQUIRE(refused(R"({"logprobs": true})") ==
          "400 logprobs invalid_type: logprobs must be an integer, not a boolean");
}

TEST_CASE("The seed is any integer in 0..2^64-1, nothing else", "[serve]") {
  REQUIRE(*parsed(R"({"seed": 42})").seed == 42);
  REQUIRE(refused(R"({"seed": -1})") ==
          "400 seed -: seed -1 is out of range: must be in 0..18446744073709551615");
  REQUIRE(refused(R"({"seed": 18446744073709551616})") ==
          "400 seed -: seed 1.8446744073709552e+19 is out of range: must be in 0..18446744073709551615");
  REQUIRE(refused(R"({"seed": -1e30})") ==
          "400 seed -: seed -1e+30 is out of range: must be in 0..18446744073709551615");
  REQUIRE(refused(R"({"seed": 1.5})") == "400 seed invalid_type: seed must be an integer, not 1.5");
  REQUIRE(refused(R"({"seed": 1e19})") == "400 seed invalid_type: seed must be an integer, not 1e+19");
  REQUIRE(refused(R"({"seed": "7"})") == "400 seed invalid_type: seed must be an integer, not a string");
  REQUIRE(refused(R"({"seed": false})") == "400 seed invalid_type: seed must be an integer, not a boolean");
}

TEST_CASE("temperature and top_p are numbers in their ranges", "[serve]") {
  REQUIRE(refused(R"({"temperature": 2.5})") ==
          "400 temperature -: temperature 2.5 is out of range: must be in 0..2");
  REQUIRE(refused(R"({"temperature": -0.1})") ==
          "400 temperature -: temperature -0.1 is out of range: must be in 0..2");
  REQUIRE(refused(R"({"temperature": 2.0000001})") ==
          "400 temperature -: temperature 2.0000001 is out of range: must be in 0..2");
  REQUIRE(refused(R"({"temperature": "1"})") ==
          "400 temperature invalid_type: temperature must be a number, not a string");
  REQUIRE(refused(R"({"temperature": true})") ==
          "400 temperature invalid_type: temperature must be a number, not a boolean");
  REQUIRE(refused(R"({"temperature": 18446744073709551615})") ==
          "400 temperature -: temperature 18446744073709551615 is out of range: must be in 0..2");
  REQUIRE(refused(R"({"top_p": 0})") == "400 top_p -: top_p 0 is out of range: must be in (0, 1]");
  REQUIRE(refused(R"({"top_p": 1e-46})") ==
          "400 top_p -: top_p 1e-46 is out of range: must be in (0, 1]");  // float 0
  REQUIRE(refused(R"({"top_p": 1.5})") == "400 top_p -: top_p 1.5 is out of range: must be in (0, 1]");
  REQUIRE(refused(R"({"top_p": -1})") == "400 top_p -: top_p -1 is out of range: must be in (0, 1]");
  REQUIRE(refused(R"({"top_p": {}})") == "400 top_p invalid_type: top_p must be a number, not an object");
  REQUIRE(parsed(R"({"top_p": 1e-40})").top_p > 0.0f);  // a float denormal, still above 0
}

TEST_CASE("Booleans, strings, stop and stream_options refuse other types", "[serve]") {
  REQUIRE(refused(R"({"stream": "true"})") ==
          "400 stream invalid_type: stream must be a boolean, not a string");
  REQUIRE(refused(R"({"echo": 1})") == "400 echo invalid_type: echo must be a boolean, not an integer");
  REQUIRE(refused(R"({"ignore_eos": 0.0})") ==
          "400 ignore_eos invalid_type: ignore_eos must be a boolean, not a number");
  REQUIRE(refused(R"({"model": 5})") == "400 model invalid_type: model must be a string, not an integer");
  REQUIRE(refused(R"({"user": ["x"]})") == "400 user invalid_type: user must be a string, not an array");
  REQUIRE(refused(R"({"stream_options": {"include_usage": true}})") ==
          "400 stream_options -: stream_options is only allowed when stream is true");
  REQUIRE(refused(R"({"stream": false, "stream_options": {}})") ==
          "400 stream_options -: stream_options is only allowed when stream is true");
  REQUIRE(refused(R"({"stream": true, "stream_options": true})") ==
          "400 stream_options invalid_type: stream_options must be an object, not a boolean");
  REQUIRE(refused(R"({"stream": true, "stream_options": {"include_usage": "yes"}})") ==
          "400 stream_options.include_usage invalid_type: stream_options.include_usage must be a boolean, "
          "not a string");
  REQUIRE(refused(R"({"stop": ""})") == "400 stop -: stop must not be an empty string");
  REQUIRE(refused(R"({"stop": ["a", ""]})") == "400 stop -: stop[1] must not be an empty string");
  REQUIRE(refused(R"({"stop": ["a", 1]})") ==
          "400 stop invalid_type: stop[1] must be a string, not an integer");
  REQUIRE(refused(R"({"stop": 5})") ==
          "400 stop invalid_type: stop must be a string or an array of strings, not an integer");
  REQUIRE(refused(R"({"stop": ["a", "b", "c", "d", "e"]})") ==
          "400 stop -: stop has 5 entries: at most 4 are allowed");
  RequestLimits one;
  one.max_stop = 1;
  REQUIRE(refused(R"({"stop": ["a", "b"]})", one) == "400 stop -: stop has 2 entries: at most 1 are allowed");
  REQUIRE(refused(R"({"stop": "ab"})", one) == "accepted");
}

TEST_CASE("OpenAI fields gen does not implement are refused unless at their defaults", "[serve]") {
  REQUIRE(refused(R"({"best_of": 2})") ==
          "400 best_of unsupported_parameter: best_of other than 1 is not supported");
  REQUIRE(refused(R"({"best_of": 0})") ==
          "400 best_of unsupported_parameter: best_of other than 1 is not supported");
  REQUIRE(refused(R"({"best_of": "1"})") ==
          "400 best_of invalid_type: best_of must be an integer, not a string");
  REQUIRE(refused(R"({"best_of": 1.0})") == "400 best_of invalid_type: best_of must be an integer, not 1.0");
  REQUIRE(refused(R"({"suffix": "x"})") == "400 suffix unsupported_parameter: suffix is not supported");
  REQUIRE(refused(R"({"suffix": ""})") == "400 suffix unsupported_parameter: suffix is not supported");
  REQUIRE(refused(R"({"logit_bias": {"50256": -100}})") ==
          "400 logit_bias unsupported_parameter: logit_bias is not supported");
  REQUIRE(refused(R"({"logit_bias": []})") ==
          "400 logit_bias invalid_type: logit_bias must be an object, not an array");
  REQUIRE(refused(R"({"frequency_penalty": 0.5})") ==
          "400 frequency_penalty unsupported_parameter: frequency_penalty other than 0 is not supported");
  REQUIRE(refused(R"({"presence_penalty": -2})") ==
          "400 presence_penalty unsupported_parameter: presence_penalty other than 0 is not supported");
  REQUIRE(refused(R"({"presence_penalty": "0"})") ==
          "400 presence_penalty invalid_type: presence_penalty must be a number, not a string");
  REQUIRE(refused(R"({"frequency_penalty": -0.0, "best_of": 1})") == "accepted");
}

TEST_CASE("Error bodies are one line of OpenAI's shape, with the type from the status", "[serve]") {
  REQUIRE(
      error_body(ApiError(400, "temperature 2.5 is out of range: must be in 0..2", "temperature")) ==
      R"({"error":{"message":"temperature 2.5 is out of range: must be in 0..2","type":"invalid_request_error",)"
      R"("param":"temperature","code":null}})");
  REQUIRE(error_body(ApiError(404, "model \"x\" not found", "model", "model_not_found")) ==
          R"({"error":{"message":"model \"x\" not found","type":"invalid_request_error","param":"model",)"
          R"("code":"model_not_found"}})");
  REQUIRE(
      error_body(ApiError(401, "bad key\nsecond line")) ==
      R"({"error":{"message":"bad key\nsecond line","type":"authentication_error","param":null,"code":null}})");
  REQUIRE(error_body(ApiError(503, "busy", "", "", "overloaded_error")) ==
          R"({"error":{"message":"busy","type":"overloaded_error","param":null,"code":null}})");
  // A message with invalid UTF-8 still makes a valid body (U+FFFD in its place).
  REQUIRE(error_body(ApiError(500, "bad \xff byte")) ==
          "{\"error\":{\"message\":\"bad \xef\xbf\xbd "
          "byte\",\"type\":\"server_error\",\"param\":null,\"code\":null}}");
  const ApiError e(413, "too big", "", "too_large");
  REQUIRE(e.status() == 413);
  REQUIRE(e.type() == "invalid_request_error");
  REQUIRE(e.param().empty());
  REQUIRE(e.code() == "too_large");
  REQUIRE(ApiError(500, "x").type() == "server_error");
  REQUIRE(ApiError(429, "x").type() == "invalid_request_error");
}

TEST_CASE("/tokenize and /detokenize bodies", "[serve]") {
  TokenizeRequest t =
      parse_tokenize_request(R"({"content": "Hello world", "add_special": true, "with_pieces": true})");
  REQUIRE(t.content == "Hello world");
  REQUIRE(t.with_pieces);
  t = parse_tokenize_request(R"({"content": "", "with_pieces": null, "extra": 1})");
  REQUIRE(t.content.empty());
  REQUIRE(!t.with_pieces);
  auto tok = [](const std::string& body) { return refusal([&] { parse_tokenize_request(body); }); };
  REQUIRE(tok("{}") == "400 content -: content is required");
  REQUIRE(tok(R"({"content": null})") == "400 content -: content is required");
  REQUIRE(tok(R"({"content": [1]})") == "400 content invalid_type: content must be a string, not an array");
  REQUIRE(tok(R"({"content": "a", "with_pieces": 1})") ==
          "400 with_pieces invalid_type: with_pieces must be a boolean, not an integer");
  REQUIRE(tok(R"({"content": "a", "add_special": "no"})") ==
          "400 add_special invalid_type: add_special must be a boolean, not a string");
  REQUIRE(tok("{\"content\": \"\xc0\xaf\"}") == "400 - invalid_json: invalid UTF-8 in the body at byte 13");
  REQUIRE(tok("[]") == "400 - invalid_type: the body must be a JSON object, not an array");

  const RequestLimits limits;
  REQUIRE(parse_detokenize_request(R"({"tokens": [15496, 0, 50256]})", limits) ==
          std::vector<int>{15496, 0, 50256});
  REQUIRE(parse_detokenize_request(R"({"tokens": []})", limits).empty());
  auto detok = [&](const std::string& body) {
    return refusal([&] { parse_detokenize_request(body, limits); });
  };
  REQUIRE(detok("{}") == "400 tokens -: tokens is required");
  REQUIRE(detok(R"({"tokens": "15496"})") ==
          "400 tokens invalid_type: tokens must be an array of token ids, not a string");
  REQUIRE(detok(R"({"tokens": [1, 50257]})") ==
          "400 tokens -: tokens[1] 50257 is out of range: must be in 0..50256");
  REQUIRE(detok(R"({"tokens": [-5]})") == "400 tokens -: tokens[0] -5 is out of range: must be in 0..50256");
  REQUIRE(detok(R"({"tokens": [1, 2.5]})") ==
          "400 tokens invalid_type: tokens[1] must be an integer, not 2.5");
  REQUIRE(detok(R"({"tokens": [[1]]})") ==
          "400 tokens invalid_type: tokens[0] must be an integer, not an array");
  REQUIRE(detok("{\"tokens\": [1,]}") ==
          "400 - invalid_json: the body is not valid JSON at byte 14: unexpected ']'; expected '[', '{', or "
          "a literal");
}
