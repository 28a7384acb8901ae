#!/usr/bin/env python3
"""Writes tests/fixtures/tokenizer_golden.json: GPT-2 token ids for a varied corpus, plus the
errors="replace" decode of id lists whose bytes cut UTF-8 characters.

The ids come from Hugging Face's GPT2TokenizerFast built from the shared vocab.json/merges.txt.
They are cross-checked against two independent encoders, and the script fails on any mismatch:
  * OpenAI's original encoder.py algorithm (what transformers' slow GPT2Tokenizer was), and
  * tiktoken's "gpt2" encoding built offline from the same files (when tiktoken is installed).
transformers v5 dropped the slow tokenizer, so encoder.py is reimplemented below.

Usage: python scripts/make_tokenizer_fixture.py [TOKENIZER_DIR] [OUT_JSON]
"""
import json
import os
import sys

import regex

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
TOK_DIR = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(ROOT), "shared", "gpt2-tokenizer")
OUT = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "tests", "fixtures", "tokenizer_golden.json")
VOCAB = os.path.join(TOK_DIR, "vocab.json")
MERGES = os.path.join(TOK_DIR, "merges.txt")
EOT = "<|endoftext|>"
PAT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


class OpenAIEncoder:
    """OpenAI's gpt-2/src/encoder.py, with "<|endoftext|>" split out first as HF does."""

    def __init__(self, vocab, merge_lines):
        self.encoder = vocab
        self.byte_encoder = bytes_to_unicode()
        merges = [tuple(line.split(" ")) for line in merge_lines]
        self.bpe_ranks = dict(zip(merges, range(len(merges))))
        self.pat = regex.compile(PAT)

    def bpe(self, token):
        word = tuple(token)
        while len(word) > 1:
            pairs = set(zip(word, word[1:]))
            bigram = min(pairs, key=lambda p: self.bpe_ranks.get(p, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new_word.extend(word[i:])
                    break
                new_word.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
        return word

    def encode(self, text):
        ids = []
        for k, piece in enumerate(text.split(EOT)):
            if k:
                ids.append(self.encoder[EOT])
            for token in regex.findall(self.pat, piece):
                token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
                ids.extend(self.encoder[t] for t in self.bpe(token))
        return ids


def load_hf():
    from transformers import GPT2TokenizerFast

    # transformers v4 takes vocab_file/merges_file; v5 takes vocab/merges and silently ignores
    # vocab_file, building an empty tokenizer. Hence the sanity check.
    for kwargs in ({"vocab": VOCAB, "merges": MERGES}, {"vocab_file": VOCAB, "merges_file": MERGES}):
        try:
            tok = GPT2TokenizerFast(**kwargs)
        except Exception:  # the other major version's keywords
            continue
        if tok.encode("Hello world") == [15496, 995]:
            return tok
    sys.exit("could not build GPT2TokenizerFast from " + TOK_DIR)


def load_tiktoken():
    try:
        import tiktoken
        from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    except ImportError:
        return None
    ranks = data_gym_to_mergeable_bpe_ranks(vocab_bpe_file=MERGES, encoder_json_file=VOCAB)
    return tiktoken.Encoding(name="gpt2-local", pat_str=PAT, mergeable_ranks=ranks, special_tokens={EOT: 50256})


def long_text():
    para = ("The quick brown fox jumps over the lazy dog. It's 3:45pm on 2024-02-29, and we've "
            "got 1,234,567.89 reasons to test   spacing\tand\ttabs.\n")
    code = "for (int i = 0; i < n; ++i) {\n    sum += a[i] * b[i];  // dot\n}\n"
    mixed = "Zürich, 東京, Москва, القاهرة, 서울 — naïve café, 😀👍🏽.\n"
    return (para + code + mixed) * 12


CORPUS = [
    # English prose and capitalisation
    "Hello world",
    "hello world",
    " Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "GPT-2 is a large transformer-based language model with 1.5 billion parameters.",
    "ALL CAPS SENTENCE, WITH Punctuation!!! And?? more...",
    # contractions, lower and upper case, curly quotes
    "It's what they're saying: we've, I'm, you'll, he'd, don't.",
    "IT'S WHAT THEY'RE SAYING: WE'VE, I'M, YOU'LL, HE'D, DON'T.",
    "It\u2019s what they\u2019re saying \u2018quoted\u2019 and \u201cdouble\u201d",
    "'s 't 're 've 'm 'll 'd '' 'x",
    "rock'n'roll o'clock y'all",
    # digits and numbers
    "0 1 12 123 1234 12345 123456 1234567890",
    "3.14159265358979323846264338327950288419716939937510",
    "Call +1 (555) 012-3456 or 1e10, -42, 0x1F, 1,000,000",
    "\u0661\u0662\u0663 \u0967\u0968\u0969 \u2460\u2461 \u00bd \u2155",
    # spaces, tabs, newlines
    "a b  c   d    e     f      g",
    " leading",
    "      six leading spaces",
    "trailing ",
    "trailing six      ",
    " ",
    "      ",
    "tab\there\t\tand\t\t\tthere",
    "\t\tindented",
    "line1\nline2\n\nline4\n\n\n\nline8",
    "crlf\r\nline\r\n\r\nend\r\n",
    "spaces before newline   \nnext  \n\n  \n",
    "\n",
    "\n\n\n",
    " \n \n ",
    "mixed \t \n \r\n\t whitespace",
    "unicode\u00a0nbsp\u2003em\u3000ideographic\u2028ls\u2029ps\u0085nel end",
    "x\u200by\ufeffz\u180ew\u001fv\u000bu\u000ct",
    # CJK, Japanese, Korean
    "中华人民共和国",
    "我爱北京天安门。今天天气很好！",
    "日本語のテキスト、ひらがなとカタカナ。",
    "한국어 텍스트입니다. 안녕하세요!",
    # emoji: ZWJ sequences, skin tones, flags, keycaps
    "😀 😃 😄 😁",
    "👨\u200d👩\u200d👧\u200d👦 family, 👍🏽 thumbs",
    "🇺🇸🇫🇷🇯🇵 flags",
    "1\ufe0f\u20e3 #\ufe0f\u20e3 ❤\ufe0f",
    # combining marks, Vietnamese, other scripts
    "e\u0301 vs \u00e9, n\u0303 vs \u00f1",
    "Tiếng Việt có dấu: Xin chào thế giới",
    "Z\u0351\u036b\u0343a\u0310\u0357l\u0344g\u033do\u0366",
    "مرحبا بالعالم",
    "שלום עולם",
    "Привет, мир! Ελληνικά. हिन्दी. ไทย",
    "mixed: English, 中文, Русский, العربية 123 😀",
    # code, URLs, markup
    "def f(x):\n    return x ** 2  # square\n",
    "int main() { printf(\"%d\\n\", 42); return 0; }",
    "https://example.com/path?q=hello+world&x=1#frag",
    "<div class=\"a\">&amp; &lt;tag&gt;</div>",
    "{\"key\": [1, 2.5, null, true], \"s\": \"\\u00e9\"}",
    "~!@#$%^&*()_+`-=[]\\{}|;':\",./<>?",
    "----====____****",
    # the special token
    "<|endoftext|>",
    "Hello<|endoftext|>world",
    "Hello <|endoftext|> world",
    "a\n<|endoftext|>\nb<|endoftext|><|endoftext|>c",
    "<|endoftext|",
    "<|endoftext|>'s",
    # odd characters
    "\u0000nul\u0001ctrl\u007fdel",
    "\U0001d54f\U0001d550 math, \U00010348 gothic, \U0010fffd private",
    # U+180E is not White_Space (PCRE2's \s says it is); letters and digits new in Unicode 15-16
    "mvs \u180e\u180e! x \u180ey\u180e",
    "cjk ext H/I: \U00031350\U00031351 \U000323AF\U0002EBF0 \u1c89\u1c8a\ua7cb \U00010d4a 7\U0001e5f1\U00011bf0",
    # a long string
    long_text(),
]


def replace_decode_cases(vocab):
    """Id lists whose bytes are not valid UTF-8, for the errors="replace" check."""
    enc = bytes_to_unicode()
    byte_id = {b: vocab[enc[b]] for b in range(256)}

    def ids_of(bs):
        return [byte_id[b] for b in bs]

    zhong = "中".encode("utf-8")  # E4 B8 AD
    return [
        ids_of(zhong[:1]),
        ids_of(zhong[:2]),
        ids_of(zhong[:2]) + [64],  # then "a"
        ids_of(zhong[1:]),
        ids_of(b"\x80"),
        ids_of(b"\xc0\xaf"),
        ids_of(b"\xe0\x80\xaf"),
        ids_of(b"\xed\xa0\x80"),
        ids_of(b"\xf4\x90\x80\x80"),
        ids_of(b"\xf5\xff\xfe"),
        ids_of("😀".encode("utf-8")[:3]) + [0],  # truncated emoji, then "!"
        [15496] + ids_of(b"\xe4\xb8") + [995] + ids_of(b"\xf0\x9f"),
        ids_of("中".encode("utf-8")),  # valid again when whole
    ]


def main():
    with open(VOCAB, encoding="utf-8") as f:
        vocab = json.load(f)
    with open(MERGES, encoding="utf-8") as f:
        merge_lines = [l for l in f.read().split("\n") if l and not l.startswith("#version")]
    hf = load_hf()
    ref = OpenAIEncoder(vocab, merge_lines)
    tk = load_tiktoken()

    cases = []
    for text in CORPUS:
        ids = hf.encode(text)
        assert ids == ref.encode(text), ("encoder.py disagrees", text)
        if tk is not None:
            assert ids == tk.encode(text, allowed_special="all"), ("tiktoken disagrees", text)
        assert hf.decode(ids, clean_up_tokenization_spaces=False) == text, ("no round trip", text)
        cases.append({"text": text, "ids": ids})

    decodes = []
    inv = {v: k for k, v in vocab.items()}
    dec = {c: b for b, c in bytes_to_unicode().items()}
    for ids in replace_decode_cases(vocab):
        text = hf.decode(ids, clean_up_tokenization_spaces=False)
        raw = bytes(dec[c] for i in ids for c in inv[i])
        assert text == raw.decode("utf-8", errors="replace"), ("HF decode differs from Python", ids)
        decodes.append({"ids": ids, "text": text})

    import tokenizers
    import transformers

    out = {
        "source": "scripts/make_tokenizer_fixture.py: transformers %s GPT2TokenizerFast (tokenizers %s) "
                  "from the shared GPT-2 vocab.json/merges.txt, cross-checked with OpenAI encoder.py%s"
                  % (transformers.__version__, tokenizers.__version__, " and tiktoken" if tk else ""),
        "cases": cases,
        "decodes": decodes,
    }
    # One case per line keeps diffs readable; ASCII-only keeps odd characters visible.
    def dump(x):
        return json.dumps(x, ensure_ascii=True, separators=(",", ":"))

    with open(OUT, "w", encoding="utf-8") as f:
        f.write('{"source":%s,\n"cases":[\n' % dump(out["source"]))
        f.write(",\n".join(dump(c) for c in cases))
        f.write('],\n"decodes":[\n')
        f.write(",\n".join(dump(d) for d in decodes))
        f.write("]}\n")
    with open(OUT, encoding="utf-8") as f:
        assert json.load(f) == out
    print("wrote %s: %d cases, %d decodes, %d bytes" % (OUT, len(cases), len(decodes), os.path.getsize(OUT)))


if __name__ == "__main__":
    main()
