// Memory the kernel is asked to back with huge pages (2 MiB aligned, madvise(MADV_HUGEPAGE)): the
// weights, which a decode step streams whole, and the KV cache, whose 4 KiB pages would otherwise be
// faulted in one at a time as positions are first written (a prefix-cache copy of 32 x 400 positions
// was about 24k faults). Where the kernel gives no huge pages this is plain memory; GEN_HUGEPAGES=0
// asks for none (to measure what they bring). Never zero-filled: the first write faults a page in.
#pragma once
#include <cstddef>

namespace gen::cpu {

bool huge_pages_wanted();

class HugePageBuffer {
 public:
  explicit HugePageBuffer(size_t bytes);
  ~HugePageBuffer();
  HugePageBuffer(const HugePageBuffer&) = delete;
  HugePageBuffer& operator=(const HugePageBuffer&) = delete;
  void* data() const { return p_; }

 private:
  void* p_ = nullptr;
};

}  // namespace gen::cpu
