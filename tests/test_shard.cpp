// --shard K/N|slurm, the run fingerprint, the --output file of a shard, and gen merge's rules.
#include <catch2/catch.hpp>
#include <cstring>
#include <map>
#include <string>

#include "cli/batch_output.h"
#include "cli/merge.h"
#include "cli/shard.h"
#include "gen/error.h"
#include "test_util.h"

using namespace gen;
using gen::test::TempDir;

namespace {

std::map<std::string, std::string> g_env;
const char* fake_getenv(const char* name) {
  auto it = g_env.find(name);
  return it == g_env.end() ? nullptr : it->second.c_str();
}

// A result line of `run` for index i (sample s; -1: none), its text `text`, with timing `ms`.
std::string line(int i, const std::string& run, const std::string& text = "x", int s = -1, double ms = 1) {
  std::string l = "{\"index\": " + std::to_string(i) + ", \"run\": \"" + run + "\", \"text\": \"" + text +
                  "\", \"timing\": {\"total_ms\": " + std::to_string(ms) + "}, \"device\": \"cpu\"";
  if (s >= 0) l += ", \"sample\": " + std::to_string(s);
  return l + "}";
}

}  // namespace

TEST_CASE("A shard K/N takes the indices i % N == K, positions and counts follow", "[shard]") {
  const Shard s = parse_shard("1/4");
  REQUIRE(s.k == 1);
  REQUIRE(s.n == 4);
  REQUIRE(s.contains(1));
  REQUIRE(s.contains(9));
  REQUIRE(!s.contains(0));
  REQUIRE(!s.contains(4));
  REQUIRE(s.position(9) == 2);  // 1, 5, 9
  REQUIRE(s.count(40) == 10);
  REQUIRE(s.count(10) == 3);    // 1, 5, 9
  REQUIRE(s.count(1) == 0);
  REQUIRE(parse_shard("3/4").count(3) == 0);
  REQUIRE(parse_shard("3/4").count(4) == 1);
  REQUIRE(Shard{}.count(7) == 7);
  REQUIRE(parse_shard("0/1").contains(12345));
  REQUIRE_THROWS_WITH(parse_shard("4/4"), Catch::Contains("out of range: K must be in 0..3"));
  for (const char* bad : {"", "1", "1/", "/4", "-1/4", "1/0", "a/b", "1/4x", "1 /4", "0x1/4", "1/99999999999"}) {
    CAPTURE(bad);
    REQUIRE_THROWS_AS(parse_shard(bad), InputError);
  }
}

TEST_CASE("A Slurm shard (--shard slurm) reads the array task's id, min and count", "[shard]") {
  g_env = {};
  REQUIRE_THROWS_WITH(parse_shard("slurm", fake_getenv), Catch::Contains("not in a Slurm array job"));
  g_env = {{"SLURM_ARRAY_TASK_ID", "7"}, {"SLURM_ARRAY_TASK_MIN", "5"}, {"SLURM_ARRAY_TASK_COUNT", "4"}};
  const Shard s = parse_shard("slurm", fake_getenv);
  REQUIRE(s.k == 2);
  REQUIRE(s.n == 4);
  g_env["SLURM_ARRAY_TASK_MAX"] = "8";
  g_env["SLURM_ARRAY_TASK_STEP"] = "1";
  REQUIRE(parse_shard("slurm", fake_getenv).k == 2);
  // --array=0-10:2 (6 tasks): every task refuses it, task 2 too, whose id alone would fit.
  g_env = {{"SLURM_ARRAY_TASK_ID", "2"}, {"SLURM_ARRAY_TASK_MIN", "0"}, {"SLURM_ARRAY_TASK_MAX", "10"},
           {"SLURM_ARRAY_TASK_COUNT", "6"}, {"SLURM_ARRAY_TASK_STEP", "2"}};
  REQUIRE_THROWS_WITH(parse_shard("slurm", fake_getenv), Catch::Contains("--array=A-B"));
  g_env.erase("SLURM_ARRAY_TASK_STEP");  // --array=0,2,4,6,8,10: a list, max - min + 1 != count
  REQUIRE_THROWS_WITH(parse_shard("slurm", fake_getenv), Catch::Contains("--array=A-B"));
  g_env = {{"SLURM_ARRAY_TASK_ID", "7"}, {"SLURM_ARRAY_TASK_MIN", "5"}, {"SLURM_ARRAY_TASK_COUNT", "4"}};
  g_env["SLURM_ARRAY_TASK_ID"] = "9";  // --array=5-8 has no task 9 (a step or a list)
  REQUIRE_THROWS_WITH(parse_shard("slurm", fake_getenv), Catch::Contains("--array=A-B"));
  g_env["SLURM_ARRAY_TASK_ID"] = "4";
  REQUIRE_THROWS_WITH(parse_shard("slurm", fake_getenv), Catch::Contains("is not 4 consecutive ids"));
  g_env["SLURM_ARRAY_TASK_ID"] = "x";
  REQUIRE_THROWS_WITH(parse_shard("slurm", fake_getenv), Catch::Contains("must be numbers"));
  g_env = {{"SLURM_ARRAY_TASK_ID", "0"}, {"SLURM_ARRAY_TASK_MIN", "0"}};  // no count
  REQUIRE_THROWS_WITH(parse_shard("slurm", fake_getenv), Catch::Contains("must be numbers"));
}

TEST_CASE("The run fingerprint changes with the inputs and with each setting, not with key order", "[shard]") {
  const nlohmann::json a{{"seed", 1}, {"temperature", 0.5}};
  const nlohmann::json b{{"temperature", 0.5}, {"seed", 1}};
  REQUIRE(run_fingerprint("h", a) == run_fingerprint("h", b));
  REQUIRE(run_fingerprint("h", a).size() == 16);
  REQUIRE(run_fingerprint("g", a) != run_fingerprint("h", a));
  REQUIRE(run_fingerprint("h", {{"seed", 2}, {"temperature", 0.5}}) != run_fingerprint("h", a));
  REQUIRE(hash_bytes("a\n") != hash_bytes("a"));
}

TEST_CASE("A shard's --output refuses another shard's lines and another run's", "[shard]") {
  TempDir d;
  const auto prompts = parse_prompts("a\nb\nc\nd\ne\n", false);
  const std::string out = d / "s1.jsonl";
  {
    BatchOutput o(out, false, prompts, parse_shard("1/2"));
    o.write_line(1, 0, "{\"index\": 1, \"prompt\": \"b\", \"run\": \"r1\"}");
    o.write_line(3, 0, "{\"index\": 3, \"prompt\": \"d\", \"run\": \"r1\"}");
  }
  {
    BatchOutput o(out, true, prompts, parse_shard("1/2"));
    REQUIRE(o.done(3, 0));
    REQUIRE(o.done_count() == 2);
    REQUIRE_NOTHROW(o.check_run("r1"));
    REQUIRE_THROWS_WITH(o.check_run("r2"), Catch::Contains("another run (run r1, this run is r2)") &&
                                               Catch::Contains("s1.jsonl:1"));
  }
  REQUIRE_THROWS_WITH(BatchOutput(out, true, prompts, parse_shard("0/2")),
                      Catch::Contains("index 1 is not in shard 0/2") && Catch::Contains("s1.jsonl:1"));
}

TEST_CASE("gen merge puts the shards in index order and drops equal duplicates", "[merge]") {
  const MergeResult r = merge_runs({{"a", line(2, "r") + "\n" + line(0, "r") + "\n"},
                                    {"b", line(1, "r") + "\n" + line(2, "r", "x", -1, 99) + "\n"},
                                    {"c", ""}},
                                   3);
  REQUIRE(r.lines == std::vector<std::string>{line(0, "r"), line(1, "r"), line(2, "r")});  // the first of a pair
  REQUIRE(r.duplicates == 1);  // the same result, other timing
  REQUIRE(r.indices == 3);
  REQUIRE(r.missing_count == 0);
  REQUIRE(r.run == "r");
}

TEST_CASE("gen merge lists what is missing, and refuses other runs and disagreeing duplicates", "[merge]") {
  const MergeResult r = merge_runs({{"a", line(0, "r") + "\n" + line(4, "r") + "\n" + line(8, "r") + "\n"}}, 10);
  REQUIRE(r.missing_count == 7);
  REQUIRE(r.missing == std::vector<std::string>{"1-3, 5-7, 9"});
  REQUIRE(merge_runs({{"a", line(0, "r") + "\n" + line(5, "r") + "\n"}}, -1).missing ==
          std::vector<std::string>{"1-4"});  // without --expect: the gaps below the highest
  REQUIRE_THROWS_WITH(merge_runs({{"a", line(0, "r") + "\n"}, {"b", line(1, "q") + "\n"}}, -1),
                      Catch::Contains("another run than a:1 (run q, not r)") && Catch::Contains("(b:1)"));
  REQUIRE_THROWS_WITH(merge_runs({{"a", line(0, "r") + "\n"}, {"b", line(0, "r", "y") + "\n"}}, -1),
                      Catch::Contains("index 0 is also in a:1 with a different result") && Catch::Contains("(b:1)"));
  const std::string err = "{\"index\": 0, \"run\": \"r\", \"error\": \"too long\"}";
  REQUIRE_THROWS_WITH(merge_runs({{"a", line(0, "r") + "\n"}, {"b", err + "\n"}}, -1),
                      Catch::Contains("different result"));
  REQUIRE(merge_runs({{"a", err + "\n" + err + "\n"}}, 1).lines.size() == 1);
  REQUIRE_THROWS_WITH(merge_runs({{"a", line(10, "r") + "\n"}}, 10), Catch::Contains("beyond --expect 10"));
  REQUIRE_THROWS_WITH(merge_runs({{"a", "{\"index\": 0}\n"}}, -1), Catch::Contains("no \"run\""));
  REQUIRE_THROWS_WITH(merge_runs({{"a", "{\"index\": -1, \"run\": \"r\"}\n"}}, -1), Catch::Contains("not a gen result line"));
  REQUIRE_THROWS_WITH(merge_runs({{"a", "nonsense\n"}}, -1), Catch::Contains("not a JSON line (a:1)"));
}

TEST_CASE("gen merge: samples, error lines and a task killed mid-line", "[merge]") {
  const std::string err = "{\"index\": 1, \"run\": \"r\", \"error\": \"too long\"}";
  const MergeResult r =
      merge_runs({{"a", line(0, "r", "x", 1) + "\n" + err + "\n" + line(2, "r", "x", 0) + "\n" + "{\"index\": 2, \"ru"},
                  {"b", line(0, "r", "x", 0) + "\n"}},
                 4);
  REQUIRE(r.samples == 2);
  REQUIRE(r.lines == std::vector<std::string>{line(0, "r", "x", 0), line(0, "r", "x", 1), err, line(2, "r", "x", 0)});
  REQUIRE(r.notes.size() == 1);
  REQUIRE(r.notes[0] == "a:4: dropped a partial last line (16 bytes)");
  REQUIRE(r.missing_count == 3);  // 2's sample 1, 3's two samples; 1's error line stands for both
  REQUIRE(r.missing == std::vector<std::string>{"3", "2 (sample 1)"});
  // "samples" says K: a sample missing from every index is still missed.
  const std::string s0 = line(0, "r", "x", 0), s1 = line(1, "r", "x", 0);
  auto with_k = [](std::string l) { return l.substr(0, l.size() - 1) + ", \"samples\": 2}"; };
  const MergeResult k2 = merge_runs({{"a", with_k(s0) + "\n" + with_k(s1) + "\n"}}, 2);
  REQUIRE(k2.samples == 2);
  REQUIRE(k2.missing_count == 2);
  REQUIRE(k2.missing == std::vector<std::string>{"0 (sample 1)", "1 (sample 1)"});
  REQUIRE_THROWS_WITH(merge_runs({{"a", line(0, "r", "x", 2).substr(0, s0.size() - 1) + ", \"samples\": 2}\n"}}, -1),
                      Catch::Contains("not the run's sample count"));
  // A complete last line without its newline is kept.
  REQUIRE(merge_runs({{"a", line(0, "r")}}, 1).lines.size() == 1);
}

TEST_CASE("Missing indices print as ranges, cut after a limit", "[merge]") {
  REQUIRE(ranges_text({1, 2, 3, 5, 7, 8}, 10) == "1-3, 5, 7, 8");
  REQUIRE(ranges_text({}, 10).empty());
  REQUIRE(ranges_text({1, 3, 5, 7}, 2) == "1, 3, ... (2 more)");
}
