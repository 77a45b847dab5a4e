"""Built-in texts for calibrating int8 quantization and for the accuracy gate of ``auto``.

They are varied on purpose (catalogue titles, film titles with genres, prose, numbers, codes,
non-Latin scripts, emoji, short and long) so that the activation statistics they give and
the accuracy they measure hold for data the project has never seen. Shipped, not downloaded.
"""

from __future__ import annotations

import random

_SENTENCES = [
    "A thrilling space adventure about a crew stranded near Jupiter.",
    "Lightweight running shoes with a breathable mesh upper, size 42.",
    "Stainless steel chef's knife, 20 cm blade, dishwasher safe.",
    "The quick brown fox jumps over the lazy dog.",
    "Romantic comedy set in Paris during the 1920s jazz age.",
    "Organic green tea, 100 bags, harvested in the spring of 2023.",
    "Wireless noise-cancelling headphones with 30 hours of battery life.",
    "An introduction to causal inference for data scientists and economists.",
    "This makes the build faster, as we no longer run each rule against every file.",
    "HTTPS support is only available if the socket module was compiled with SSL.",
    "Returns the number of elements in the list; raises ValueError if it is empty.",
    "Kids' wooden puzzle with 24 pieces, ages 3+.",
    "Vintage leather jacket, brown, medium, barely worn!",
    "Refurbished laptop: 16 GB RAM, 512 GB SSD, 14-inch display.",
    "How do I reset my password if I no longer have access to my e-mail?",
    "Customers who bought this item also bought a matching phone case.",
    "The committee postponed the vote until the budget figures are confirmed.",
    "Slow-cooked beef stew with carrots, potatoes and a hint of thyme.",
    "Error 404: the page you requested could not be found.",
    "SKU 48-XJ-2291 / EAN 4006381333931 / batch #77",
    "Price: $19.99 (was $29.99) - free shipping over $50",
    "I loved it. Would buy again.",
    "Terrible. Broke after two days and support never answered.",
    "Documentary following three families through a drought in East Africa.",
    "Gardening gloves, pack of 3, nitrile coated.",
    "A short history of the printing press and its effect on European science.",
    "Ergonomic office chair with lumbar support and adjustable armrests.",
    "Live concert recording, remastered in 2019, with four bonus tracks.",
    "Beginner's guide to watercolour painting: brushes, paper and colour mixing.",
    "Acoustic guitar for beginners learning music, spruce top, with gig bag.",
    "推荐系统的因果推断",
    "这款手机的电池续航时间很长，拍照效果也很好。",
    "نظام التوصية السببي",
    "كتاب عن تاريخ العلوم في العصر الذهبي",
    "Система рекомендаций на основе причинно-следственных связей",
    "Ein spannender Krimi, der in Hamburg spielt.",
    "Un roman d'aventure pour toute la famille.",
    "Película de terror ambientada en un pueblo abandonado.",
    "東京の夜景を楽しめるホテル、駅から徒歩5分。",
    "한국어 학습을 위한 초급 교재",
    "🎬🍿 great movie!! 👍👍",
    "🔥🔥🔥 DEAL OF THE DAY 🔥🔥🔥",
    "ok",
    "N/A",
    "x",
    "1999",
    "!!!",
    "https://example.com/products/12345?ref=home&utm_source=newsletter",
    "def embed(texts: list[str]) -> np.ndarray: return model.encode(texts)",
    "SELECT user_id, COUNT(*) FROM interactions GROUP BY user_id;",
]

_ADJ = ["red", "cheap", "premium", "vintage", "portable", "organic", "wireless", "handmade", "compact", "heavy-duty"]
_NOUN = ["backpack", "coffee grinder", "yoga mat", "desk lamp", "board game", "water bottle", "novel", "drone"]
_USE = ["for travel", "for beginners", "for the kitchen", "for kids", "for outdoor use", "for gamers", ""]
_FILMS = ["Toy Story (1995)", "Heat (1995)", "Casablanca (1942)", "The Matrix (1999)", "Amélie (2001)", "Alien (1979)"]
_GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Thriller", "Animation", "Documentary"]


def probe_texts(n: int = 384, seed: int = 0) -> list[str]:
    """``n`` varied texts (deterministic for a seed): the fixed sentences, then generated ones."""
    rng = random.Random(seed)
    out = list(_SENTENCES)
    while len(out) < n:
        kind = rng.randrange(5)
        if kind == 0:
            out.append(f"{rng.choice(_ADJ).capitalize()} {rng.choice(_NOUN)} {rng.choice(_USE)}".strip())
        elif kind == 1:
            genres = ", ".join(rng.sample(_GENRES, rng.randint(1, 3)))
            out.append(f"{rng.choice(_FILMS)}. Genres: {genres}")
        elif kind == 2:  # long: several sentences glued together
            out.append(" ".join(rng.sample(_SENTENCES[:30], rng.randint(3, 8))))
        elif kind == 3:
            a, b = rng.sample(_SENTENCES, 2)
            out.append(f"{a} {b}")
        else:
            words = " ".join(rng.sample(_ADJ + _NOUN + _GENRES, rng.randint(1, 6)))
            out.append(words if rng.random() < 0.5 else words.upper())
    return out[:n]
