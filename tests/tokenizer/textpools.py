"""Text pools for the tokenizer tests (issue 10).

Shared by make_corpus.py (the test strings, run anywhere) and
make_fixtures.py (the training text of the small tokenizers, run on the GPU
machine where sentencepiece, tokenizers and transformers are installed).
Everything is deterministic: pools are literals and every random choice
comes from a seeded random.Random.
"""

ENGLISH = [
    "The quick brown fox jumps over the lazy dog.",
    "It wasn't the first time the committee didn't agree, and it won't be the last.",
    "Researchers said on Tuesday that the new vaccine was 94.5% effective in trials.",
    "She'd said she'll come, but they're late and we've waited since 9:30 a.m.",
    "Prices rose 3.2 percent in March, the fastest pace since 1991, officials said.",
    "\"Don't worry,\" he said. \"It's fine -- really.\"",
    "The U.S. Senate voted 51-49 to approve the bill late on Friday night.",
    "CNN's reporter couldn't confirm the details, which haven't been released.",
    "Mr. O'Neill, aged 42, lives at 221B Baker Street, London NW1 6XE.",
    "A 7-year-old boy was rescued after spending 36 hours trapped in the rubble.",
    "The company's shares fell $4.75, or 12%, to $34.10 in after-hours trading.",
    "Scientists aren't sure why the ice shelf, roughly 1,200 square miles, broke off.",
    "I'M SHOUTING BECAUSE IT'S IMPORTANT; YOU'LL SEE WHY.",
    "e-mail me at john.doe@example.com or visit https://example.org/a/b?c=d&e=f#g",
    "Well... maybe; maybe not!? (Who knows?) [citation needed] {braces} <angle>",
]

CODE = [
    "def main(argv):\n    for i in range(10):\n        print(f\"{i:03d}\")\n    return 0\n",
    "int main(void) {\n\treturn printf(\"%d\\n\", 42) < 0;\n}\n",
    "    if (x != NULL && x->next) { x = x->next; }  // walk\n",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;",
    "for (size_t i = 0; i < n; ++i) sum += a[i] * b[i];",
    "<html><body><p class=\"x\">Hello&nbsp;world</p></body></html>",
    "x = {'a': [1, 2, 3], \"b\": (4.5e-3, -0.0), 'c': None}",
    "#!/bin/bash\nset -euo pipefail\necho \"$HOME\" | tr a-z A-Z\n",
]

SCRIPTS = {
    "chinese": ["我们今天去公园散步。", "机器学习模型需要大量的数据进行训练。", "北京是中华人民共和国的首都。",
                "他说：“这不是问题。”", "人工智能正在改变世界。"],
    "japanese": ["今日はとても良い天気ですね。", "東京タワーは日本の有名な観光地です。", "カタカナとひらがなと漢字。",
                 "ありがとうございました！"],
    "korean": ["안녕하세요, 만나서 반갑습니다.", "서울은 대한민국의 수도입니다.", "한국어 형태소 분석기"],
    "russian": ["Москва — столица России.", "Съешь же ещё этих мягких французских булок, да выпей чаю.",
                "Привет, как дела?"],
    "greek": ["Καλημέρα κόσμε, τι κάνεις;", "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας."],
    "arabic": ["مرحبا بالعالم", "اللغة العربية جميلة جدا.", "القاهرة هي عاصمة مصر."],
    "hebrew": ["שלום עולם", "ירושלים היא עיר עתיקה."],
    "hindi": ["नमस्ते दुनिया", "भारत एक विशाल देश है।", "हिन्दी भाषा देवनागरी लिपि में लिखी जाती है।"],
    "thai": ["สวัสดีครับ", "ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ"],
    "tamil": ["வணக்கம் உலகம்", "தமிழ் ஒரு பழமையான மொழி."],
    "bengali": ["আমি বাংলায় গান গাই।"],
    "georgian": ["გამარჯობა მსოფლიო"],
    "armenian": ["Բարեւ աշխարհ"],
    "vietnamese": ["Tiếng Việt có nhiều dấu thanh.", "Xin chào thế giới!"],
    "turkish": ["İstanbul'da ılık bir gün; çok güzel, değil mi?"],
    "german": ["Größere Straßen führen über die Brücke nach Köln.", "Die Bundesregierung hat's beschlossen."],
    "french": ["L'été dernier, nous sommes allés à Paris où il faisait très chaud.", "Ça va ? Très bien, merci !"],
    "spanish": ["¿Dónde está la biblioteca? ¡Aquí mismo!", "El niño comió piña y jalapeño."],
    "polish": ["Zażółć gęślą jaźń."],
}

EMOJI = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "🇯🇵", "❤️", "1️⃣", "🏳️‍🌈", "🤖", "🎉🎉🎉", "🧑🏿‍💻", "☕", "⚠️", "✅",
         "🙈🙉🙊", "🦄", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𝟙𝟚𝟛", "🀄", "👩🏻‍🔬"]

COMBINING = ["e\u0301", "n\u0303", "a\u0308o\u0308u\u0308", "Z\u0351\u0362a\u0335\u0317l\u034e\u0316g\u0331o\u0327",
             "\u1100\u1161\u11a8", "i\u0307", "\u0915\u094d\u0937", "o\u0302\u0301", "\u05e9\u05c1\u05b8",
             "A\u030a", "\u0627\u064e\u0644\u0652", "c\u0327a\u0300"]

DIGITS = ["0", "7", "42", "123", "1234", "12345", "1234567890", "3.14159", "1,000,000", "2026-12-04",
          "+1 (555) 123-4567", "0x7fffffff", "1e-9", "99.9%", "10000000000000000000000", "٠١٢٣٤٥", "१२३",
          "１２３４", "½ ¾ ⅔", "v1.2.3-rc4"]

WHITESPACE = [" ", "  ", "     ", "\t", "\t\t\t", "\n", "\n\n", "\n\n\n\n", "\r\n", " \n ", "\u00a0", "\u3000",
              "\u2003", " \t \n", "        "]

SPECIAL_TEXT = ["<s>", "</s>", "<unk>", "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>",
                "<|start_header_id|>", "<|end_header_id|>", "<|reserved_special_token_0|>",
                "<|begin_of", "<s", "s>", "</", "<|", "|>", "<pad>", "[INST]", "<<SYS>>"]


def training_text(rnd, n_lines):
    """Lines mixing every pool, for training the small tokenizers."""
    pools = ENGLISH + CODE + [s for v in SCRIPTS.values() for s in v]
    lines = []
    for _ in range(n_lines):
        k = rnd.randint(1, 4)
        parts = [rnd.choice(pools) for _ in range(k)]
        if rnd.random() < 0.3:
            parts.append(rnd.choice(DIGITS))
        if rnd.random() < 0.2:
            parts.append(rnd.choice(EMOJI))
        if rnd.random() < 0.1:
            parts.append(rnd.choice(COMBINING))
        lines.append(" ".join(parts).replace("\n", " "))
    return lines
