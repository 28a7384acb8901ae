#include "gen/prefix_cache.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <map>
#include <set>
#include <utility>

#include "gen/error.h"
#include "gen/kv_file.h"

namespace gen {

using BlockKey = std::array<int, PrefixCache::kBlock>;

struct PrefixCache::Node {
  BlockKey key{};
  Node* parent = nullptr;
  std::map<BlockKey, std::unique_ptr<Node>> children;
  int block = -1;       // its K/V in the pool (the root has none)
  uint64_t id = 0;      // unique in the process: the slots it is copied to carry it (KVCache::block_origin)
  int refs = 0;         // operations that need it kept (a store adding its child)
  uint64_t last = 0;    // last use, on clock_
  bool listed = false;  // in lru_ (an evictable leaf)
};

// Evictable leaves by last use, oldest first.
struct PrefixCache::Lru {
  std::set<std::pair<uint64_t, Node*>> leaves;
};

namespace {
constexpr size_t kChunkBytes = size_t(64) << 20;  // the pool grows by caches of about this size

static_assert(PrefixCache::kBlock == KVCache::kOriginBlock, "a cached block is one origin block of a slot");

uint64_t next_node_id() {
  static std::atomic<uint64_t> last{0};
  return ++last;
}

BlockKey key_at(const int* tokens) {
  BlockKey k;
  std::copy(tokens, tokens + PrefixCache::kBlock, k.begin());
  return k;
}
}  // namespace

PrefixCache::PrefixCache(Backend& backend, size_t budget_bytes)
    : backend_(backend), budget_(budget_bytes), root_(std::make_unique<Node>()), lru_(std::make_unique<Lru>()) {
  const ModelConfig& c = backend.config();
  block_bytes_ = KVCache::bytes_for(c.n_layer, c.n_embd, 1, kBlock, kv_dtype_bytes(backend.kv_dtype()));
  max_blocks_ = int(std::min<size_t>(budget_ / block_bytes_, size_t(1) << 30));
  chunk_blocks_ = int(std::clamp<size_t>(kChunkBytes / block_bytes_, 1, size_t(std::max(1, max_blocks_))));
}

PrefixCache::~PrefixCache() = default;

size_t PrefixCache::default_budget(const Backend& backend) {
  const size_t avail = backend.memory_available();
  return avail > 0 ? avail / 4 : size_t(1) << 30;
}

size_t PrefixCache::bytes() const {
  size_t n = 0;
  for (const auto& c : chunks_) n += c->bytes();
  return n;
}

PrefixCache::Node* PrefixCache::child(const Node* parent, const int* block_tokens) const {
  auto it = parent->children.find(key_at(block_tokens));
  return it == parent->children.end() ? nullptr : it->second.get();
}

KVCache& PrefixCache::pool(int block, int* slot) const {
  *slot = block % chunk_blocks_;
  return *chunks_[size_t(block / chunk_blocks_)];
}

void PrefixCache::update_evictable(Node* n) {
  if (n->listed) lru_->leaves.erase({n->last, n});
  n->listed = n != root_.get() && n->children.empty() && n->refs == 0;
  if (n->listed) lru_->leaves.insert({n->last, n});
}

void PrefixCache::touch(Node* n) {
  if (n->listed) lru_->leaves.erase({n->last, n});
  n->listed = false;
  n->last = ++clock_;
  update_evictable(n);
}

void PrefixCache::evict(Node* leaf) {
  Node* parent = leaf->parent;
  lru_->leaves.erase({leaf->last, leaf});
  free_.push_back(leaf->block);
  --used_blocks_;
  ++evictions_;
  parent->children.erase(leaf->key);  // destroys leaf
  update_evictable(parent);
}

int PrefixCache::take_block() {
  if (free_.empty() && allocated_ < max_blocks_) {
    // Grow by one cache (the last one only as large as the budget leaves); one that cannot be
    // allocated (memory taken since) ends the growth.
    const int n = std::min(chunk_blocks_, max_blocks_ - allocated_);
    try {
      chunks_.push_back(backend_.make_cache(n, kBlock));
      for (int b = allocated_ + n - 1; b >= allocated_; --b) free_.push_back(b);
      allocated_ += n;
    } catch (const Error&) {
      max_blocks_ = allocated_;
    }
  }
  if (free_.empty() && !lru_->leaves.empty()) evict(lru_->leaves.begin()->second);
  if (free_.empty()) return -1;
  const int b = free_.back();
  free_.pop_back();
  return b;
}

int PrefixCache::match(const std::vector<int>& tokens, int limit) const {
  const Node* node = root_.get();
  int n = 0;
  while (n + kBlock <= std::min<int>(limit, int(tokens.size()))) {
    node = child(node, tokens.data() + n);
    if (!node) break;
    n += kBlock;
  }
  return n;
}

void PrefixCache::load(const std::vector<int>& tokens, int n, KVCache& cache, int slot) {
  if (n % kBlock != 0 || n > int(tokens.size())) throw Error("prefix cache: load of a partial block");
  Node* node = root_.get();
  for (int pos = 0; pos < n; pos += kBlock) {
    node = child(node, tokens.data() + pos);
    if (!node) throw Error("prefix cache: load past the cached blocks");
    int ps = 0;
    KVCache& p = pool(node->block, &ps);
    backend_.copy_kv(p, ps, 0, cache, slot, pos, kBlock);
    cache.set_block_origin(slot, pos / kBlock, node->id);
    touch(node);
  }
}

void PrefixCache::store(const std::vector<int>& tokens, int n, KVCache& cache, int slot) {
  const int end = std::min<int>(n, int(tokens.size())) / kBlock * kBlock;
  Node* node = root_.get();
  for (int pos = 0; pos < end; pos += kBlock) {
    Node* c = child(node, tokens.data() + pos);
    if (!c) {
      ++node->refs;  // the parent stays while the pool may evict a leaf: it may be one
      update_evictable(node);
      const int b = take_block();
      --node->refs;
      if (b < 0) {
        update_evictable(node);
        return;
      }
      auto fresh = std::make_unique<Node>();
      fresh->key = key_at(tokens.data() + pos);
      fresh->parent = node;
      fresh->block = b;
      fresh->id = next_node_id();
      int ps = 0;
      KVCache& p = pool(b, &ps);
      try {
        backend_.copy_kv(cache, slot, pos, p, ps, 0, kBlock);
      } catch (...) {
        free_.push_back(b);
        update_evictable(node);
        throw;
      }
      cache.set_block_origin(slot, pos / kBlock, fresh->id);  // the slot holds the block's values
      c = fresh.get();
      node->children.emplace(fresh->key, std::move(fresh));
      ++used_blocks_;
      update_evictable(node);  // no longer a leaf
    }
    touch(c);
    node = c;
  }
}

}  // namespace gen
