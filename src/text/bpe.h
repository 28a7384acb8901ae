// The BPE merge loop: one pre-tokenized word's bytes -> token ids.
#pragma once
#include <string_view>
#include <vector>

#include "text/vocab.h"

namespace gen::text {

// Appends the ids of word (1 to INT_MAX bytes) to out, merging as v.merges ranks the pairs.
void bpe(const Vocab& v, std::string_view word, std::vector<int>& out);

}  // namespace gen::text
