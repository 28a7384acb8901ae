// The --prompts-file reader and the --output file that --resume continues.
#include <catch2/catch.hpp>

#include "cli/batch.h"
#include "gen/error.h"
#include "gen/prompts.h"
#include "test_util.h"

using namespace gen;
using namespace gen::test;

TEST_CASE("Plain prompt files: one prompt a line, literally, blank lines skipped", "[prompts]") {
  auto p = parse_prompts("first\r\n\n  \nsecond line  \n\t\nthird \\n not a newline", false);
  REQUIRE(p.size() == 3);
  REQUIRE(p[0].text == "first");
  REQUIRE(p[1].text == "second line  ");
  REQUIRE(p[1].index == 1);
  REQUIRE(p[1].line == 4);
  REQUIRE(p[2].text == "third \\n not a newline");
  REQUIRE(p[2].line == 6);
  for (const auto& q : p) REQUIRE(q.error.empty());
  REQUIRE(parse_prompts("", false).empty());
  REQUIRE(parse_prompts("\n\n\r\n", false).empty());
}

TEST_CASE("A bad line is that prompt's error, and the others are read", "[prompts]") {
  auto p = parse_prompts("ok\nbad \xff byte\nok too\n", false);
  REQUIRE(p.size() == 3);
  REQUIRE(p[1].error == "invalid UTF-8 at byte 4 of line 2");
  REQUIRE(p[2].text == "ok too");
  REQUIRE(p[2].error.empty());
}

TEST_CASE("JSON-lines prompt files carry prompts with newlines and per-prompt settings", "[prompts]") {
  const std::string content =
      "{\"prompt\": \"two\\nlines\", \"max_new_tokens\": 7, \"temperature\": 0.5, \"seed\": 18446744073709551615, "
      "\"top_k\": 3, \"top_p\": 0.9, \"stop\": [\"\\n\", \"END\"]}\n"
      "{\"prompt\": \"\"}\n"
      "[1, 2]\n"
      "{\"prompt\": 5}\n"
      "{\"prompt\": \"x\", \"max_new_tokens\": 1.5}\n"
      "{\"prompt\": \"x\", \"temperature\": -1}\n"
      "{\"prompt\": \"x\", \"top_p\": 0}\n"
      "{\"prompt\": \"x\"\n"
      "{\"prompt\": \"x\", \"id\": 3}\n"
      "{\"prompt\": \"x\", \"stop\": \"\"}\n"
      "{\"prompt\": \"x\", \"seed\": 18446744073709551616}\n"
      "{\"prompt\": \"x\", \"stop\": \"END\"}\n";
  auto p = parse_prompts(content, true);
  REQUIRE(p.size() == 12);
  REQUIRE(p[0].text == "two\nlines");
  REQUIRE(*p[0].max_new_tokens == 7);
  REQUIRE(*p[0].temperature == 0.5f);
  REQUIRE(*p[0].seed == 18446744073709551615ull);
  REQUIRE(*p[0].top_k == 3);
  REQUIRE(*p[0].top_p == 0.9f);
  REQUIRE(p[0].error.empty());
  REQUIRE(*p[0].stop == std::vector<std::string>{"\n", "END"});
  REQUIRE(p[1].text.empty());  // an empty prompt starts from <|endoftext|>, as on the command line
  REQUIRE(p[1].error.empty());
  REQUIRE(!p[1].max_new_tokens);
  REQUIRE(p[2].error == "not a JSON object (line 3)");
  REQUIRE(p[3].error == "no \"prompt\" string (line 4)");
  REQUIRE(p[4].error == "\"max_new_tokens\" must be an integer (line 5)");
  REQUIRE(p[5].error == "\"temperature\" -1 is out of range: must be in [0, 100] (line 6)");
  REQUIRE(p[6].error == "\"top_p\" 0 is out of range: must be in (0, 1] (line 7)");
  REQUIRE(p[7].error == "not valid JSON (line 8)");
  REQUIRE(p[8].error == "unknown key \"id\" (prompt, max_new_tokens, temperature, top_k, top_p, seed, stop) (line 9)");
  REQUIRE(p[9].error == "\"stop\" must be a non-empty string or an array of them (line 10)");
  REQUIRE(p[10].error == "\"seed\" 1.8446744073709552e+19 is out of range: must be in 0..18446744073709551615 (line 11)");
  REQUIRE(p[11].error.empty());
  REQUIRE(*p[11].stop == std::vector<std::string>{"END"});
}

TEST_CASE("read_prompts_file refuses a missing or prompt-less file", "[prompts]") {
  TempDir d;
  REQUIRE_THROWS_WITH(read_prompts_file(d / "none.txt"), Catch::Contains("cannot read prompts file"));
  write_file(d / "blank.txt", "\n \n");
  REQUIRE_THROWS_WITH(read_prompts_file(d / "blank.txt"), Catch::Contains("no prompts in the file"));
  write_file(d / "a.jsonl", "{\"prompt\": \"hi\"}\n");
  REQUIRE(read_prompts_file(d / "a.jsonl").at(0).text == "hi");
  write_file(d / "a.txt", "{\"prompt\": \"hi\"}\n");
  REQUIRE(read_prompts_file(d / "a.txt").at(0).text == "{\"prompt\": \"hi\"}");  // .txt: literal
}

TEST_CASE("The output file keeps whole lines, and resuming skips the finished indices of the same prompts", "[prompts]") {
  TempDir d;
  const auto prompts = parse_prompts("a\nb\nc\n", false);
  const std::string out = d / "out.jsonl";
  {
    BatchOutput o(out, false, prompts);
    o.write_line(1, 0, "{\"index\": 1, \"prompt\": \"b\", \"text\": \"x\"}");
  }
  REQUIRE_THROWS_WITH(BatchOutput(out, false, prompts), Catch::Contains("pass --resume"));
  // A kill in the middle of a line: the partial line is cut, its prompt runs again.
  write_file(out, read_file(out) + "{\"index\": 2, \"prompt\": \"c\", \"te");
  {
    BatchOutput o(out, true, prompts);
    REQUIRE(o.done(1, 0));
    REQUIRE(!o.done(1, 1));  // another sample of it (--samples 2) still runs
    REQUIRE(!o.done(0, 0));
    REQUIRE(!o.done(2, 0));
    REQUIRE(o.done_count() == 1);
    o.write_line(0, -1, "{\"index\": 0, \"prompt\": \"a\", \"error\": \"too long\"}");
  }
  REQUIRE(read_file(out) ==
          "{\"index\": 1, \"prompt\": \"b\", \"text\": \"x\"}\n{\"index\": 0, \"prompt\": \"a\", \"error\": \"too long\"}\n");
  {
    BatchOutput o(out, true, prompts);
    REQUIRE(o.done_count() == 2);
    REQUIRE(o.failed_before() == 1);
    REQUIRE(o.done(0, 0));
    REQUIRE(o.done(0, 3));  // an error line stands for every sample of its prompt
  }
  const auto other = parse_prompts("a\nB\nc\n", false);
  REQUIRE_THROWS_WITH(BatchOutput(out, true, other), Catch::Contains("index 1 holds a different prompt") && Catch::Contains("out.jsonl:1"));
  const auto fewer = parse_prompts("a\n", false);
  REQUIRE_THROWS_WITH(BatchOutput(out, true, fewer), Catch::Contains("beyond the 1 prompts"));
  write_file(out, "garbage\n");
  REQUIRE_THROWS_WITH(BatchOutput(out, true, prompts), Catch::Contains("not a gen result line"));
  REQUIRE_THROWS_WITH(BatchOutput(d / "no/such/dir.jsonl", false, prompts), Catch::Contains("cannot write"));
}
