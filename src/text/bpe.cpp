#include "text/bpe.h"

#include <algorithm>
#include <functional>

namespace gen::text {

// Merges the lowest-ranked adjacent pair first, leftmost on ties, like HF's BPE::merge_word.
// A heap of candidates keeps long words (a megabyte of digits) at O(n log n).
void bpe(const Vocab& v, std::string_view word, std::vector<int>& out) {
  const auto* p = reinterpret_cast<const unsigned char*>(word.data());
  const int n = int(word.size());
  if (n == 1) {
    out.push_back(v.byte_id[p[0]]);
    return;
  }
  struct Sym {
    int id, prev, next;
  };
  struct Cand {
    int rank, pos, left, right, merged;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<Sym> sym(n);
  for (int i = 0; i < n; ++i) sym[i] = {v.byte_id[p[i]], i - 1, i + 1 < n ? i + 1 : -1};
  std::vector<Cand> heap;
  const auto after = std::greater<Cand>();
  auto candidate = [&](int pos) {
    if (pos < 0 || sym[pos].next < 0) return false;
    int left = sym[pos].id, right = sym[sym[pos].next].id;
    auto it = v.merges.find(merge_key(left, right));
    if (it == v.merges.end()) return false;
    heap.push_back({it->second.first, pos, left, right, it->second.second});
    return true;
  };
  auto consider = [&](int pos) {
    if (candidate(pos)) std::push_heap(heap.begin(), heap.end(), after);
  };
  for (int i = 0; i + 1 < n; ++i) candidate(i);
  std::make_heap(heap.begin(), heap.end(), after);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), after);
    Cand c = heap.back();
    heap.pop_back();
    // A merge only ever lengthens a symbol, so unchanged ids mean an unchanged pair.
    Sym& l = sym[c.pos];
    if (l.id != c.left || l.next < 0 || sym[l.next].id != c.right) continue;
    Sym& r = sym[l.next];
    l.id = c.merged;
    r.id = -1;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = c.pos;
    consider(l.prev);
    consider(c.pos);
  }
  for (int i = 0; i >= 0; i = sym[i].next) out.push_back(sym[i].id);
}

}  // namespace gen::text
