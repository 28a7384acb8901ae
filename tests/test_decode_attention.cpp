// cpu::attention_decode: queries over caches whose first positions are copies of one sequence's,
// computed in groups (the shared positions read once) and one by one, by the AVX-512 path (D = 64,
// where the CPU has it) and the plain loops: every output bit equal, and the values those of float64.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <vector>

#include "cpu/attention_plan.h"
#include "cpu/decode_attention.h"
#include "random_inputs.h"
#include "test_util.h"

using namespace gen;
using gen::test::check_close;
using gen::test::poisoned;
using gen::test::random_normal;

namespace {

// B caches of [H][ctx][D]; each sequence's positions [0, shared) copied from sequence 0.
struct Caches {
  int B, H, D, ctx;
  std::vector<float> k, v;
  Caches(int B_, int H_, int D_, int ctx_, int shared, uint32_t seed)
      : B(B_), H(H_), D(D_), ctx(ctx_), k(random_normal(size_t(B_) * H_ * ctx_ * D_, seed)),
        v(random_normal(k.size(), seed + 1)) {
    for (int b = 1; b < B; ++b)
      for (int h = 0; h < H; ++h) {
        const size_t from = size_t(h) * ctx * D, to = (size_t(b) * H + h) * ctx * D;
        std::copy(k.begin() + long(from), k.begin() + long(from + size_t(shared) * D), k.begin() + long(to));
        std::copy(v.begin() + long(from), v.begin() + long(from + size_t(shared) * D), v.begin() + long(to));
      }
  }
  const float* K(int b) const { return k.data() + size_t(b) * H * ctx * D; }
  const float* V(int b) const { return v.data() + size_t(b) * H * ctx * D; }
};

// One query per (sequence, row): sequence b has `rows` rows, row t attends [0, n0 + b + t].
struct Queries {
  std::vector<float> q;
  std::vector<cpu::DecodeQuery> list;
  std::vector<std::vector<float>> outs;
  Queries(const Caches& c, int rows, int n0, uint32_t seed) : q(random_normal(size_t(c.B) * rows * c.H * c.D, seed)) {
    const int C = c.H * c.D;
    for (int b = 0; b < c.B; ++b)
      for (int t = 0; t < rows; ++t) list.push_back({nullptr, q.data() + (size_t(b) * rows + t) * C, c.K(b), c.V(b),
                                                     c.ctx, n0 + b + t + 1});
  }
  // Runs attention_decode with these groups; returns the outputs [query][C].
  std::vector<float> run(const Caches& c, const std::vector<cpu::DecodeGroup>& groups, bool plain, int threads = 2) {
    const int C = c.H * c.D;
    std::vector<float> out = poisoned<float>(list.size() * C);
    for (size_t i = 0; i < list.size(); ++i) list[i].out = out.data() + i * C;
    int n_max = 1;
    for (const auto& x : list) n_max = std::max(n_max, x.n);
    std::vector<float> scratch(size_t(threads) * cpu::decode_scratch_floats(cpu::kDecodeChunk, n_max, c.D));
    std::vector<cpu::DecodeItem> items;
    cpu::attention_decode(list, groups, c.H, c.D, scratch.data(), threads, &items, plain);
    return out;
  }
  // float64 softmax(q K^T / sqrt(D)) V of every query, from its own cache.
  std::vector<float> reference(const Caches& c) const {
    const int C = c.H * c.D;
    std::vector<float> ref(list.size() * C);
    for (size_t i = 0; i < list.size(); ++i)
      for (int h = 0; h < c.H; ++h) {
        const cpu::DecodeQuery& x = list[i];
        const float* K = x.k_cache + size_t(h) * c.ctx * c.D;
        const float* V = x.v_cache + size_t(h) * c.ctx * c.D;
        std::vector<double> s(size_t(x.n));
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < x.n; ++j) {
          double d = 0;
          for (int e = 0; e < c.D; ++e) d += double(x.q[h * c.D + e]) * K[size_t(j) * c.D + e];
          s[size_t(j)] = d / std::sqrt(double(c.D));
          mx = std::max(mx, s[size_t(j)]);
        }
        for (double& e : s) sum += (e = std::exp(e - mx));
        for (int e = 0; e < c.D; ++e) {
          double o = 0;
          for (int j = 0; j < x.n; ++j) o += s[size_t(j)] / sum * V[size_t(j) * c.D + e];
          ref[i * C + size_t(h) * c.D + size_t(e)] = float(o);
        }
      }
    return ref;
  }
};

std::vector<cpu::DecodeGroup> singles(int n) {
  std::vector<cpu::DecodeGroup> g;
  for (int i = 0; i < n; ++i) g.push_back({i, 1, 0});
  return g;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("Decode attention: groups, chunks and paths give the same bits, and float64's values",
          "[ops][decode_attention]") {
  // D = 64 takes the AVX-512 path where the CPU has it; 24 only the plain loops. Shared prefixes of
  // 48 and 37 positions (a whole and a partial block of 16); 1 row (decode) and 7 rows per sequence
  // (a prompt's rest), so that a group of 6 x 7 = 42 queries is cut into chunks of 16.
  for (int D : {64, 24}) {
    for (int shared : {48, 37}) {
      for (int rows : {1, 7}) {
        Caches c(6, 3, D, 96, shared, uint32_t(D + shared));
        Queries q(c, rows, shared, uint32_t(rows + D));
        const int n = int(q.list.size());
        INFO("D " << D << ", shared " << shared << ", rows " << rows);
        const auto grouped = q.run(c, {{0, n, shared}}, false);
        REQUIRE(check_close(grouped.data(), q.reference(c).data(), grouped.size(), 2e-6, 2e-5) == "");
        REQUIRE(same_bits(grouped, q.run(c, singles(n), false)));
        REQUIRE(same_bits(grouped, q.run(c, {{0, n, shared}}, true)));  // the plain loops
        REQUIRE(same_bits(grouped, q.run(c, singles(n), true)));
        // Two groups sharing less, and one thread: still the same bits.
        REQUIRE(same_bits(grouped, q.run(c, {{0, n / 2, 16}, {n / 2, n - n / 2, 32}}, false, 1)));
      }
    }
  }
}

TEST_CASE("Decode attention reads a group's shared positions from its first cache only", "[ops][decode_attention]") {
  // Sequence 1's copy of the shared positions is spoiled: grouped with sequence 0 first, it reads
  // sequence 0's (the result equals sequence 0's cache in its place); alone, its own.
  Caches c(2, 2, 64, 40, 32, 7);
  Queries q(c, 1, 32, 8);
  const auto grouped = q.run(c, {{0, 2, 32}}, false);
  for (size_t i = 0; i < size_t(2) * 64 * 40; ++i) {
    if ((i / 64) % 40 < 32) c.k[size_t(2) * 64 * 40 + i] += 1.0f;  // sequence 1, positions < 32
  }
  REQUIRE(same_bits(grouped, q.run(c, {{0, 2, 32}}, false)));
  REQUIRE_FALSE(same_bits(grouped, q.run(c, singles(2), false)));
}
