// A vector whose resize leaves new elements uninitialized, for buffers that are always written before
// they are read (the KV cache, per-step scratch). std::vector<float> would zero them: for a cache of
// 32 slots x 1024 positions that is 268 MB of memset before the first token, and every page touched
// even where a run uses a tenth of it. Left alone, pages are faulted in as positions are written.
#pragma once
#include <memory>
#include <new>
#include <type_traits>
#include <vector>

namespace gen::cpu {

template <typename T>
struct NoInitAllocator : std::allocator<T> {
  static_assert(std::is_trivially_default_constructible_v<T>, "only for plain values");
  template <typename U>
  struct rebind {
    using other = NoInitAllocator<U>;
  };
  NoInitAllocator() = default;
  template <typename U>
  NoInitAllocator(const NoInitAllocator<U>&) noexcept {}
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;  // default-initialized: no write
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

using Floats = std::vector<float, NoInitAllocator<float>>;

}  // namespace gen::cpu
