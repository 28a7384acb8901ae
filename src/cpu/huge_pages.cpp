#include "cpu/huge_pages.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

namespace gen::cpu {

bool huge_pages_wanted() {
  static const bool wanted = [] {
    const char* v = std::getenv("GEN_HUGEPAGES");
    return !(v && std::strcmp(v, "0") == 0);
  }();
  return wanted;
}

HugePageBuffer::HugePageBuffer(size_t bytes) {
  constexpr size_t kHuge = size_t(2) << 20;
  const size_t rounded = (std::max<size_t>(bytes, 1) + kHuge - 1) / kHuge * kHuge;
  p_ = std::aligned_alloc(kHuge, rounded);
  if (!p_) throw std::bad_alloc();
  if (huge_pages_wanted()) madvise(p_, rounded, MADV_HUGEPAGE);  // advice only: failing it leaves small pages
}

HugePageBuffer::~HugePageBuffer() { std::free(p_); }

}  // namespace gen::cpu
