// GPT-2 byte-level BPE. Matches Hugging Face's GPT2TokenizerFast: the same split regex, byte
// alphabet and merge order (lowest rank first, leftmost on ties), with "<|endoftext|>" split out
// before anything else as HF does for its special token.
//   byte_level.*    GPT-2's byte alphabet (bytes <-> the characters of vocab strings)
//   vocab.*         loading vocab.json and merges.txt, with their error messages
//   pretokenizer.*  the split regex (PCRE2)
//   bpe.*           the merge loop within one word
//   utf8.*          validation, U+FFFD repair, escaping for messages
#include "gen/tokenizer.h"

#include <climits>
#include <string_view>
#include <utility>

#include "gen/error.h"
#include "text/bpe.h"
#include "text/pretokenizer.h"
#include "text/utf8.h"
#include "text/vocab.h"

namespace gen {

struct Tokenizer::Impl : text::Vocab {
  text::SplitRegex split;

  explicit Impl(text::Vocab&& v) : text::Vocab(std::move(v)) {}
  void encode_piece(std::string_view text, std::vector<int>& out) const;
};

Tokenizer::Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::string& vocab_json_path, const std::string& merges_path) {
  std::string vocab = text::read_whole_file(vocab_json_path);
  std::string merges = text::read_whole_file(merges_path);
  Tokenizer t;
  t.impl_ = std::make_unique<Impl>(text::parse_vocab(vocab, vocab_json_path, merges, merges_path));
  t.eos_id_ = t.impl_->eos_id;
  return t;
}

Tokenizer Tokenizer::from_strings(const std::string& vocab_json, const std::string& merges_txt,
                                  const std::string& where) {
  Tokenizer t;
  t.impl_ = std::make_unique<Impl>(text::parse_vocab(vocab_json, where, merges_txt, where));
  t.eos_id_ = t.impl_->eos_id;
  return t;
}

void Tokenizer::Impl::encode_piece(std::string_view text, std::vector<int>& out) const {
  if (text.empty()) return;
  text::SplitRegex::Words words(split, text);
  // Repeated words are common in prose; remember where their ids already sit in out.
  std::unordered_map<std::string_view, std::pair<size_t, size_t>> seen;
  for (std::string_view word; words.next(word);) {
    auto [it, fresh] = seen.try_emplace(word, out.size(), 0);
    if (fresh) {
      text::bpe(*this, word, out);
      it->second.second = out.size() - it->second.first;
    } else {
      for (size_t k = 0; k < it->second.second; ++k) out.push_back(out[it->second.first + k]);
    }
  }
}

std::vector<int> Tokenizer::encode(const std::string& text) const {
  long bad = utf8_error_offset(text);
  if (bad >= 0) throw InputError("invalid UTF-8 in prompt at byte " + std::to_string(bad), "");
  if (text.size() > size_t(INT_MAX)) throw InputError("prompt too long (over 2 GiB)", "");  // BPE uses int
  std::vector<int> out;
  out.reserve(text.size() / 3 + 1);
  std::string_view rest(text);
  if (eos_id_ >= 0) {
    const std::string_view eot(text::kEndOfText);
    for (size_t at; (at = rest.find(eot)) != std::string_view::npos; rest.remove_prefix(at + eot.size())) {
      impl_->encode_piece(rest.substr(0, at), out);
      out.push_back(eos_id_);
    }
  }
  impl_->encode_piece(rest, out);
  return out;
}

const std::string& Tokenizer::token_bytes(int id) const {
  if (id < 0 || size_t(id) >= impl_->id_bytes.size()) {
    throw InputError("token id " + std::to_string(id) + " out of range (vocab has " +
                         std::to_string(impl_->id_bytes.size()) + " tokens)",
                     "");
  }
  return impl_->id_bytes[id];
}

std::string Tokenizer::decode_bytes(const std::vector<int>& ids) const {
  std::string out;
  for (int id : ids) out += token_bytes(id);
  return out;
}

std::string Tokenizer::decode(const std::vector<int>& ids) const {
  std::string bytes = decode_bytes(ids);
  std::string out;
  out.reserve(bytes.size());
  text::append_replaced(bytes, false, out);
  return out;
}

int Tokenizer::vocab_size() const { return int(impl_->id_bytes.size()); }

}  // namespace gen
